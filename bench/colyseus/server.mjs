// A minimal Colyseus 0.18 room server: the peer in `make bench` (cmd/roomload compare).
//
// One room type, "bench". Its state is a MapSchema of players keyed by sessionId; each client
// sends "move" {position:[x,y,z], rotation:[x,y,z,w], seq} and the room copies it into the
// player's fields; Colyseus sends the state patches every 50 ms (patchRate), as xrooms syncs
// entities every 50 ms (--sync-interval 50ms).
//
// Schema types: float32 for position and rotation (4 bytes each on the wire, what a Colyseus
// game would pick for transforms; the idiomatic alternative "number" would send 9-byte
// float64s) and uint32 for seq. Plain JavaScript: schema() with t.* builders needs no decorators.
//
// @colyseus/core 0.18 declares node >= 22 (npm warns EBADENGINE); it runs on Node 20 as well.
//
//	node server.mjs [port]     (or PORT=...; default 2567). Prints "ready <port>" when listening.
import { Server, Room } from "@colyseus/core";
import { WebSocketTransport } from "@colyseus/ws-transport";
import { Encoder, schema, t } from "@colyseus/schema";

// Room for the state of a thousand players, as Colyseus advises when a patch outgrows the
// default 8 KB encode buffer (it then warns and grows the buffer patch after patch).
Encoder.BUFFER_SIZE = 256 * 1024;

export const Player = schema({
  x: t.float32(), y: t.float32(), z: t.float32(),
  rx: t.float32(), ry: t.float32(), rz: t.float32(), rw: t.float32(),
  seq: t.uint32(),
}, "Player");

export const BenchState = schema({
  players: t.map(Player),
}, "BenchState");

class BenchRoom extends Room {
  state = new BenchState();
  // The same as setPatchRate(50), which 0.18 marks deprecated.
  patchRate = 50;
  // The load generator opens hundreds of sockets from one address.
  maxClients = 100000;

  onCreate() {
    this.autoDispose = false;
    this.onMessage("move", (client, m) => {
      const p = this.state.players.get(client.sessionId);
      if (!p || !m || !Array.isArray(m.position) || !Array.isArray(m.rotation)) {
        return;
      }
      p.x = m.position[0]; p.y = m.position[1]; p.z = m.position[2];
      p.rx = m.rotation[0]; p.ry = m.rotation[1]; p.rz = m.rotation[2]; p.rw = m.rotation[3];
      p.seq = m.seq;
    });
  }

  onJoin(client) {
    this.state.players.set(client.sessionId, new Player());
  }

  onLeave(client) {
    this.state.players.delete(client.sessionId);
  }
}

const port = Number(process.argv[2] || process.env.PORT || 2567);
const host = process.env.HOST || "127.0.0.1";
const server = new Server({ transport: new WebSocketTransport(), greet: false, logger: { ...console, info() {}, debug() {} } });
server.define("bench", BenchRoom);
await server.listen(port, host);
console.log(`ready ${port}`);

for (const sig of ["SIGTERM", "SIGINT"]) {
  process.on(sig, () => process.exit(0));
}
