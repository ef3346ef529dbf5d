// safetensors (https://github.com/huggingface/safetensors): 8 bytes little-endian header length
// N, N bytes of JSON { name: { dtype, shape, data_offsets: [begin, end] }, __metadata__?: {str:
// str} }, then the tensor bytes. Validation follows the format's reference implementation: the
// header is at most 100,000,000 bytes and is a JSON object; every tensor's bytes are
// elements x dtype size (checked for overflow); sorted by offset the tensors tile the data
// region exactly (no holes, no overlaps) and it ends at the file's end. Names live in a Map, so
// a key such as `__proto__` is only a name.
import { writeFileSync } from 'node:fs';
import {
  checkedBytes, checkedNumel, CheckpointError, openSource, STORED_DTYPE_SIZE,
  type ByteSource, type StoredDType, type StoredTensor,
} from './source.js';

export const SAFETENSORS_MAX_HEADER = 100_000_000;
/** Tensors one safetensors file may list (ViT-22B's state dict has under 1,000; a 70B LLM's under 1,000). */
export const SAFETENSORS_MAX_TENSORS = 65_536;

export interface SafetensorsFile {
  tensors: Map<string, StoredTensor>;
  metadata: Map<string, string>;
  /** Closes the file; tensors can no longer be read. */
  close(): void;
}

function fail(src: ByteSource, msg: string): never {
  throw new CheckpointError(`${src.name}: safetensors: ${msg}`);
}

/** Parses and validates the header; tensors are read on demand. */
export function readSafetensors(input: string | Uint8Array): SafetensorsFile {
  const src = openSource(input, 'readSafetensors');
  try {
    return parse(src);
  } catch (e) {
    src.close();
    throw e;
  }
}

function parse(src: ByteSource): SafetensorsFile {
  if (src.size < 8) fail(src, `the file has ${src.size} bytes, fewer than the 8 of the header length`);
  const lenBytes = src.read(0, 8, 'header length');
  const n64 = new DataView(lenBytes.buffer, lenBytes.byteOffset, 8).getBigUint64(0, true);
  if (n64 > BigInt(SAFETENSORS_MAX_HEADER)) fail(src, `header length ${n64} exceeds the limit of ${SAFETENSORS_MAX_HEADER} bytes`);
  const n = Number(n64);
  if (8 + n > src.size) fail(src, `header length ${n} runs past the end of the ${src.size}-byte file`);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(src.read(8, n, 'header')));
  } catch (e) {
    fail(src, `the header is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) fail(src, 'the header is not a JSON object');
  const dataStart = 8 + n;
  const dataLen = src.size - dataStart;
  const metadata = new Map<string, string>();
  const entries: { name: string; dtype: StoredDType; shape: number[]; numel: number; begin: number; end: number }[] = [];
  // A header of 300,000 empty tensors took 6 s and 552 MB to index; checkpoints hold thousands.
  const count = Object.keys(header as object).length;
  if (count > SAFETENSORS_MAX_TENSORS + 1) fail(src, `the header lists ${count} entries, more than the limit of ${SAFETENSORS_MAX_TENSORS} tensors`);
  for (const [name, v] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(src, '__metadata__ must be an object of strings');
      for (const [k, s] of Object.entries(v as Record<string, unknown>)) {
        if (typeof s !== 'string') fail(src, `__metadata__.${k} must be a string, got ${typeof s}`);
        metadata.set(k, s);
      }
      continue;
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(src, `tensor '${name}': expected an object, got ${JSON.stringify(v)}`);
    const { dtype, shape, data_offsets: off } = v as Record<string, unknown>;
    if (typeof dtype !== 'string' || !Object.hasOwn(STORED_DTYPE_SIZE, dtype)) fail(src, `tensor '${name}': unsupported dtype ${JSON.stringify(dtype)}`);
    if (!Array.isArray(shape) || shape.length > 8 || !shape.every((d) => Number.isSafeInteger(d) && d >= 0))
      fail(src, `tensor '${name}': shape must be an array of at most 8 integers >= 0, got ${JSON.stringify(shape)}`);
    if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isSafeInteger(d) && d >= 0) || off[0] > off[1])
      fail(src, `tensor '${name}': data_offsets must be [begin, end] with 0 <= begin <= end, got ${JSON.stringify(off)}`);
    const numel = checkedNumel(shape as number[], `${src.name}: tensor '${name}'`);
    const bytes = checkedBytes(numel, STORED_DTYPE_SIZE[dtype as StoredDType], `${src.name}: tensor '${name}'`);
    if (off[1] - off[0] !== bytes)
      fail(src, `tensor '${name}': ${dtype} [${(shape as number[]).join(', ')}] needs ${bytes} bytes, its offsets [${off[0]}, ${off[1]}) hold ${off[1] - off[0]}`);
    if (off[1] > dataLen) fail(src, `tensor '${name}': offsets [${off[0]}, ${off[1]}) run past the ${dataLen} bytes of data (truncated file?)`);
    entries.push({ name, dtype: dtype as StoredDType, shape: shape as number[], numel, begin: off[0], end: off[1] });
  }
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0;
  for (const e of sorted) {
    if (e.begin !== at) fail(src, `tensor '${e.name}' starts at byte ${e.begin} of the data, expected ${at} (${e.begin > at ? 'a hole' : 'an overlap'})`);
    at = e.end;
  }
  if (at !== dataLen) fail(src, `8 + header ${n} + data ${at} = ${8 + n + at} bytes, but the file has ${src.size}`);
  const tensors = new Map<string, StoredTensor>();
  for (const e of entries) {
    tensors.set(e.name, {
      dtype: e.dtype,
      shape: e.shape,
      numel: e.numel,
      read: (into?: Uint8Array) => src.read(dataStart + e.begin, e.end - e.begin, `tensor '${e.name}'`, into),
    });
  }
  return { tensors, metadata, close: () => src.close() };
}

export interface TensorBytes {
  dtype: StoredDType;
  shape: readonly number[];
  /** Packed row-major, little-endian. */
  data: Uint8Array;
}

/** Serializes tensors (in the given order) and string metadata; the header is padded to 8 bytes. */
export function encodeSafetensors(tensors: Iterable<[string, TensorBytes]>, metadata?: Map<string, string> | Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = Object.create(null);
  if (metadata) {
    const meta: Record<string, string> = Object.create(null);
    for (const [k, v] of metadata instanceof Map ? metadata : Object.entries(metadata)) meta[k] = v;
    header.__metadata__ = meta;
  }
  const list = [...tensors];
  let offset = 0;
  for (const [name, t] of list) {
    const bytes = checkedBytes(checkedNumel(t.shape, name), STORED_DTYPE_SIZE[t.dtype], name);
    if (bytes !== t.data.byteLength) throw new RangeError(`encodeSafetensors: tensor '${name}': ${t.dtype} [${t.shape.join(', ')}] needs ${bytes} bytes, got ${t.data.byteLength}`);
    if (name === '__metadata__') throw new RangeError(`encodeSafetensors: '__metadata__' is not a tensor name`);
    header[name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const pad = (8 - (json.length % 8)) % 8;
  if (pad) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const out = new Uint8Array(8 + json.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let at = 8 + json.length;
  for (const [, t] of list) {
    out.set(t.data, at);
    at += t.data.byteLength;
  }
  return out;
}

export function writeSafetensors(path: string, tensors: Iterable<[string, TensorBytes]>, metadata?: Map<string, string> | Record<string, string>): void {
  writeFileSync(path, encodeSafetensors(tensors, metadata));
}
