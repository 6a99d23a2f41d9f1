// xrooms-compact.mjs: decoder for the xrooms compact binary encoding of entities_diff and
// entities_state (the encoder is Go package roomserver/compact; its doc.go is the reference).
// No dependencies. decode(binary) gives exactly what JSON.parse gives for the JSON encoding
// of the same message: same keys in the same order, same strings, the same Numbers bit for
// bit (-0 included), null where JSON has null.
//
//   import { decodeDiff, decodeState } from "./xrooms-compact.mjs";
//   decodeDiff(buf)  -> {creates: {id: {comp: value}} | null, updates: ..., deletes: ...}
//   decodeState(buf) -> {id: {comp: value}} | null
//   buf: ArrayBuffer or Uint8Array (any view). Malformed input throws an Error.
//
// Format, version 1 (little endian):
//   uvarint  unsigned LEB128, 7 bits per byte, low group first, high bit = more follows.
//   svarint  uvarint(m*2 + sign), magnitude m <= 2^53; sign 1 = negative (m=0: -0).
//   string   uvarint h; h even: h/2 bytes of UTF-8; h odd: (h-1)/2 UTF-16 code units of
//            2 bytes (only for strings with lone surrogates).
//   keyref   uvarint r; r = 0 ends an object; else r-1 indexes the frame's name table, and
//            when r-1 == table length a string follows and is appended to the table. The
//            table starts empty per frame; component names and object keys share it.
//   frame    byte version (1), byte kind ('D' diff, 'S' state), then
//            diff: section creates, section updates, section deletes; state: one section.
//   section  uvarint n: 0 = null; else n-1 entities, each:
//              uvarint p (id begins with the first p UTF-16 units of the previous id in this
//              section), string (rest of the id), uvarint c: 0 = components null; else c-1
//              times (keyref name, value).
//            Deletes are an ordinary section: each deleted entity is {} (c = 1).
//   value    tag byte:
//            0x00 null, 0x01 false, 0x02 true,
//            0x03 svarint integer, 0x04 float32, 0x05 float64, 0x06 string,
//            0x07 array: values up to tag 0x0B, 0x08 object: (keyref, value)* keyref 0,
//            0x09 numeric array: uvarint count, byte K, count svarints m -> m / 10^K,
//            0x0A float32 array: uvarint count, count float32s,
//            0x41..0x56 decimal: K = tag-0x40, svarint m -> m / 10^K,
//            0x80..0xFF the integer tag-0x80.
//   m / 10^K with m <= 2^53 and K <= 22 is exact IEEE division of exact operands, so it is
//   the same Number JSON.parse gives for the decimal text.

const POW10 = [1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13,
  1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22];

const utf8 = new TextDecoder("utf-8");

class Reader {
  constructor(buf) {
    const u8 = buf instanceof Uint8Array ? buf
      : ArrayBuffer.isView(buf) ? new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength)
      : new Uint8Array(buf);
    this.u8 = u8;
    this.dv = new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
    this.pos = 0;
    this.names = [];
  }

  fail(what) {
    throw new Error(`xrooms-compact: ${what} at byte ${this.pos}`);
  }

  byte() {
    if (this.pos >= this.u8.length) this.fail("unexpected end");
    return this.u8[this.pos++];
  }

  uvarint() {
    let b = this.byte();
    if (b < 0x80) return b;
    let v = b & 0x7f, mul = 128;
    for (;;) {
      b = this.byte();
      v += (b & 0x7f) * mul;
      if (b < 0x80) return v;
      mul *= 128;
      if (mul > 2 ** 56) this.fail("varint too long");
    }
  }

  // svarint, exact for magnitudes up to 2^53 (the sign is the low bit of the first byte).
  svarint() {
    let b = this.byte();
    const neg = b & 1;
    let m = (b & 0x7f) >>> 1;
    if (b >= 0x80) {
      let mul = 64;
      do {
        b = this.byte();
        m += (b & 0x7f) * mul;
        mul *= 128;
        if (mul > 2 ** 62) this.fail("varint too long");
      } while (b >= 0x80);
    }
    return neg ? -m : m;
  }

  string() {
    const h = this.uvarint();
    const n = Math.floor(h / 2);
    const u8 = this.u8;
    let p = this.pos;
    if (h % 2 === 1) {
      if (p + 2 * n > u8.length) this.fail("string past end");
      let s = "";
      for (let i = 0; i < n; i += 4096) {
        const k = Math.min(4096, n - i);
        const units = new Array(k);
        for (let j = 0; j < k; j++) units[j] = this.dv.getUint16(p + 2 * (i + j), true);
        s += String.fromCharCode.apply(null, units);
      }
      this.pos = p + 2 * n;
      return s;
    }
    const end = p + n;
    if (end > u8.length) this.fail("string past end");
    this.pos = end;
    if (n <= 24) { // short ASCII: cheaper than a TextDecoder call
      let s = "";
      for (; p < end; p++) {
        const c = u8[p];
        if (c >= 0x80) return utf8.decode(u8.subarray(end - n, end));
        s += String.fromCharCode(c);
      }
      return s;
    }
    return utf8.decode(u8.subarray(p, end));
  }

  key() {
    const r = this.uvarint();
    if (r === 0) return undefined;
    const names = this.names;
    if (r <= names.length) return names[r - 1];
    if (r !== names.length + 1) this.fail("bad name reference");
    const s = this.string();
    names.push(s);
    return s;
  }

  value() {
    const tag = this.byte();
    if (tag >= 0x80) return tag - 0x80;
    switch (tag) {
      case 0x00: return null;
      case 0x01: return false;
      case 0x02: return true;
      case 0x03: return this.svarint();
      case 0x04: {
        if (this.pos + 4 > this.u8.length) this.fail("unexpected end");
        const f = this.dv.getFloat32(this.pos, true);
        this.pos += 4;
        return f;
      }
      case 0x05: {
        if (this.pos + 8 > this.u8.length) this.fail("unexpected end");
        const f = this.dv.getFloat64(this.pos, true);
        this.pos += 8;
        return f;
      }
      case 0x06: return this.string();
      case 0x07: {
        const a = [];
        while (this.u8[this.pos] !== 0x0b) {
          if (this.pos >= this.u8.length) this.fail("unexpected end");
          a.push(this.value());
        }
        this.pos++;
        return a;
      }
      case 0x08: {
        const o = {};
        for (let k = this.key(); k !== undefined; k = this.key()) set(o, k, this.value());
        return o;
      }
      case 0x09: {
        const n = this.uvarint();
        const k = this.byte();
        if (k > 22) this.fail("bad scale");
        const a = [];
        if (k === 0) for (let i = 0; i < n; i++) a.push(this.svarint());
        else {
          const p = POW10[k];
          for (let i = 0; i < n; i++) a.push(this.svarint() / p);
        }
        return a;
      }
      case 0x0a: {
        const n = this.uvarint();
        let p = this.pos;
        if (p + 4 * n > this.u8.length) this.fail("unexpected end");
        const a = [];
        for (let i = 0; i < n; i++, p += 4) a.push(this.dv.getFloat32(p, true));
        this.pos = p;
        return a;
      }
    }
    if (tag > 0x40 && tag <= 0x40 + 22) return this.svarint() / POW10[tag - 0x40];
    this.pos--;
    return this.fail(`bad tag 0x${tag.toString(16)}`);
  }

  section() {
    let n = this.uvarint();
    if (n === 0) return null;
    const out = {};
    let prev = "";
    while (--n > 0) {
      const p = this.uvarint();
      if (p > prev.length) this.fail("bad id prefix");
      const id = p === 0 ? this.string() : prev.slice(0, p) + this.string();
      prev = id;
      let c = this.uvarint();
      let comps = null;
      if (c > 0) {
        comps = {};
        while (--c > 0) {
          const name = this.key();
          if (name === undefined) this.fail("bad name reference");
          set(comps, name, this.value());
        }
      }
      set(out, id, comps);
    }
    return out;
  }

  header(kind) {
    const v = this.byte();
    if (v !== 1) this.fail(`unsupported version ${v}`);
    const k = this.byte();
    if (k !== kind) this.fail(`frame kind ${k}, expected ${kind}`);
  }

  done() {
    if (this.pos !== this.u8.length) this.fail("trailing bytes");
  }
}

// set assigns like JSON.parse does: "__proto__" is an own property, not the prototype.
function set(o, k, v) {
  if (k === "__proto__") {
    Object.defineProperty(o, k, { value: v, writable: true, enumerable: true, configurable: true });
  } else {
    o[k] = v;
  }
}

/** Decodes a compact entities_diff frame to {creates, updates, deletes}. */
export function decodeDiff(buf) {
  const r = new Reader(buf);
  r.header(0x44);
  const creates = r.section();
  const updates = r.section();
  const deletes = r.section();
  r.done();
  return { creates, updates, deletes };
}

/** Decodes a compact entities_state frame to {id: {comp: value}}. */
export function decodeState(buf) {
  const r = new Reader(buf);
  r.header(0x53);
  const s = r.section();
  r.done();
  return s;
}
