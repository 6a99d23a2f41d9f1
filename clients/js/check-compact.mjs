// check-compact.mjs <dir>: for every <name>.bin in dir, asserts that decoding it (decodeDiff for
// names starting "diff", decodeState for "state") gives what JSON.parse gives for <name>.json:
// deepStrictEqual (Object.is on numbers, so -0 counts; prototypes) plus the same key order.
// Exits non-zero on the first mismatch. Used by the Go test TestJSDecoderMatchesJSON.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { decodeDiff, decodeState } from "./xrooms-compact.mjs";

const dir = process.argv[2];
if (!dir) {
  console.error("usage: node check-compact.mjs <dir>");
  process.exit(2);
}
let n = 0;
for (const f of readdirSync(dir).sort()) {
  if (!f.endsWith(".bin")) continue;
  const name = f.slice(0, -4);
  const bin = readFileSync(join(dir, f)); // a Buffer, i.e. a Uint8Array view
  const want = JSON.parse(readFileSync(join(dir, name + ".json"), "utf8"));
  const decode = name.startsWith("diff") ? decodeDiff : decodeState;
  // Also decode from an ArrayBuffer, as the phoenix client hands binary payloads.
  const ab = bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength);
  for (const input of [bin, ab]) {
    let got;
    try {
      got = decode(input);
    } catch (e) {
      console.error(`${name}: decode failed: ${e.message}`);
      process.exit(1);
    }
    try {
      assert.deepStrictEqual(got, want);
      assert.equal(JSON.stringify(got), JSON.stringify(want), "key order");
    } catch (e) {
      console.error(`${name}: mismatch: ${e.message}`);
      process.exit(1);
    }
  }
  n++;
}
if (n === 0) {
  console.error(`no .bin files in ${dir}`);
  process.exit(1);
}
console.log(`ok ${n} frames`);
