// Load generator for the Colyseus peer (server.mjs): the workload of cmd/roomload, against a
// Colyseus room. N clients join room "bench" and each sends "move" {position[3], rotation[4],
// seq} (a random walk, as roomload's) at --rate Hz for --duration; the room patches state every 50 ms.
//
// Most clients are cheap: a raw `ws` socket doing what the SDK does to join (POST
// /matchmake/joinOrCreate/bench, WebSocket to /<processId>/<roomId>?sessionId=..., JOIN_ROOM
// acknowledged) and sending the SDK's exact move frame, counting what it receives without
// decoding it. The first --measure clients are official @colyseus/sdk clients that decode
// every patch into their state; a client's latency for move seq n is the time until the first
// patch after which its own player's seq is >= n.
//
// It prints one JSON line with the fields of cmd/roomload's result. Every ROOM_STATE_PATCH
// frame counts as a diff; received_mb_per_s counts the bytes of every message every client
// received. Each measuring client decodes every patch of all N players, which costs far more
// than a raw client: 50 of them at N=500 saturate one core (roomload compare picks fewer as
// N grows, see peerMeasure in cmd/roomload/compare.go). On stderr it prints "window start"
// and "window end" around the measured window (after all clients joined), so a caller can
// sample the server's CPU over the same window.
//
//	node load.mjs --url http://127.0.0.1:2567 --clients 300 --rate 20 --duration 10s --measure 50
import { Client } from "@colyseus/sdk";
import { encode } from "@colyseus/schema";
import { Packr } from "msgpackr";
import WebSocket from "ws";

// stdout carries the one JSON result line: what the SDK logs (its reconnection notices) goes
// to stderr.
console.log = console.info = (...args) => process.stderr.write(args.join(" ") + "\n");

const JOIN_ROOM = 10, ERROR = 11, ROOM_DATA = 13, ROOM_STATE_PATCH = 15, CODE_MASK = 31;

function parseArgs(argv) {
  const o = { url: "http://127.0.0.1:2567", room: "bench", clients: 100, rate: 20, duration: 10, measure: 50 };
  for (let i = 0; i < argv.length; i++) {
    const [k, inline] = argv[i].replace(/^--?/, "").split("=", 2);
    const v = inline ?? argv[++i];
    if (v === undefined) throw new Error(`flag --${k} needs a value`);
    switch (k) {
      case "url": o.url = v; break;
      case "room": o.room = v; break;
      case "clients": o.clients = parseInt(v, 10); break;
      case "rate": o.rate = Number(v); break;
      case "measure": o.measure = parseInt(v, 10); break;
      case "duration": o.duration = parseDuration(v); break;
      default: throw new Error(`unknown flag --${k}`);
    }
  }
  if (!(o.clients >= 1) || !(o.rate > 0) || !(o.duration > 0)) {
    throw new Error("clients, rate and duration must be positive");
  }
  if (!(o.measure > 0) || o.measure > o.clients) o.measure = o.clients;
  return o;
}

// parseDuration takes Go-style "10s", "500ms", "1m" or plain seconds; returns seconds.
function parseDuration(s) {
  const m = /^([\d.]+)(ms|s|m)?$/.exec(s);
  if (!m) throw new Error(`bad duration ${s}`);
  const n = Number(m[1]);
  return m[2] === "ms" ? n / 1000 : m[2] === "m" ? n * 60 : n;
}

const c = { sent: 0, received: 0, diffs: 0, bytes: 0, errors: 0, firstError: "" };
function fail(err) {
  c.errors++;
  if (!c.firstError) {
    const cause = err?.cause ? ` (${err.cause.code ?? err.cause.message ?? err.cause})` : "";
    c.firstError = String(err?.message ?? err) + cause;
  }
}
function count(buf) {
  c.received++;
  c.bytes += buf.byteLength;
  if ((buf[0] & CODE_MASK) === ROOM_STATE_PATCH) c.diffs++;
}

// Walker moves a client as cmd/roomload's walker does: a random walk on the floor and a
// turning head, rounded to millimetres and 1e-4, every field changing at every move (Colyseus
// sends only the fields that changed, so constant values would flatter it).
class Walker {
  constructor() {
    this.x = Math.random() * 20 - 10;
    this.y = 1.6 + Math.random() * 0.2;
    this.z = Math.random() * 20 - 10;
    this.yaw = Math.random() * 2 * Math.PI;
    this.pitch = 0;
  }

  step() {
    const clamp = (v, lo, hi) => Math.max(lo, Math.min(hi, v));
    const r = (v, scale) => Math.round(v * scale) / scale + 0;
    this.x = clamp(this.x + Math.random() * 0.1 - 0.05, -10, 10);
    this.z = clamp(this.z + Math.random() * 0.1 - 0.05, -10, 10);
    this.y = clamp(this.y + Math.random() * 0.02 - 0.01, 1.4, 1.9);
    this.yaw += Math.random() * 0.2 - 0.1;
    this.pitch = clamp(this.pitch + Math.random() * 0.1 - 0.05, -0.5, 0.5);
    const sy = Math.sin(this.yaw / 2), cy = Math.cos(this.yaw / 2);
    const sp = Math.sin(this.pitch / 2), cp = Math.cos(this.pitch / 2);
    return {
      position: [r(this.x, 1e3), r(this.y, 1e3), r(this.z, 1e3)],
      rotation: [r(cy * sp, 1e4), r(sy * cp, 1e4), r(-sy * sp, 1e4), r(cy * cp, 1e4)],
    };
  }
}

function movePayload(walker, seq) {
  return { ...walker.step(), seq };
}

// The frame Room.send("move", payload) writes: ROOM_DATA, the type as a schema string, then
// the payload packed with msgpackr (as the SDK's Packr does).
const packr = new Packr();
const header = (() => {
  const buf = new Uint8Array(16);
  const it = { offset: 1 };
  buf[0] = ROOM_DATA;
  encode.string(buf, "move", it);
  return buf.slice(0, it.offset);
})();
function moveFrame(walker, seq) {
  const body = packr.pack(movePayload(walker, seq));
  const out = new Uint8Array(header.length + body.length);
  out.set(header, 0);
  out.set(body, header.length);
  return out;
}

// A cheap client: joins as the SDK does, sends moves, counts what it receives.
class RawClient {
  constructor(opts) { this.opts = opts; this.walker = new Walker(); }

  async connect() {
    const res = await fetch(`${this.opts.url}/matchmake/joinOrCreate/${this.opts.room}`, {
      method: "POST",
      headers: { "Accept": "application/json", "Content-Type": "application/json" },
      body: "{}",
    });
    const seat = await res.json();
    if (!res.ok || seat.error || !seat.sessionId) {
      throw new Error(`matchmake failed: ${res.status} ${JSON.stringify(seat)}`);
    }
    const wsURL = this.opts.url.replace(/^http/, "ws") + `/${seat.processId}/${seat.roomId}?sessionId=${seat.sessionId}`;
    const ws = new WebSocket(wsURL, { perMessageDeflate: false });
    ws.binaryType = "nodebuffer";
    this.ws = ws;
    await new Promise((resolve, reject) => {
      ws.once("error", reject);
      ws.once("close", (code) => reject(new Error(`closed before join: ${code}`)));
      ws.on("message", (data) => {
        if (this.joined) {
          count(data);
          if ((data[0] & CODE_MASK) === ERROR) fail(new Error("server sent ERROR"));
          return;
        }
        if ((data[0] & CODE_MASK) === JOIN_ROOM) {
          this.joined = true;
          ws.send(Uint8Array.of(JOIN_ROOM));
          ws.removeAllListeners("close");
          ws.removeAllListeners("error");
          ws.on("error", (err) => { if (!stopping) fail(err); });
          ws.on("close", (code) => { if (!stopping) fail(new Error(`socket closed: ${code}`)); });
          resolve();
        } else if ((data[0] & CODE_MASK) === ERROR) {
          reject(new Error("join refused"));
        }
      });
    });
  }

  send(seq) {
    this.ws.send(moveFrame(this.walker, seq));
  }
}

// A measuring client: the official SDK decodes every patch into room.state.
class SDKClient {
  constructor(opts) { this.opts = opts; this.walker = new Walker(); this.sentAt = []; this.answered = 0; this.latencies = []; }

  async connect() {
    const client = new Client(this.opts.url);
    const room = await client.joinOrCreate(this.opts.room);
    this.room = room;
    room.onError((code, message) => { if (!stopping) fail(new Error(`room error ${code}: ${message}`)); });
    room.onLeave((code) => { if (!stopping) fail(new Error(`left room: ${code}`)); });
    // Count every frame and, once the SDK has applied a patch, look up our own seq.
    const events = room.connection.events;
    const decode = events.onmessage;
    events.onmessage = (ev) => {
      const buf = new Uint8Array(ev.data);
      const now = performance.now();
      count(buf);
      decode(ev);
      if ((buf[0] & CODE_MASK) !== ROOM_STATE_PATCH) return;
      const me = room.state.players?.get(room.sessionId);
      if (!me) return;
      for (; this.answered <= me.seq && this.answered < this.sentAt.length; this.answered++) {
        this.latencies.push(now - this.sentAt[this.answered]);
      }
    };
  }

  send(seq) {
    this.sentAt.push(performance.now());
    this.room.send("move", movePayload(this.walker, seq));
  }
}

let stopping = false;

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const clients = [];
  for (let i = 0; i < o.clients; i++) {
    // The measuring clients are spread evenly over the join order, as a server fans patches
    // out in join order and the first joiners alone would see the shortest waits.
    const measures = Math.floor(i * o.measure / o.clients) !== Math.floor((i + 1) * o.measure / o.clients);
    clients.push(measures ? new SDKClient(o) : new RawClient(o));
  }
  // Join everyone first, 32 at a time, so the measured window is steady state.
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(32, clients.length) }, async () => {
    while (next < clients.length) {
      const cl = clients[next++];
      try {
        await cl.connect();
        cl.ok = true;
      } catch (err) {
        fail(err);
      }
    }
  }));

  c.sent = c.received = c.diffs = c.bytes = 0;
  process.stderr.write("window start\n");
  const start = performance.now();
  const interval = 1000 / o.rate;
  const live = clients.filter((cl) => cl.ok);
  // Client i sends move k at start + (k + i/n) * interval: the clients' moves are spread over
  // each interval, as real clients are, and one timer drives them all without drift.
  const n = live.length;
  let slot = 0;
  const tick = () => {
    const due = Math.floor((performance.now() - start) / interval * n);
    for (; slot <= due && n > 0; slot++) {
      try {
        live[slot % n].send(Math.floor(slot / n));
        c.sent++;
      } catch (err) {
        fail(err);
      }
    }
  };
  const timer = setInterval(tick, 2);
  tick();
  await new Promise((resolve) => setTimeout(resolve, o.duration * 1000));
  clearInterval(timer);
  const elapsed = (performance.now() - start) / 1000;
  process.stderr.write("window end\n");
  if (elapsed > o.duration * 1.1 + 0.5 || c.sent < 0.9 * n * o.rate * elapsed) {
    process.stderr.write(`load: warning: the generator fell behind (${Math.round(c.sent / elapsed)} moves/s of ${n * o.rate}, ` +
      `window ${elapsed.toFixed(1)}s of ${o.duration}s); fewer --measure clients decode less\n`);
  }
  const r2 = (x) => Math.round(x * 100) / 100;
  const res = {
    clients: o.clients,
    duration_s: r2(elapsed),
    sent_per_s: r2(c.sent / elapsed),
    received_msgs_per_s: r2(c.received / elapsed),
    diffs_per_s: r2(c.diffs / elapsed),
    received_mb_per_s: r2(c.bytes / elapsed / 1e6),
  };
  // Give the last patches one moment to land, then close everyone.
  await new Promise((resolve) => setTimeout(resolve, 200));
  stopping = true;
  const lat = [];
  for (const cl of clients) {
    if (cl.latencies) lat.push(...cl.latencies);
    if (cl.ws) cl.ws.terminate();
    if (cl.room) cl.room.connection.close();
  }
  lat.sort((a, b) => a - b);
  res.latency_samples = lat.length;
  res.p50_ms = lat.length ? r2(lat[Math.floor(lat.length / 2)]) : 0;
  res.p99_ms = lat.length ? r2(lat[Math.min(lat.length - 1, Math.floor(lat.length * 99 / 100))]) : 0;
  res.max_ms = lat.length ? r2(lat[lat.length - 1]) : 0;
  res.errors = c.errors;
  if (c.firstError) res.first_error = c.firstError;
  process.stdout.write(JSON.stringify(res) + "\n");
  process.exit(0);
}

main().catch((err) => {
  process.stderr.write(`load: ${err?.stack ?? err}\n`);
  process.exit(1);
});
