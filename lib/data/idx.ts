// IDX files (LeCun's MNIST format, also Fashion-MNIST's), plain or gzipped, and the datasets made
// of them. Layout: two zero bytes, a type code (0x08: unsigned bytes, the only one image datasets
// use), the number of dims n, n big-endian uint32 sizes, then the values row-major. A file is
// accepted only when its length is exactly that: truncated or padded files are errors naming the
// file, sizes are multiplied with overflow checks, and gunzip is bounded by the size the header
// can describe (a gzip bomb stops at the bound).
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { constants as zlibConstants, gunzipSync } from 'node:zlib';
import type { ImageSet } from './dataset.js';

/** The most bytes an IDX file may decompress to (2 GiB). */
export const IDX_MAX_BYTES = 2 ** 31;

export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

export class DataError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DataError';
  }
}

/** Parses IDX bytes (already decompressed). `what` names the file in errors. */
export function parseIdx(bytes: Uint8Array, what: string): IdxArray {
  if (bytes.length < 4) throw new DataError(`${what}: not an IDX file: ${bytes.length} bytes, shorter than the 4-byte magic`);
  if (bytes[0] !== 0 || bytes[1] !== 0)
    throw new DataError(`${what}: not an IDX file: the magic starts ${bytes[0]}, ${bytes[1]} instead of 0, 0`);
  if (bytes[2] !== 0x08) throw new DataError(`${what}: IDX type code 0x${bytes[2].toString(16)} is not supported (expected 0x08, unsigned bytes)`);
  const n = bytes[3];
  if (n < 1 || n > 4) throw new DataError(`${what}: IDX with ${n} dims is not supported (expected 1 to 4)`);
  const header = 4 + 4 * n;
  if (bytes.length < header) throw new DataError(`${what}: truncated IDX header: ${bytes.length} bytes, expected at least ${header}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims: number[] = [];
  let count = 1;
  for (let i = 0; i < n; i++) {
    const d = view.getUint32(4 + 4 * i, false);
    dims.push(d);
    count *= d;
    if (count > IDX_MAX_BYTES) throw new DataError(`${what}: IDX dims [${dims.join(', ')}...] describe more than ${IDX_MAX_BYTES} values`);
  }
  if (bytes.length !== header + count)
    throw new DataError(`${what}: IDX dims [${dims.join(', ')}] need ${header + count} bytes, the file has ${bytes.length}${bytes.length < header + count ? ' (truncated)' : ' (trailing bytes)'}`);
  return { dims, data: bytes.subarray(header) };
}

/** Reads an IDX file, gunzipping it when it is gzipped (by its magic, whatever its name). */
export function readIdx(file: string): IdxArray {
  let raw: Uint8Array;
  try {
    raw = readFileSync(file);
  } catch (e) {
    throw new DataError(`${file}: cannot read (${(e as Error).message})`);
  }
  if (raw.length >= 2 && raw[0] === 0x1f && raw[1] === 0x8b) raw = gunzipBounded(raw, file);
  return parseIdx(raw, file);
}

/**
 * Gunzips an IDX file, allowing only as many bytes as its header describes: the header is read
 * from a partial inflate of the stream's start, so a gzip bomb fails after the header's size, not
 * after gigabytes.
 */
function gunzipBounded(raw: Uint8Array, file: string): Uint8Array {
  let head: Uint8Array;
  try {
    head = gunzipSync(raw.subarray(0, Math.min(raw.length, 1024)), { finishFlush: zlibConstants.Z_SYNC_FLUSH });
  } catch (e) {
    throw new DataError(`${file}: corrupt or truncated gzip (${(e as Error).message})`);
  }
  let limit = IDX_MAX_BYTES + 20;
  if (head.length >= 4 && head[0] === 0 && head[1] === 0 && head[3] >= 1 && head[3] <= 4 && head.length >= 4 + 4 * head[3]) {
    const v = new DataView(head.buffer, head.byteOffset, head.byteLength);
    let count = 1;
    for (let i = 0; i < head[3]; i++) count = Math.min(count * v.getUint32(4 + 4 * i, false), IDX_MAX_BYTES);
    limit = 4 + 4 * head[3] + count;
  }
  try {
    return gunzipSync(raw, { maxOutputLength: limit });
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === 'ERR_BUFFER_TOO_LARGE' || /larger than|too large/i.test((e as Error).message))
      throw new DataError(`${file}: decompresses to more than the ${limit} bytes its IDX header describes`);
    throw new DataError(`${file}: corrupt or truncated gzip (${(e as Error).message})`);
  }
}

const FASHION_CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];
const DIGITS = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];
// SHA-256 of Fashion-MNIST's decompressed label files (train, t10k): how it is recognised.
const FASHION_LABELS = new Set([
  'bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9',
  '0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34',
]);

/** The IDX file of a split and kind in `dir` (`<prefix>-images-idx3-ubyte[.gz]`), or undefined. */
function findIdx(dir: string, prefix: string, kind: 'images' | 'labels'): string | undefined {
  const base = `${prefix}-${kind}-idx${kind === 'images' ? 3 : 1}-ubyte`;
  for (const name of [base, `${base}.gz`, base.replace(/-idx(\d)-/, '.idx$1-')]) {
    const f = path.join(dir, name);
    if (existsSync(f) && statSync(f).isFile()) return f;
  }
  return undefined;
}

/** Whether `dir` holds an IDX dataset (MNIST's file names). */
export function isIdxDir(dir: string): boolean {
  return findIdx(dir, 'train', 'images') !== undefined || findIdx(dir, 't10k', 'images') !== undefined;
}

/**
 * One split of an IDX dataset: 'train' (train-*) or 'test' (t10k-*). Images [N, H, W] or
 * [N, H, W, C] of unsigned bytes; labels [N]. Fashion-MNIST is recognised by its label files and
 * gets its class names; other datasets are named by their label values.
 */
export function loadIdx(dir: string, split: 'train' | 'test'): ImageSet {
  const prefix = split === 'train' ? 'train' : 't10k';
  const imagesFile = findIdx(dir, prefix, 'images');
  const labelsFile = findIdx(dir, prefix, 'labels');
  if (!imagesFile || !labelsFile)
    throw new DataError(`${dir}: no IDX ${split} split: expected ${prefix}-images-idx3-ubyte[.gz] and ${prefix}-labels-idx1-ubyte[.gz]`);
  const images = readIdx(imagesFile);
  const labels = readIdx(labelsFile);
  if (images.dims.length !== 3 && images.dims.length !== 4)
    throw new DataError(`${imagesFile}: images must have 3 or 4 dims ([N, H, W] or [N, H, W, C]), got [${images.dims.join(', ')}]`);
  if (labels.dims.length !== 1) throw new DataError(`${labelsFile}: labels must have 1 dim, got [${labels.dims.join(', ')}]`);
  const [count, height, width, channels = 1] = images.dims;
  if (labels.dims[0] !== count)
    throw new DataError(`${dir}: ${path.basename(imagesFile)} has ${count} images but ${path.basename(labelsFile)} has ${labels.dims[0]} labels`);
  if (count === 0 || height === 0 || width === 0 || channels === 0) throw new DataError(`${imagesFile}: no images (dims [${images.dims.join(', ')}])`);
  if (channels !== 1 && channels !== 3) throw new DataError(`${imagesFile}: images must have 1 or 3 channels, got ${channels}`);
  const hash = createHash('sha256').update(readLabelsBytes(labelsFile)).digest('hex');
  let maxLabel = 0;
  for (const l of labels.data) maxLabel = Math.max(maxLabel, l);
  const fashion = FASHION_LABELS.has(hash);
  const classes = fashion ? FASHION_CLASSES : maxLabel < 10 ? DIGITS : Array.from({ length: maxLabel + 1 }, (_, i) => String(i));
  return {
    name: fashion ? 'fashion-mnist' : path.basename(path.resolve(dir)),
    source: dir,
    count, height, width, channels,
    pixels: images.data,
    labels: Int32Array.from(labels.data),
    classes,
  };
}

function readLabelsBytes(file: string): Uint8Array {
  const raw = readFileSync(file);
  return raw[0] === 0x1f && raw[1] === 0x8b ? gunzipBounded(raw, file) : raw;
}
