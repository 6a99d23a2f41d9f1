// Command roomserver serves one room over Phoenix Channels: the pod the xrooms operator runs
// per Room, and the way to run a room on a laptop:
//
//	go run ./cmd/roomserver --room lobby
//
// Every flag can also be set by an XROOMS_* environment variable (the flag wins); see
// --help. SIGTERM or SIGINT shuts the server down gracefully.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/xrooms/xrooms/roomserver/auth"
	"github.com/xrooms/xrooms/roomserver/entity"
	"github.com/xrooms/xrooms/roomserver/kube"
	"github.com/xrooms/xrooms/roomserver/room"
	"github.com/xrooms/xrooms/roomserver/rules"
	"github.com/xrooms/xrooms/roomserver/server"
	"github.com/xrooms/xrooms/roomserver/store"
)

func main() {
	err := run(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "roomserver:", err)
		os.Exit(1)
	}
}

// options are the command's settings.
type options struct {
	room, namespace, listen, dataDir, initialEntities string
	syncInterval                                      time.Duration
	maxClients                                        int
	origins, logFormat, logLevel                      string
	authSecretFile                                    string
	compression                                       bool
	pprofListen                                       string
	limits                                            limits
}

// envAuthSecret holds the join-token secret itself, as the operator passes it from a Secret.
// It is no flag, so the secret never shows in the process's arguments.
const envAuthSecret = "XROOMS_AUTH_SECRET"

const (
	minSyncInterval = 10 * time.Millisecond
	maxSyncInterval = 10 * time.Second
)

// parse reads flags over environment defaults.
func parse(args []string, getenv func(string) string, out io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("roomserver", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&o.room, "room", "", "the room to serve; members join topic room:<room> (required)")
	fs.StringVar(&o.namespace, "namespace", "default", "the Room's Kubernetes namespace, for logs and metrics")
	fs.StringVar(&o.listen, "listen", ":4000", "address to listen on")
	fs.DurationVar(&o.syncInterval, "sync-interval", 200*time.Millisecond,
		fmt.Sprintf("how often changes are flushed to members as one entities_diff (%v to %v)", minSyncInterval, maxSyncInterval))
	fs.StringVar(&o.dataDir, "data-dir", "", "directory of the room's bbolt store, <dir>/room.db (empty: in memory, lost on exit)")
	fs.StringVar(&o.initialEntities, "initial-entities", "",
		`entities that seed an empty store: a JSON file of {"id": {"component": value}}, or that JSON itself`)
	fs.IntVar(&o.maxClients, "max-clients", 0, "most members at once; further joins get room_full (0: unlimited)")
	o.limits.register(fs)
	fs.StringVar(&o.origins, "allowed-origins", "", "comma-separated browser origin host patterns allowed to connect (empty: any)")
	fs.StringVar(&o.authSecretFile, "auth-secret-file", "",
		"file holding the HMAC secret of join tokens (or set "+envAuthSecret+" itself to the secret); "+
			"unset: the room is open, anyone may join")
	fs.BoolVar(&o.compression, "compression", true,
		"permessage-deflate for clients that offer it (browsers do): each diff is compressed once per flush for all of them")
	fs.StringVar(&o.pprofListen, "pprof-listen", "",
		"address serving Go's profiler at /debug/pprof/ (e.g. 127.0.0.1:6060; empty: off). Keep it off public networks")
	fs.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprint(out, "Usage: roomserver --room NAME [flags]\n\n"+
			"Serves one xrooms room: Phoenix Channels at ws://HOST/socket/websocket, room events at\n"+
			"/rooms/NAME/stream (SSE) and /rooms/NAME/events (POST), /healthz, /readyz, /metrics.\n"+
			"Each flag can also be set by the environment variable shown; the flag wins.\n\nFlags:\n")
		fs.VisitAll(func(f *flag.Flag) {
			def := ""
			if f.DefValue != "" {
				def = fmt.Sprintf(" (default %q)", f.DefValue)
			}
			fmt.Fprintf(out, "  --%s\t[%s]\n    \t%s%s\n", f.Name, envName(f.Name), f.Usage, def)
		})
	}
	// The environment sets defaults; flags parsed afterwards override them.
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if v := getenv(envName(f.Name)); v != "" && envErr == nil {
			if err := f.Value.Set(v); err != nil {
				envErr = fmt.Errorf("%s=%q: %w", envName(f.Name), v, err)
			}
		}
	})
	if envErr != nil {
		return o, envErr
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if err := o.limits.check(); err != nil {
		return o, err
	}
	switch {
	case o.room == "":
		return o, errors.New("--room (XROOMS_ROOM) is required")
	case strings.ContainsAny(o.room, ":/ "):
		return o, fmt.Errorf("--room %q must not contain ':', '/' or spaces", o.room)
	case o.syncInterval < minSyncInterval || o.syncInterval > maxSyncInterval:
		return o, fmt.Errorf("--sync-interval %v must be between %v and %v", o.syncInterval, minSyncInterval, maxSyncInterval)
	case o.maxClients < 0:
		return o, fmt.Errorf("--max-clients %d must not be negative", o.maxClients)
	case o.logFormat != "text" && o.logFormat != "json":
		return o, fmt.Errorf("--log-format %q must be text or json", o.logFormat)
	}
	return o, nil
}

// envName is the variable for a flag: sync-interval -> XROOMS_SYNC_INTERVAL.
func envName(flagName string) string {
	return "XROOMS_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func run(args []string, getenv func(string) string, stderr io.Writer) error {
	o, err := parse(args, getenv, stderr)
	if err != nil {
		return err
	}
	log, err := newLogger(o, stderr)
	if err != nil {
		return err
	}
	initial, err := readInitialEntities(o.initialEntities)
	if err != nil {
		return err
	}
	var st store.Store = store.NewMemory()
	if o.dataDir != "" {
		if err := os.MkdirAll(o.dataDir, 0o755); err != nil {
			return fmt.Errorf("--data-dir: %w", err)
		}
		bolt, err := store.OpenBolt(filepath.Join(o.dataDir, "room.db"))
		if err != nil {
			return err
		}
		defer bolt.Close()
		st = bolt
	} else {
		log.Warn("no --data-dir: the room's entities live in memory and are lost on exit")
	}
	secret, err := readAuthSecret(o, getenv)
	if err != nil {
		return err
	}
	if secret == nil {
		log.Warn("the room is open: anyone who reaches it may join, as any user; set --auth-secret-file or " + envAuthSecret + " to require join tokens")
	}
	var origins []string
	if o.origins != "" {
		for p := range strings.SplitSeq(o.origins, ",") {
			origins = append(origins, strings.TrimSpace(p))
		}
	}
	cfg := server.Config{
		Room: o.room, Namespace: o.namespace, SyncInterval: o.syncInterval, MaxClients: o.maxClients,
		Store: st, InitialEntities: initial, Logger: log, OriginPatterns: origins, AuthSecret: secret,
		DisableCompression: !o.compression,
	}
	o.limits.apply(&cfg)
	srv, err := server.New(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if o.pprofListen != "" {
		if _, err := servePprof(ctx, o.pprofListen, log); err != nil {
			return err
		}
	}
	linked := linkToRoom(ctx, srv.Room(), o, secret == nil, log)
	err = srv.Serve(ctx, ln)
	<-linked
	return err
}

// linkToRoom reports the room's figures on its Room object and applies live spec changes,
// when the server runs in Kubernetes (or has a KUBECONFIG). Standalone, it does nothing. The
// returned channel closes once the last status write is done.
func linkToRoom(ctx context.Context, r *room.Room, o options, open bool, log *slog.Logger) <-chan struct{} {
	done := make(chan struct{})
	cfg, err := kube.Config()
	if err != nil {
		if errors.Is(err, kube.ErrStandalone) {
			log.Info("running standalone: no Room object to report to")
		} else {
			log.Error("not reporting to the Room object", "err", err)
		}
		close(done)
		return done
	}
	c, err := kube.NewClient(cfg)
	if err != nil {
		log.Error("not reporting to the Room object", "err", err)
		close(done)
		return done
	}
	rep := &kube.Reporter{
		Client: c, Namespace: o.namespace, Name: o.room, Open: open, Logger: log,
		Stats: func(ctx context.Context) (kube.Stats, error) {
			s, err := r.Stats(ctx)
			return kube.Stats{Clients: s.Members, Entities: s.Entities, SyncInterval: s.SyncInterval, LastSync: s.LastFlush}, err
		},
	}
	w := &kube.Watcher{
		Client: c, Namespace: o.namespace, Name: o.room, Logger: log,
		Apply: func(ctx context.Context, lc kube.LiveConfig) error {
			if lc.SyncInterval > 0 {
				if err := r.SetSyncInterval(ctx, lc.SyncInterval); err != nil {
					return err
				}
			}
			if err := r.SetMaxClients(ctx, lc.MaxClients); err != nil {
				return err
			}
			return applyRules(ctx, r, lc.Rules, log)
		},
	}
	go w.Run(ctx)
	go func() {
		defer close(done)
		rep.Run(ctx)
	}()
	log.Info("reporting to the Room object", "room", o.namespace+"/"+o.room)
	return done
}

// readAuthSecret returns the join-token secret from --auth-secret-file or XROOMS_AUTH_SECRET,
// byte for byte (a trailing newline is part of it), or nil when neither is set.
func readAuthSecret(o options, getenv func(string) string) ([]byte, error) {
	env := getenv(envAuthSecret)
	switch {
	case o.authSecretFile != "" && env != "":
		return nil, fmt.Errorf("set --auth-secret-file or %s, not both", envAuthSecret)
	case env != "":
		if err := auth.CheckSecret([]byte(env)); err != nil {
			return nil, fmt.Errorf("%s: %w", envAuthSecret, err)
		}
		return []byte(env), nil
	case o.authSecretFile == "":
		return nil, nil
	}
	b, err := os.ReadFile(o.authSecretFile)
	if err != nil {
		return nil, fmt.Errorf("--auth-secret-file: %w", err)
	}
	if err := auth.CheckSecret(b); err != nil {
		return nil, fmt.Errorf("--auth-secret-file %s: %w", o.authSecretFile, err)
	}
	return b, nil
}

// applyRules compiles the Room's rules and gives them to the room. Rules that do not compile
// are logged and the room keeps its last good ones: the controller reports the same error on
// the Room (RulesValid), and retrying the same spec could not succeed.
func applyRules(ctx context.Context, r *room.Room, decls []rules.Decl, log *slog.Logger) error {
	t, err := rules.Compile(decls)
	if err != nil {
		log.Error("the Room's rules do not compile; keeping the last good rules", "err", err)
		return nil
	}
	return r.SetRules(ctx, t)
}

func newLogger(o options, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	if o.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}

// readInitialEntities reads --initial-entities: JSON itself when it starts with '{', else a
// file of JSON.
func readInitialEntities(v string) (entity.State, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil, nil
	}
	data, src := []byte(v), "--initial-entities"
	if !strings.HasPrefix(v, "{") {
		var err error
		if data, err = os.ReadFile(v); err != nil {
			return nil, fmt.Errorf("--initial-entities: %w", err)
		}
		src = v
	}
	var st entity.State
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf(`%s: want {"entity_id": {"component": value}}: %w`, src, err)
	}
	for id := range st {
		if id == "" {
			return nil, fmt.Errorf("%s: entity ids must not be empty", src)
		}
		if st[id] == nil {
			st[id] = entity.Components{}
		}
	}
	return st, nil
}
