// Two official phoenix clients (one 1.8, one 1.7) in one room, driven step by step by
// e2e_test.go: it writes a command per line on stdin, this answers one line on stdout.
import readline from "node:readline";
import { Member, waitFor, sleep } from "../phoenix/harness.mjs";

const url = process.argv[2];
const alice = new Member("1.8", url, { params: { user_id: "alice" } });
const bob = new Member("1.7", url, { params: { user_id: "bob" } });
const say = (s) => process.stdout.write(s + "\n");
let mark = {};

const steps = {
  // join, move, and see each other's moves
  async join() {
    await alice.join();
    await bob.join();
    await alice.push("i_moved", { position: [1, 0, 0] });
    await bob.push("i_moved", { position: [0, 0, 2] });
    await waitFor(() => bob.entities.alice?.position?.[0] === 1 && alice.entities.bob?.position?.[2] === 2, "each member sees the other's move", 10000);
    return `joined entities=${Object.keys(bob.entities).length}`;
  },
  // median time between diffs at bob while alice moves at 100 Hz, and disconnects so far
  async cadence() {
    const from = bob.diffAt.length;
    let n = 0;
    const timer = setInterval(() => alice.channel.push("i_moved", { position: [n++, 0, 0] }), 10);
    await sleep(2000);
    clearInterval(timer);
    const at = bob.diffAt.slice(from);
    const gaps = at.slice(1).map((t, i) => t - at[i]).sort((a, b) => a - b);
    const median = gaps[Math.floor(gaps.length / 2)] ?? -1;
    return `cadence median_ms=${Math.round(median)} diffs=${at.length} closes=${alice.closes.length + bob.closes.length}`;
  },
  // wait until both members are back after a pod replacement
  async rejoined() {
    await waitFor(() => alice.states > mark.alice && bob.states > mark.bob, "fresh entities_state after rejoin", 30000);
    await sleep(200);
    return "rejoined";
  },
  // change the room: alice picks up a box and moves
  async change() {
    await alice.push("user_picked_up", { target_id: "box-red", hand: "left" });
    await alice.push("i_moved", { position: [7, 7, 7] });
    await waitFor(() => bob.entities["box-red"]?.parent === "alice:left" && bob.entities.alice?.position?.[0] === 7, "alice's changes at bob", 10000);
    return "changed";
  },
  // after the pod is recreated: both rejoin and get the changes back from the store
  async restored() {
    await waitFor(() => alice.states > mark.alice && bob.states > mark.bob, "fresh entities_state after rejoin", 30000);
    await waitFor(() => alice.entities["box-red"]?.parent === "alice:left", "box-red restored", 5000);
    await waitFor(() => bob.entities.alice?.position?.[0] === 7, "alice restored at her last position", 5000);
    return "restored";
  },
  // sockets closed by the server, with no server to come back to
  async gone() {
    await waitFor(() => alice.closes.length > mark.aliceCloses && bob.closes.length > mark.bobCloses, "sockets closed", 15000);
    return "gone";
  },
  // door_opened on box-green while the room has no rule for it: nothing changes
  async nodoor() {
    await alice.push("door_opened", { door_id: "box-green" });
    await sleep(300);
    return `nodoor open=${bob.entities["box-green"]?.open ?? "unset"}`;
  },
  // push door_opened until bob sees box-green open: a rule declared on the Room reaches the
  // running pod live
  async door() {
    const deadline = Date.now() + 15000;
    while (bob.entities["box-green"]?.open !== true) {
      if (Date.now() > deadline) throw new Error(`door never opened: ${JSON.stringify(bob.entities["box-green"])}`);
      await alice.push("door_opened", { door_id: "box-green" });
      await sleep(200);
    }
    return `door opened_by=${bob.entities["box-green"].opened_by} closes=${alice.closes.length + bob.closes.length}`;
  },
  async mark() {
    mark = { alice: alice.states, bob: bob.states, aliceCloses: alice.closes.length, bobCloses: bob.closes.length };
    return "marked";
  },
  async quit() {
    await Promise.all([alice.disconnect(), bob.disconnect()]);
    say("bye");
    process.exit(0);
  },
};

const rl = readline.createInterface({ input: process.stdin });
for await (const line of rl) {
  const step = steps[line.trim()];
  try {
    if (!step) throw new Error(`unknown step ${line}`);
    say(await step());
  } catch (e) {
    say(`error ${e.message}`);
  }
}
process.exit(0);
