// The official phoenix JS client (1.8 and 1.7, unmodified) against the real roomserver binary.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Member, startServer, tempDir, waitFor, sleep } from "./harness.mjs";

const scene = {
  floor: { position: [0, 0, 0], shape: "plane", scale: [10, 1, 10] },
  box1: { position: [1, 0.5, 1], shape: "box", color: "red" },
  spawn: { position: [0, 0, 5], spawn_point: true },
};

for (const version of ["1.8", "1.7"]) {
  test(`phoenix ${version}: two members share a room`, async (t) => {
    const server = await startServer({ initialEntities: scene });
    const members = [];
    t.after(async () => {
      await Promise.all(members.map((m) => m.disconnect()));
      await server.stop();
    });
    const member = (...a) => {
      const m = new Member(version, server.url, ...a);
      members.push(m);
      return m;
    };

    const alice = member({ params: { user_id: "alice" }, joinPayload: { pose: { position: [0, 0, 0] }, avatar: "fox" }, heartbeatIntervalMs: 100 });
    const bob = member({ params: { user_id: "bob" }, heartbeatIntervalMs: 100 });
    const aliceReply = await alice.join();
    await bob.join();
    assert.equal(aliceReply.user_id, "alice");

    // join -> entities_state with the room's initial scene (a frame of its own, right after the reply)
    await waitFor(() => alice.states >= 1 && bob.states >= 1, "entities_state");
    assert.deepEqual(bob.entities.floor, scene.floor);
    assert.deepEqual(bob.entities.box1, scene.box1);

    // alice's user_joined reaches bob as a create carrying her join components
    await waitFor(() => bob.entities.alice, "alice's entity at bob");
    assert.deepEqual(bob.entities.alice, { pose: { position: [0, 0, 0] }, avatar: "fox" });

    // a move by one reaches the other as an entities_diff update
    await alice.push("i_moved", { pose: { position: [1, 2, 3] } });
    await waitFor(() => bob.entities.alice?.pose?.position?.[2] === 3, "alice's move at bob");
    assert.ok(bob.diffs.some((d) => d.updates.alice?.pose), "the move came as an update");

    // the server stamps the member's own user_id: alice cannot move bob
    await waitFor(() => alice.entities.bob, "bob's entity at alice");
    await alice.push("i_moved", { user_id: "bob", pose: { position: [9, 9, 9] } });
    await waitFor(() => bob.entities.alice?.pose?.position?.[0] === 9, "alice's second move");
    assert.equal(bob.entities.bob.pose, undefined, "bob was not moved by alice");

    // a rule that fails answers the pusher with an error and changes nothing
    await assert.rejects(alice.push("user_picked_up", { hand: "left" }), (e) => {
      assert.match(e.reply.reason, /target_id/);
      return true;
    });
    await alice.push("user_picked_up", { target_id: "box1", hand: "left" });
    await waitFor(() => bob.entities.box1?.parent === "alice:left", "box1 held by alice");

    // a later joiner's entities_state equals what the members built from diffs
    await sleep(150);
    const carol = member({ params: { user_id: "carol" } });
    await carol.join();
    await waitFor(() => carol.states >= 1, "carol's entities_state");
    const { carol: _c, ...carolView } = carol.entities;
    const { carol: _b, ...bobView } = bob.entities;
    assert.deepEqual(carolView, bobView);

    // heartbeats are answered; nobody was disconnected
    await waitFor(() => alice.heartbeatReplies >= 3, "three heartbeat replies (100ms interval)", 3000);
    assert.deepEqual(alice.closes, []);

    // leave -> delete at the others
    await alice.leave();
    await waitFor(() => !("alice" in bob.entities), "alice's entity deleted at bob");
    assert.ok(bob.diffs.some((d) => "alice" in d.deletes), "the leave came as a delete");
  });

  test(`phoenix ${version}: compact members decode binary diffs to what JSON members see, all deflated`, async (t) => {
    const server = await startServer({ initialEntities: scene, syncInterval: "20ms" });
    const json = new Member(version, server.url, { params: { user_id: "json" } });
    const bin = new Member(version, server.url, { params: { user_id: "bin" }, compact: true });
    t.after(async () => {
      await json.disconnect();
      await bin.disconnect();
      await server.stop();
    });
    await json.join();
    await bin.join();
    // ws offers permessage-deflate, as browsers do, and the server takes it.
    assert.match(json.socket.conn.extensions, /permessage-deflate/);
    await waitFor(() => bin.states >= 1, "compact entities_state");
    assert.deepEqual(bin.entities.box1, scene.box1);

    // Moves with awkward numbers, a string with escapes, a nested object, then a leave.
    const moves = [
      { position: [0.1, -2.5, 1e-7], rotation: [0, 0.7071, 0, 0.7071] },
      { position: [123456789.123, 2 ** 53, -0], label: 'a "quoted" ünïcode ✓ \n', pose: { hand: [1, 2], ok: true, none: null } },
    ];
    for (const m of moves) await json.push("i_moved", m);
    await bin.push("i_moved", { position: [3, 2, 1] });
    await json.push("user_picked_up", { target_id: "box1", hand: "left" });
    await waitFor(() => bin.entities.box1?.parent === "json:left" && bin.entities.json?.label && json.entities.bin?.position?.[0] === 3, "the changes at both");
    await sleep(100); // a few more flushes: nothing more is pending
    assert.deepEqual(bin.entities, json.entities);
    assert.ok(bin.binaryPayloads >= 3, `binary payloads: ${bin.binaryPayloads}`);
    assert.equal(json.binaryPayloads, 0);
    assert.ok(bin.diffs.length > 0);

    await json.leave();
    await waitFor(() => !("json" in bin.entities), "json's entity deleted at the compact member");
  });

  test(`phoenix ${version}: a member with no user_id gets one from the server`, async (t) => {
    const server = await startServer();
    const m = new Member(version, server.url);
    t.after(async () => {
      await m.disconnect();
      await server.stop();
    });
    const reply = await m.join();
    assert.equal(typeof reply.user_id, "string");
    assert.ok(reply.user_id.length > 0);
    await waitFor(() => m.entities[reply.user_id], "own entity under the assigned id");
  });

  test(`phoenix ${version}: server restart, clients rejoin and get the restored state`, async (t) => {
    const dataDir = tempDir();
    let server = await startServer({ dataDir, initialEntities: scene });
    const port = server.port;
    const alice = new Member(version, server.url, { params: { user_id: "alice" } });
    const bob = new Member(version, server.url, { params: { user_id: "bob" } });
    t.after(async () => {
      await alice.disconnect();
      await bob.disconnect();
      await server.stop();
    });
    await alice.join();
    await bob.join();
    await alice.push("user_picked_up", { target_id: "box1", hand: "left" });
    await alice.push("i_moved", { position: [5, 5, 5] });
    await waitFor(() => bob.entities.alice?.position?.[0] === 5 && bob.entities.box1?.parent === "alice:left", "changes at bob");

    const { code } = await server.stop("SIGTERM");
    assert.equal(code, 0, `graceful exit:\n${server.log()}`);
    await waitFor(() => alice.closes.includes(1001), "close code 1001 at alice");

    const statesBefore = alice.states;
    server = await startServer({ dataDir, port, initialEntities: { other: { shape: "ignored: the store is not empty" } } });
    // each client reconnects by itself, rejoins, and gets a fresh entities_state from the store
    await waitFor(() => alice.states > statesBefore && bob.states > 1, "rejoin with a fresh entities_state", 10000);
    assert.equal(alice.entities.box1.parent, "alice:left", "box1 restored from the store");
    assert.equal(alice.entities.other, undefined, "initial entities only seed an empty store");
    await waitFor(() => bob.entities.alice?.position?.[0] === 5, "alice resumed at her last position");
  });
}
