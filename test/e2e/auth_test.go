package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/xrooms/xrooms/roomserver/auth"
)

// TestRoomWithAuth: a Room whose Secret is missing says so; once the Secret exists the room
// runs, admits a token minted with its secret, and refuses a socket without one before the
// upgrade.
func TestRoomWithAuth(t *testing.T) {
	c := startCluster(t)
	ctx := context.Background()
	const secret = "e2e join-token secret, 32 bytes or more"
	file := filepath.Join(t.TempDir(), "private.yaml")
	if err := os.WriteFile(file, []byte(`apiVersion: xrooms.dev/v1alpha1
kind: Room
metadata: {name: private}
spec:
  auth: {secretRef: {name: private-auth, key: secret}}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	kubectl(t, c, "apply", "-f", file)
	eventually(t, 30*time.Second, "private Failed for want of its Secret", func() string {
		if r := roomRow(t, c, "private"); r["PHASE"] != "Failed" || r["ACCESS"] != "AuthSecretMissing" {
			return fmt.Sprint(r)
		}
		return ""
	})
	kubectl(t, c, "create", "secret", "generic", "private-auth", "--from-literal=secret="+secret)
	eventually(t, 60*time.Second, "private Running with tokens required", func() string {
		if r := roomRow(t, c, "private"); r["PHASE"] != "Running" || r["ACCESS"] != "TokenRequired" {
			return fmt.Sprint(r)
		}
		return ""
	})
	eventually(t, 30*time.Second, "the room server reports it is not open", func() string {
		msg := kubectl(t, c, "get", "room", "private", "-o", `jsonpath={.status.conditions[?(@.type=="ServerReady")].message}`)
		if msg == "" || strings.Contains(msg, "open") {
			return msg
		}
		return ""
	})

	base, err := c.RoomURL(ctx, getRoom(t, c, "private"))
	if err != nil {
		t.Fatal(err)
	}
	dial := func(query string) (*websocket.Conn, *http.Response, error) {
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return websocket.Dial(dctx, base+"/websocket?vsn=2.0.0"+query, nil)
	}
	if conn, resp, err := dial("&user_id=mallory"); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		if conn != nil {
			conn.CloseNow()
		}
		t.Fatalf("without a token: %v, want 403 before the upgrade", err)
	}
	tok, err := auth.Mint([]byte(secret), "default", "private", "alice", time.Minute, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	conn, _, err := dial("&token=" + url.QueryEscape(tok))
	if err != nil {
		t.Fatalf("with a token: %v", err)
	}
	defer conn.CloseNow()
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := conn.Write(rctx, websocket.MessageText, []byte(`["1","1","room:private","phx_join",{}]`)); err != nil {
		t.Fatal(err)
	}
	_, reply, err := conn.Read(rctx)
	if want := `["1","1","room:private","phx_reply",{"status":"ok","response":{"user_id":"alice"}}]`; err != nil || string(reply) != want {
		t.Fatalf("join reply %s, %v; want %s", reply, err, want)
	}
}
