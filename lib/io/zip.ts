// The zip container of torch.save: a central directory at the end (zip64 when large), entries
// stored uncompressed (torch aligns them to 64 bytes) or, from other writers, deflated. Only the
// directory is parsed up front; an entry's bytes are read when asked for, bounds-checked
// against the file and against its declared size.
import { constants as zlibConstants, inflateRawSync } from 'node:zlib';
import { CheckpointError, type ByteSource } from './source.js';

export interface ZipEntry {
  readonly name: string;
  readonly size: number;
  read(): Uint8Array;
  /**
   * The first `n` bytes only (n <= size). A deflated entry is inflated no further than that (a
   * few compressed bytes can stand for a gigabyte: a 7 MB file whose storage inflated to 1 GB to
   * read 432 elements took 2 GB): at most twice the bytes asked for plus 64 KiB at a time.
   */
  readPrefix(n: number): Uint8Array;
}

/**
 * The first `n` bytes of raw deflate data `raw`: inflates growing prefixes of the compressed
 * bytes with a sync flush (a truncated stream then gives what it decodes instead of an error),
 * each with an output cap, until `n` bytes come out or the input is used up.
 */
function inflatePrefix(raw: Uint8Array, n: number, fail: (m: string) => never, name: string): Uint8Array {
  if (n === 0) return new Uint8Array(0);
  const cap = 2 * n + (64 << 10);
  // Compressed prefixes known to give too little (lo) and too much (hi) output. One compressed
  // byte decodes to at most a few hundred bytes, far under the cap's slack, so the search ends.
  let lo = 0;
  let hi = Infinity;
  let take = Math.min(raw.length, Math.max(4096, Math.ceil(n / 1032) + 1024));
  for (;;) {
    let out: Buffer | null = null;
    try {
      out = inflateRawSync(raw.subarray(0, take), { finishFlush: zlibConstants.Z_SYNC_FLUSH, maxOutputLength: cap });
    } catch (err) {
      if ((err as { code?: string }).code !== 'ERR_BUFFER_TOO_LARGE') return fail(`entry '${name}': deflate data is corrupt (${(err as Error).message})`);
    }
    if (out && out.length >= n) return out.subarray(0, n);
    if (out) {
      if (take === raw.length) return fail(`entry '${name}': inflated to ${out.length} bytes, expected at least ${n}`);
      lo = take;
    } else {
      hi = take;
    }
    take = hi === Infinity ? Math.min(raw.length, take * 2) : Math.floor((lo + hi) / 2);
    if (take <= lo) return fail(`entry '${name}': deflate data does not decode to ${n} bytes`);
  }
}

const EOCD = 0x06054b50;
const ZIP64_LOCATOR = 0x07064b50;
const ZIP64_EOCD = 0x06064b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;
const MAX_ENTRIES = 1_000_000;

const dv = (b: Uint8Array): DataView => new DataView(b.buffer, b.byteOffset, b.byteLength);

function u64(d: DataView, at: number, what: string, src: ByteSource): number {
  const v = d.getBigUint64(at, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new CheckpointError(`${src.name}: zip: ${what} ${v} is out of range`);
  return Number(v);
}

/** The entries of a zip archive by name. */
export function readZip(src: ByteSource): Map<string, ZipEntry> {
  const fail = (msg: string): never => {
    throw new CheckpointError(`${src.name}: zip: ${msg}`);
  };
  // End of central directory: 22 bytes plus a comment of up to 65535.
  const tailLen = Math.min(src.size, 22 + 65535);
  const tail = src.read(src.size - tailLen, tailLen, 'zip directory');
  const t = dv(tail);
  let eocd = -1;
  for (let i = tailLen - 22; i >= 0; i--) {
    if (t.getUint32(i, true) === EOCD) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) fail('no end-of-central-directory record (not a zip file, or truncated)');
  let count = t.getUint16(eocd + 10, true);
  let dirSize = t.getUint32(eocd + 12, true);
  let dirOffset = t.getUint32(eocd + 16, true);
  const eocdPos = src.size - tailLen + eocd;
  if (count === 0xffff || dirSize === 0xffffffff || dirOffset === 0xffffffff) {
    if (eocdPos < 20) fail('zip64 locator missing');
    const loc = dv(src.read(eocdPos - 20, 20, 'zip64 locator'));
    if (loc.getUint32(0, true) !== ZIP64_LOCATOR) fail('zip64 locator missing');
    const recPos = u64(loc, 8, 'zip64 record offset', src);
    const rec = dv(src.read(recPos, 56, 'zip64 end of central directory'));
    if (rec.getUint32(0, true) !== ZIP64_EOCD) fail('bad zip64 end-of-central-directory signature');
    count = u64(rec, 32, 'entry count', src);
    dirSize = u64(rec, 40, 'directory size', src);
    dirOffset = u64(rec, 48, 'directory offset', src);
  }
  if (count > MAX_ENTRIES) fail(`${count} entries (limit ${MAX_ENTRIES})`);
  const dir = src.read(dirOffset, dirSize, 'central directory');
  const d = dv(dir);
  const entries = new Map<string, ZipEntry>();
  let at = 0;
  for (let n = 0; n < count; n++) {
    if (at + 46 > dir.length || d.getUint32(at, true) !== CENTRAL) fail(`central directory entry ${n} is corrupt`);
    const flags = d.getUint16(at + 8, true);
    const method = d.getUint16(at + 10, true);
    let csize = d.getUint32(at + 20, true);
    let usize = d.getUint32(at + 24, true);
    const nameLen = d.getUint16(at + 28, true);
    const extraLen = d.getUint16(at + 30, true);
    const commentLen = d.getUint16(at + 32, true);
    let local = d.getUint32(at + 42, true);
    const end = at + 46 + nameLen + extraLen + commentLen;
    if (end > dir.length) fail(`central directory entry ${n} runs past the directory`);
    const name = new TextDecoder().decode(dir.subarray(at + 46, at + 46 + nameLen));
    // zip64 extra field: the 0xffffffff fields, in order usize, csize, local offset.
    let e = at + 46 + nameLen;
    const extraEnd = e + extraLen;
    while (e + 4 <= extraEnd) {
      const id = d.getUint16(e, true);
      const len = d.getUint16(e + 2, true);
      if (e + 4 + len > extraEnd) fail(`entry '${name}': corrupt extra field`);
      if (id === 0x0001) {
        let p = e + 4;
        const next = (what: string): number => {
          if (p + 8 > e + 4 + len) fail(`entry '${name}': zip64 field ${what} missing`);
          const v = u64(d, p, what, src);
          p += 8;
          return v;
        };
        if (usize === 0xffffffff) usize = next('size');
        if (csize === 0xffffffff) csize = next('compressed size');
        if (local === 0xffffffff) local = next('offset');
      }
      e += 4 + len;
    }
    at = end;
    if (flags & 1) fail(`entry '${name}' is encrypted`);
    if (method !== 0 && method !== 8) fail(`entry '${name}' uses compression method ${method} (only stored and deflate are read)`);
    if (method === 0 && csize !== usize) fail(`entry '${name}': stored with size ${usize} but ${csize} bytes`);
    if (entries.has(name)) fail(`entry '${name}' appears twice`);
    // Where the entry's data begins: after its local header's variable-length fields.
    const dataStart = (): number => {
      const h = dv(src.read(local, 30, `local header of '${name}'`));
      if (h.getUint32(0, true) !== LOCAL) fail(`entry '${name}': bad local header`);
      return local + 30 + h.getUint16(26, true) + h.getUint16(28, true);
    };
    const read = (): Uint8Array => {
      const raw = src.read(dataStart(), csize, `entry '${name}'`);
      if (method === 0) return raw;
      let out: Buffer;
      try {
        out = inflateRawSync(raw, { maxOutputLength: Math.max(usize, 1) });
      } catch (err) {
        return fail(`entry '${name}': deflate data is corrupt (${(err as Error).message})`);
      }
      if (out.length !== usize) fail(`entry '${name}': inflated to ${out.length} bytes, expected ${usize}`);
      return out;
    };
    const readPrefix = (n: number): Uint8Array => {
      if (!Number.isSafeInteger(n) || n < 0 || n > usize) fail(`entry '${name}': ${n} bytes asked of ${usize}`);
      const start = dataStart();
      if (method === 0) return src.read(start, n, `entry '${name}'`);
      return inflatePrefix(src.read(start, csize, `entry '${name}'`), n, fail, name);
    };
    entries.set(name, { name, size: usize, read, readPrefix });
  }
  return entries;
}
