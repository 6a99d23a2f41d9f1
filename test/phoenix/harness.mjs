// Test harness: starts the real roomserver binary and connects official phoenix clients to it.
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import net from "node:net";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const require = createRequire(import.meta.url);
export const WebSocket = require("ws");
export const clients = { "1.8": require("phoenix"), "1.7": require("phoenix17") };
import { decodeDiff, decodeState } from "../../clients/js/xrooms-compact.mjs";


export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export function tempDir() {
  return fs.mkdtempSync(path.join(os.tmpdir(), "xrooms-phx-"));
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// waitFor polls fn until it returns a truthy value or the timeout passes.
export async function waitFor(fn, what, timeoutMs = 5000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

// startServer runs the roomserver and resolves once /readyz answers 200.
export async function startServer({ room = "lobby", port, dataDir, syncInterval = "50ms", initialEntities, extraArgs = [] } = {}) {
  const bin = process.env.XROOMS_ROOMSERVER;
  if (!bin) throw new Error("XROOMS_ROOMSERVER must name the roomserver binary (go test ./test/phoenix sets it)");
  port ??= await freePort();
  const args = ["--room", room, "--listen", `127.0.0.1:${port}`, "--sync-interval", syncInterval, ...extraArgs];
  if (dataDir) args.push("--data-dir", dataDir);
  if (initialEntities) {
    const file = path.join(tempDir(), "initial.json");
    fs.writeFileSync(file, JSON.stringify(initialEntities));
    args.push("--initial-entities", file);
  }
  const proc = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  proc.stdout.on("data", (d) => (log += d));
  proc.stderr.on("data", (d) => (log += d));
  const exited = new Promise((resolve) => proc.on("exit", (code, signal) => resolve({ code, signal })));
  const base = `http://127.0.0.1:${port}`;
  const end = Date.now() + 10000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`roomserver exited early:\n${log}`);
    try {
      const r = await fetch(`${base}/readyz`);
      if (r.status === 200) break;
    } catch {}
    if (Date.now() > end) throw new Error(`roomserver not ready:\n${log}`);
    await sleep(20);
  }
  return {
    port,
    base,
    url: `ws://127.0.0.1:${port}/socket`,
    log: () => log,
    exited,
    async stop(signal = "SIGTERM") {
      if (proc.exitCode === null) proc.kill(signal);
      return exited;
    },
  };
}

// Member is one official phoenix client joined to a room, mirroring the room's entities the
// way a front end does: entities_state replaces, entities_diff applies creates, updates, deletes.
// With compact, the member joins with {encoding: "compact"} and decodes the binary payloads
// with the repo's decoder, as a front end that opts in does; binaryPayloads counts them.
export class Member {
  constructor(version, url, { params = {}, joinPayload = {}, room = "lobby", heartbeatIntervalMs = 30000, compact = false } = {}) {
    const { Socket } = clients[version];
    this.socket = new Socket(url, { transport: WebSocket, params, heartbeatIntervalMs, reconnectAfterMs: () => 50, rejoinAfterMs: () => 100, logger: () => {} });
    this.entities = {};
    this.states = 0;
    this.diffs = [];
    this.diffAt = []; // arrival time of each diff, ms
    this.heartbeatReplies = 0;
    this.closes = [];
    this.socket.onMessage((m) => {
      if (m.topic === "phoenix" && m.event === "phx_reply" && m.payload.status === "ok") this.heartbeatReplies++;
    });
    this.socket.onClose((e) => this.closes.push(e.code));
    this.socket.connect();
    this.channel = this.socket.channel(`room:${room}`, compact ? { ...joinPayload, encoding: "compact" } : joinPayload);
    this.binaryPayloads = 0;
    const decoded = (decode) => (p) => {
      if (p instanceof ArrayBuffer) {
        this.binaryPayloads++;
        return decode(p);
      }
      return p;
    };
    const state = decoded(decodeState);
    const diff = decoded(decodeDiff);
    this.channel.on("entities_state", (p) => {
      const s = state(p);
      this.entities = structuredClone(s);
      this.states++;
    });
    this.channel.on("entities_diff", (p) => {
      const d = diff(p);
      this.diffs.push(d);
      this.diffAt.push(performance.now());
      for (const [id, c] of Object.entries(d.creates)) this.entities[id] = structuredClone(c);
      for (const [id, c] of Object.entries(d.updates)) if (this.entities[id]) Object.assign(this.entities[id], structuredClone(c));
      for (const id of Object.keys(d.deletes)) delete this.entities[id];
    });
  }

  join() {
    return new Promise((resolve, reject) => {
      this.channel.join().receive("ok", resolve).receive("error", (e) => reject(new Error(`join refused: ${JSON.stringify(e)}`))).receive("timeout", () => reject(new Error("join timed out")));
    });
  }

  push(event, payload) {
    return new Promise((resolve, reject) => {
      this.channel.push(event, payload).receive("ok", resolve).receive("error", (e) => reject(Object.assign(new Error(`push refused: ${JSON.stringify(e)}`), { reply: e }))).receive("timeout", () => reject(new Error("push timed out")));
    });
  }

  leave() {
    return new Promise((resolve) => this.channel.leave().receive("ok", resolve));
  }

  disconnect() {
    return new Promise((resolve) => this.socket.disconnect(resolve));
  }
}
