// Command roomtoken mints a join token for a room that requires one (spec.auth), for testing
// and for scripts:
//
//	roomtoken --secret-file secret.txt --namespace games --room lobby --user alice --ttl 1h
//
// It prints an HS256 JWT with sub=<user>, aud=xrooms:<namespace>/<room>, iat and exp (and
// role=service with --service). A backend mints the same token with any JWT library; see the
// README's Security section.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/xrooms/xrooms/roomserver/auth"
)

func main() {
	err := run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr, time.Now())
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "roomtoken:", err)
		os.Exit(2)
	}
}

// envSecret is read when neither --secret-file nor --secret is given, as the room server does.
const envSecret = "XROOMS_AUTH_SECRET"

func run(args []string, getenv func(string) string, stdout, stderr io.Writer, now time.Time) error {
	fs := flag.NewFlagSet("roomtoken", flag.ContinueOnError)
	fs.SetOutput(stderr)
	secretFile := fs.String("secret-file", "", "file holding the room's HMAC secret, used byte for byte")
	secretArg := fs.String("secret", "", "the secret itself (visible to other users of the machine; prefer --secret-file or "+envSecret+")")
	namespace := fs.String("namespace", "default", "the Room's namespace")
	room := fs.String("room", "", "the Room's name (required)")
	user := fs.String("user", "", "the user id the token admits, its sub claim (required)")
	ttl := fs.Duration("ttl", time.Hour, "how long the token is valid")
	service := fs.Bool("service", false, `mint a backend's token (role "service"), which may also POST room events; --user names the backend`)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: roomtoken (--secret-file FILE | --secret S | %s=S) [--namespace NS] --room NAME --user ID [--ttl 1h]\n\n"+
			"Prints a join token for the room: an HS256 JWT with sub=ID, aud=xrooms:NS/NAME and exp.\n\nFlags:\n", envSecret)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var secret []byte
	switch {
	case *secretFile != "" && *secretArg != "":
		return errors.New("give --secret-file or --secret, not both")
	case *secretFile != "":
		b, err := os.ReadFile(*secretFile)
		if err != nil {
			return fmt.Errorf("--secret-file: %w", err)
		}
		secret = b
	case *secretArg != "":
		secret = []byte(*secretArg)
	case getenv(envSecret) != "":
		secret = []byte(getenv(envSecret))
	default:
		return fmt.Errorf("give the room's secret: --secret-file, --secret or %s", envSecret)
	}
	if *room == "" {
		return errors.New("--room is required")
	}
	mint := auth.Mint
	if *service {
		mint = auth.MintService
	}
	tok, err := mint(secret, *namespace, *room, *user, *ttl, now)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, tok)
	return err
}
