// Images in: files and encoded bytes decoded by sharp (an optional dependency: its prebuilt
// libvips comes from the npm registry), raw pixels as given. Every image becomes 8-bit RGB:
// - EXIF orientation is applied (the pixels are rotated/flipped upright);
// - grey images are replicated into three channels;
// - alpha is dropped, not composited: the authors' loader (torchvision's ImageFolder,
//   `PIL.Image.convert('RGB')`) drops it, and the published accuracies are measured that way;
// - animated images (GIF, WebP) and multi-page TIFFs give their first frame.
import { statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { packageRoot } from '../native.js';
import { checkRawImage, type RawImage } from './resize.js';

/** What `preprocess` and the pipeline accept as one image. */
export type ImageInput = string | Uint8Array | RawImage;

interface SharpInstance {
  rotate(): SharpInstance;
  removeAlpha(): SharpInstance;
  toColourspace(space: string): SharpInstance;
  raw(opts?: { depth?: string }): SharpInstance;
  toBuffer(opts: { resolveWithObject: true }): Promise<{ data: Buffer; info: { width: number; height: number; channels: number } }>;
  png(): SharpInstance;
  jpeg(opts?: { quality?: number }): SharpInstance;
  webp(opts?: { lossless?: boolean }): SharpInstance;
  toFile(path: string): Promise<unknown>;
}
type SharpFactory = (input: string | Uint8Array, opts?: Record<string, unknown>) => SharpInstance;

let sharpModule: SharpFactory | null | undefined;

/** sharp, or an Error saying how to get it. */
export function loadSharp(what: string): SharpFactory {
  if (sharpModule === undefined) {
    try {
      sharpModule = createRequire(path.join(packageRoot(), 'package.json'))('sharp') as SharpFactory;
    } catch {
      sharpModule = null;
    }
  }
  if (sharpModule === null)
    throw new Error(`${what}: decoding and encoding images needs the optional dependency 'sharp', which is not installed (npm install sharp); raw pixels ({ data, width, height, channels }) work without it`);
  return sharpModule;
}

const isRaw = (v: unknown): v is RawImage =>
  typeof v === 'object' && v !== null && !(v instanceof Uint8Array) && 'data' in v && 'width' in v && 'height' in v;

/** `img` as 8-bit RGB (grey replicated, alpha dropped). */
export function toRgb(img: RawImage, what = 'image'): RawImage {
  checkRawImage(img, what);
  const { width, height, channels, data } = img;
  const n = width * height;
  if (channels === 3) return img;
  const out = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    if (channels <= 2) {
      const g = data[i * channels];
      out[i * 3] = out[i * 3 + 1] = out[i * 3 + 2] = g;
    } else {
      out[i * 3] = data[i * 4];
      out[i * 3 + 1] = data[i * 4 + 1];
      out[i * 3 + 2] = data[i * 4 + 2];
    }
  }
  return { data: out, width, height, channels: 3 };
}

/** Decodes a path or encoded bytes (JPEG, PNG, WebP, GIF, TIFF, AVIF, ...) into upright 8-bit RGB. */
export async function decodeImage(input: ImageInput, what = 'image'): Promise<RawImage> {
  if (isRaw(input)) return toRgb(input, what);
  if (typeof input !== 'string' && !(input instanceof Uint8Array))
    throw new TypeError(`${what}: expected a file path, a Buffer/Uint8Array of an encoded image, or raw pixels { data, width, height, channels }, got ${input === null ? 'null' : typeof input}`);
  if (typeof input === 'string') {
    let dir = false;
    try {
      dir = statSync(input).isDirectory();
    } catch { /* missing or unreadable: sharp says so below */ }
    if (dir) throw new Error(`${what}: '${input}' is a directory, not an image file`);
  }
  const sharp = loadSharp(what);
  try {
    // rotate() with no angle applies the EXIF orientation. 'srgb' gives three bands from grey
    // (and converts CMYK); removeAlpha drops a fourth.
    const { data, info } = await sharp(input, { pages: 1, limitInputPixels: 268_402_689 })
      .rotate()
      .toColourspace('srgb')
      .removeAlpha()
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    return toRgb({ data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width: info.width, height: info.height, channels: info.channels }, what);
  } catch (e) {
    const name = typeof input === 'string' ? `'${input}'` : `${input.byteLength} bytes`;
    throw new Error(`${what}: cannot decode ${name}: ${(e as Error).message}`);
  }
}
