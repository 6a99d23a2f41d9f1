// Rooms that require join tokens (--auth-secret-file), with the official phoenix client:
// 1.8's authToken option (sent as a Sec-WebSocket-Protocol entry), and the token socket param,
// which 1.7 (no authToken option) and 1.8 both send.
import { test } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { WebSocket, clients, startServer, tempDir, waitFor, sleep } from "./harness.mjs";

const secret = "phoenix client test secret, 32 bytes or more";

// mint signs a join token as any backend would: HS256, sub, aud "xrooms:<namespace>/<room>", exp.
function mint({ sub = "alice", aud = "xrooms:default/lobby", exp = Math.floor(Date.now() / 1000) + 3600, key = secret } = {}) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const unsigned = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ sub, aud, exp })}`;
  return `${unsigned}.${crypto.createHmac("sha256", key).update(unsigned).digest("base64url")}`;
}

async function authServer(t) {
  const file = path.join(tempDir(), "secret");
  fs.writeFileSync(file, secret);
  const server = await startServer({ extraArgs: ["--auth-secret-file", file] });
  t.after(() => server.stop());
  return server;
}

// connect opens a socket and a channel on room:lobby; join resolves with the reply or rejects.
function connect(t, version, url, opts) {
  const { Socket } = clients[version];
  const socket = new Socket(url, { transport: WebSocket, reconnectAfterMs: () => 50, rejoinAfterMs: () => 100, logger: () => {}, ...opts });
  const errors = [];
  socket.onError((e) => errors.push(e));
  socket.connect();
  t.after(() => new Promise((resolve) => socket.disconnect(resolve)));
  const channel = socket.channel("room:lobby", {});
  const joined = new Promise((resolve, reject) => {
    channel.join().receive("ok", resolve).receive("error", (e) => reject(new Error(`join refused: ${JSON.stringify(e)}`)));
  });
  return { socket, channel, joined, errors };
}

const goodWays = [
  ["1.8", "authToken", (tok) => ({ authToken: tok })],
  ["1.8", "params token", (tok) => ({ params: { token: tok } })],
  ["1.7", "params token", (tok) => ({ params: { token: tok } })],
];

for (const [version, how, opts] of goodWays) {
  test(`phoenix ${version}: a signed token in ${how} joins as its subject`, async (t) => {
    const server = await authServer(t);
    const tok = mint({ sub: "alice" });
    const { joined } = connect(t, version, server.url, opts(tok));
    const reply = await joined;
    assert.equal(reply.user_id, "alice");
    assert.ok(!server.log().includes(tok), "the token is not logged");
  });
}

const badTokens = {
  "wrong secret": () => mint({ key: "another secret of at least 32 bytes!!" }),
  expired: () => mint({ exp: Math.floor(Date.now() / 1000) - 120 }),
  "other room": () => mint({ aud: "xrooms:default/hall" }),
  garbage: () => "not-a-token",
};

for (const [version, how, opts] of goodWays) {
  for (const [name, make] of Object.entries(badTokens)) {
    test(`phoenix ${version}: a bad token (${name}) in ${how} never joins`, async (t) => {
      const server = await authServer(t);
      const tok = make();
      const { channel, joined, errors } = connect(t, version, server.url, opts(tok));
      let isJoined = false;
      joined.then(() => (isJoined = true), () => {});
      // The client retries with backoff (every 50 ms here); each attempt gets 403.
      await waitFor(() => errors.length >= 3, "three refused connection attempts");
      await sleep(200);
      assert.equal(isJoined, false);
      assert.notEqual(channel.state, "joined");
      assert.ok((server.log().match(/socket refused/g) ?? []).length >= 3, "refusals are logged");
      assert.ok(!server.log().includes(tok), "the token is not logged");
    });
  }
}

test("phoenix 1.8: no token at all never joins", async (t) => {
  const server = await authServer(t);
  const { channel, errors } = connect(t, "1.8", server.url, {});
  await waitFor(() => errors.length >= 2, "refused connection attempts");
  assert.notEqual(channel.state, "joined");
});
