package server

import (
	"bytes"
	"compress/flate"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/xrooms/xrooms/roomserver/entity"
	"github.com/xrooms/xrooms/roomserver/protocol"
)

// movedDiff is a flush's diff after n users each moved once.
func movedDiff(n int) []byte {
	d := entity.NewDiff()
	for i := range n {
		d.Updates[fmt.Sprintf("user-%05d", i)] = entity.Components{
			"position": json.RawMessage(fmt.Sprintf("[%.3f,1.62,%.3f]", float64(i%97)*0.173-8, float64(i%89)*0.211-9)),
			"rotation": json.RawMessage(fmt.Sprintf("[0.0123,%.4f,-0.0011,%.4f]", float64(i%13)*0.07, 1-float64(i%13)*0.01)),
			"seq":      json.RawMessage(fmt.Sprint(i * 7)),
		}
	}
	return d.AppendJSON(nil)
}

// sockets returns the server sides of n real WebSockets over loopback, made by the room
// server's upgrader, whose clients (offering deflate or not) discard everything.
func sockets(b *testing.B, n int, deflate bool) []*socket {
	b.Helper()
	conns := make(chan *socket, n)
	up := newUpgrader(Config{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw := &corkingWriter{ResponseWriter: w}
		c, err := up.Upgrade(cw, r, nil)
		if err != nil {
			b.Error(err)
			return
		}
		c.EnableWriteCompression(false)
		conns <- &socket{srv: &Server{cfg: Config{WriteTimeout: 10 * time.Second}}, conn: c, cork: cw.conn}
	}))
	b.Cleanup(srv.Close)
	d := websocket.Dialer{EnableCompression: deflate}
	var out []*socket
	for range n {
		c, _, err := d.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		go func() {
			// NextReader skips what was not read: the clients cost no inflating, which is
			// the browsers' work, not the server's.
			for {
				if _, _, err := c.NextReader(); err != nil {
					return
				}
			}
		}()
		sock := <-conns
		b.Cleanup(func() { sock.conn.NetConn().Close() })
		out = append(out, sock)
	}
	return out
}

// deflatedSize is body's size deflated as permessage-deflate sends it (level 1, no context).
func deflatedSize(body []byte) int {
	var buf bytes.Buffer
	w, _ := flate.NewWriter(&buf, 1)
	w.Write(body)
	w.Flush()
	return buf.Len() - 4 // the sync flush's 00 00 ff ff tail is not sent
}

// BenchmarkCompressDiff is the once-per-flush cost of a 500-user diff: encoding its frame,
// preparing it, and the first write to a socket that negotiated deflate, which compresses it.
func BenchmarkCompressDiff(b *testing.B) {
	body := movedDiff(500)
	sock := sockets(b, 1, true)[0]
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		e := protocol.Encode(protocol.V2, protocol.Broadcast("room:lobby", "entities_diff", body)).Prepare()
		if err := sock.write([]protocol.Encoded{e}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(body)), "json-bytes")
	b.ReportMetric(float64(deflatedSize(body)), "deflated-bytes")
}

// BenchmarkFanOut is the per-flush cost of writing one prepared 500-user diff to 50 members'
// sockets, once compressed for all: per member, one write of the shared bytes.
func BenchmarkFanOut(b *testing.B) {
	body := movedDiff(500)
	for _, deflate := range []bool{false, true} {
		b.Run(fmt.Sprintf("deflate=%v", deflate), func(b *testing.B) {
			socks := sockets(b, 50, deflate)
			batch := []protocol.Encoded{protocol.Encode(protocol.V2, protocol.Broadcast("room:lobby", "entities_diff", body)).Prepare()}
			socks[0].write(batch) // compresses, once
			b.ReportAllocs()
			for b.Loop() {
				for _, s := range socks {
					if err := s.write(batch); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(socks)), "ns/member")
		})
	}
}
