// Crafted torch.save files for the loader's hostile-input tests: a small pickle writer (the
// opcodes a state dict uses, plus the ones attacks use) and a zip writer (stored or deflated
// entries, with a declared size that may differ from the data).
import { deflateRawSync } from 'node:zlib';

/** Pickle bytes, opcode by opcode (protocol 2). */
export class PickleWriter {
  private parts: number[] = [0x80, 2];
  private raw(...b: number[]): this {
    for (const x of b) this.parts.push(x);
    return this;
  }
  /** Appends bytes without spreading them into arguments (long payloads). */
  private append(b: Uint8Array): this {
    for (const x of b) this.parts.push(x);
    return this;
  }
  private u32(n: number): number[] {
    return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff];
  }
  str(s: string): this {
    const b = new TextEncoder().encode(s);
    return this.raw(0x58, ...this.u32(b.length)).append(b); // BINUNICODE
  }
  int(n: number): this {
    return this.raw(0x4a, ...this.u32(n)); // BININT
  }
  /** LONG4 with these little-endian bytes. */
  long4(bytes: Uint8Array): this {
    return this.raw(0x8b, ...this.u32(bytes.length)).append(bytes);
  }
  /** LONG (text): digits then 'L'. */
  longText(digits: string): this {
    return this.raw(0x4c).append(new TextEncoder().encode(`${digits}L\n`));
  }
  global(module: string, name: string): this {
    return this.raw(0x63).append(new TextEncoder().encode(`${module}\n${name}\n`)); // GLOBAL
  }
  mark(): this { return this.raw(0x28); }
  tuple(): this { return this.raw(0x74); } // TUPLE (to the mark)
  tuple1(): this { return this.raw(0x85); }
  tuple2(): this { return this.raw(0x86); }
  emptyList(): this { return this.raw(0x5d); }
  emptyTuple(): this { return this.raw(0x29); }
  emptyDict(): this { return this.raw(0x7d); }
  appends(): this { return this.raw(0x65); } // APPENDS (to the mark)
  setitem(): this { return this.raw(0x73); }
  reduce(): this { return this.raw(0x52); }
  binpersid(): this { return this.raw(0x51); }
  put(i: number): this { return this.raw(0x72, ...this.u32(i)); } // LONG_BINPUT
  get(i: number): this { return this.raw(0x6a, ...this.u32(i)); } // LONG_BINGET
  pop(): this { return this.raw(0x30); }
  newFalse(): this { return this.raw(0x89); }
  stop(): Uint8Array {
    this.raw(0x2e);
    return Uint8Array.from(this.parts);
  }
  /** `('storage', torch.FloatStorage, key, 'cpu', numel)`, loaded as a persistent id. */
  storage(key: string, numel: number): this {
    return this.mark().str('storage').global('torch', 'FloatStorage').str(key).str('cpu').int(numel).tuple().binpersid();
  }
  /**
   * `_rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())`, with `size` pushed
   * by the caller's function (so it can be any structure).
   */
  tensor(key: string, numel: number, offset: number, size: (w: this) => void, stride: number[]): this {
    this.global('torch._utils', '_rebuild_tensor_v2').mark();
    this.storage(key, numel).int(offset);
    size(this);
    this.mark();
    for (const s of stride) this.int(s);
    this.tuple();
    this.newFalse().global('collections', 'OrderedDict').emptyTuple().reduce().tuple().reduce();
    return this;
  }
}

export interface ZipFile {
  name: string;
  data: Uint8Array;
  /** Deflate it (default: stored). */
  deflate?: boolean;
  /** Already-compressed bytes to store as deflate data. */
  deflated?: Uint8Array;
  /** The uncompressed size the directory declares (default: data's length). */
  declaredSize?: number;
}

/** A zip archive (no zip64; CRCs zero: the reader does not check them). */
export function zip(files: ZipFile[]): Uint8Array {
  const chunks: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  const enc = new TextEncoder();
  for (const f of files) {
    const name = enc.encode(f.name);
    const body = f.deflated ?? (f.deflate ? deflateRawSync(f.data) : f.data);
    const method = f.deflated || f.deflate ? 8 : 0;
    const usize = f.declaredSize ?? f.data.length;
    const local = new Uint8Array(30 + name.length);
    const l = new DataView(local.buffer);
    l.setUint32(0, 0x04034b50, true);
    l.setUint16(4, 20, true);
    l.setUint16(8, method, true);
    l.setUint32(18, body.length, true);
    l.setUint32(22, usize, true);
    l.setUint16(26, name.length, true);
    local.set(name, 30);
    const c = new Uint8Array(46 + name.length);
    const d = new DataView(c.buffer);
    d.setUint32(0, 0x02014b50, true);
    d.setUint16(4, 20, true);
    d.setUint16(6, 20, true);
    d.setUint16(10, method, true);
    d.setUint32(20, body.length, true);
    d.setUint32(24, usize, true);
    d.setUint16(28, name.length, true);
    d.setUint32(42, offset, true);
    c.set(name, 46);
    central.push(c);
    chunks.push(local, body);
    offset += local.length + body.length;
  }
  const dirSize = central.reduce((a, c) => a + c.length, 0);
  const eocd = new Uint8Array(22);
  const e = new DataView(eocd.buffer);
  e.setUint32(0, 0x06054b50, true);
  e.setUint16(8, files.length, true);
  e.setUint16(10, files.length, true);
  e.setUint32(12, dirSize, true);
  e.setUint32(16, offset, true);
  const all = [...chunks, ...central, eocd];
  const out = new Uint8Array(all.reduce((a, c) => a + c.length, 0));
  let at = 0;
  for (const c of all) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** A torch.save archive: `archive/data.pkl` and storages `archive/data/<key>`. */
export function pth(pickle: Uint8Array, storages: (Omit<ZipFile, 'name'> & { key: string })[] = []): Uint8Array {
  return zip([
    { name: 'archive/data.pkl', data: pickle },
    { name: 'archive/byteorder', data: new TextEncoder().encode('little') },
    ...storages.map((s) => ({ ...s, name: `archive/data/${s.key}` })),
  ]);
}
