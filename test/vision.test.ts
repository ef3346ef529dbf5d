// Images in: decoding (sharp), Pillow's bicubic resize, torchvision's center crop, ToTensor and
// Normalize, against outputs of Pillow 9.4 / torchvision 0.14 themselves
// (scripts/make_vision_fixtures.py made test/fixtures/images; CI never runs Python).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { decodeImage, preprocess, resizeAndCrop, resizeLikePillow, toRgb, type RawImage } from '../lib/index.js';

const IMG = resolve(__dirname, 'fixtures/images');
const img = (n: string): string => join(IMG, n);
const manifest = JSON.parse(readFileSync(img('manifest.json'), 'utf8')) as { images: Record<string, { file: string }> };
const EVAL = { size: 224, resize: 256, interpolation: 'bicubic' as const };

/** Largest per-channel difference and how many bytes differ at all. */
function diff(a: RawImage, b: RawImage): { max: number; differing: number } {
  expect([a.width, a.height, a.channels]).toEqual([b.width, b.height, b.channels]);
  let max = 0;
  let differing = 0;
  for (let i = 0; i < a.data.length; i++) {
    const d = Math.abs(a.data[i] - b.data[i]);
    if (d) differing++;
    if (d > max) max = d;
  }
  return { max, differing };
}

describe('preprocessing matches Pillow + torchvision', () => {
  // Pillow's resampling is reproduced in its own fixed-point arithmetic: the bound is one level,
  // and what was seen is zero differing bytes.
  it.each(Object.keys(manifest.images))('%s: Resize(256, bicubic) + CenterCrop(224), within one 8-bit level', async (name) => {
    const decoded = await decodeImage(img(manifest.images[name].file));
    const ours = resizeAndCrop(decoded, EVAL);
    const theirs = await decodeImage(img(`${name}.crop224.png`));
    const d = diff(ours, theirs);
    expect(d.max).toBeLessThanOrEqual(1);
    expect(d.differing).toBe(0);
  });

  it('Resize(256) alone: the same size and bytes as Pillow', async () => {
    const src = await decodeImage(img('landscape.png'));
    const theirs = await decodeImage(img('landscape.resized.png'));
    const ours = resizeLikePillow(src, theirs.width, theirs.height);
    expect(diff(ours, theirs).max).toBe(0);
  });

  it('the whole transform (ToTensor, Normalize) at size 32 equals torchvision\'s float32 tensor', async () => {
    const x = await preprocess(img('landscape.png'), { size: 32, resize: 36 });
    expect(x.shape).toEqual([1, 3, 32, 32]);
    const ref = new Float32Array(readFileSync(img('landscape.s32.f32')).buffer.slice(0));
    const got = (await x.data()) as Float32Array;
    x.dispose();
    let maxRel = 0;
    for (let i = 0; i < ref.length; i++) maxRel = Math.max(maxRel, Math.abs(got[i] - ref[i]) / Math.max(Math.abs(ref[i]), 1e-3));
    // float32 in torch's order of operations: identical (seen 0).
    expect(maxRel).toBe(0);
  });

  it('several images make one batch, each as it is alone', async () => {
    const files = [img('landscape.png'), img('portrait.png'), img('grey.png')];
    const batch = await preprocess(files);
    expect(batch.shape).toEqual([3, 3, 224, 224]);
    const all = (await batch.data()) as Float32Array;
    batch.dispose();
    for (const [i, f] of files.entries()) {
      const one = await preprocess(f);
      const d = (await one.data()) as Float32Array;
      one.dispose();
      expect(Buffer.from(all.buffer, i * d.byteLength, d.byteLength).equals(Buffer.from(d.buffer))).toBe(true);
    }
  });
});

describe('decoding', () => {
  it('without sharp installed: a clear error naming the fix, and raw pixels still work', () => {
    // A require hook that makes 'sharp' unresolvable, as in an install that skipped optional deps.
    const dir = mkdtempSync(join(tmpdir(), 'secvit-nosharp-'));
    try {
      const hook = join(dir, 'no-sharp.cjs');
      writeFileSync(hook, `const M = require('module'); const r = M._resolveFilename;
M._resolveFilename = function (req, ...a) { if (req === 'sharp') { const e = new Error("Cannot find module 'sharp'"); e.code = 'MODULE_NOT_FOUND'; throw e; } return r.call(this, req, ...a); };`);
      const script = `import { decodeImage, preprocess } from 'secvit';
let msg = 'no error'; try { await decodeImage('x.png'); } catch (e) { msg = e.message; }
const x = await preprocess({ data: new Uint8Array(64 * 48 * 3).fill(100), width: 64, height: 48, channels: 3 }, { size: 32 });
console.log(JSON.stringify({ msg, shape: x.shape }));`;
      const out = execFileSync(process.execPath, ['--require', hook, '--input-type=module', '-e', script], { cwd: resolve(__dirname, '..'), encoding: 'utf8' });
      const r = JSON.parse(out.trim()) as { msg: string; shape: number[] };
      expect(r.msg).toMatch(/needs the optional dependency 'sharp', which is not installed \(npm install sharp\)/);
      expect(r.shape).toEqual([1, 3, 32, 32]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('applies EXIF orientation: orientation 6 is the stored pixels turned 90 degrees clockwise', async () => {
    const plain = await decodeImage(img('plain.jpg'));
    const oriented = await decodeImage(img('oriented.jpg'));
    expect([oriented.width, oriented.height]).toEqual([plain.height, plain.width]);
    // Rotating clockwise: output (x, y) comes from input (y, H - 1 - x).
    let max = 0;
    for (let y = 0; y < oriented.height; y++)
      for (let x = 0; x < oriented.width; x++)
        for (let c = 0; c < 3; c++) {
          const o = oriented.data[(y * oriented.width + x) * 3 + c];
          const p = plain.data[((plain.height - 1 - x) * plain.width + y) * 3 + c];
          max = Math.max(max, Math.abs(o - p));
        }
    expect(max).toBe(0);
  });

  it('grey becomes three equal channels; alpha is dropped, not composited (as PIL convert("RGB"))', async () => {
    const grey = await decodeImage(img('grey.png'));
    expect(grey.channels).toBe(3);
    let unequal = 0;
    for (let i = 0; i < grey.data.length; i += 3) if (grey.data[i] !== grey.data[i + 1] || grey.data[i] !== grey.data[i + 2]) unequal++;
    expect(unequal).toBe(0);
    const { data, info } = await sharp(img('rgba.png')).raw().toBuffer({ resolveWithObject: true });
    expect(info.channels).toBe(4);
    const rgb = await decodeImage(img('rgba.png'));
    for (let i = 0; i < info.width * info.height; i++)
      for (let c = 0; c < 3; c++) if (rgb.data[i * 3 + c] !== data[i * 4 + c]) throw new Error(`pixel ${i} channel ${c} changed`);
  });

  it('raw pixels: 1, 2, 3 or 4 channels, checked', async () => {
    const rgba = { data: Uint8Array.from({ length: 4 * 5 * 4 }, (_, i) => (i * 37) % 256), width: 5, height: 4, channels: 4 };
    const rgb = await decodeImage(rgba);
    expect(rgb.channels).toBe(3);
    expect(Array.from(rgb.data.subarray(0, 6))).toEqual([0, 37, 74, 148, 185, 222]);
    const grey = toRgb({ data: new Uint8Array([7, 9]), width: 2, height: 1, channels: 1 });
    expect(Array.from(grey.data)).toEqual([7, 7, 7, 9, 9, 9]);
    expect(() => toRgb({ data: new Uint8Array(5), width: 2, height: 1, channels: 3 })).toThrow(RangeError);
    expect(() => toRgb({ data: new Uint8Array(6), width: 2, height: 1, channels: 5 })).toThrow(/channels must be 1/);
    expect(() => toRgb({ data: new Float32Array(6) as unknown as Uint8Array, width: 2, height: 1, channels: 3 })).toThrow(TypeError);
    await expect(decodeImage(42 as unknown as string)).rejects.toThrow(TypeError);
  });

  it('WebP, TIFF, AVIF, JPEG and GIF decode (lossless ones to the same pixels as the PNG)', async () => {
    const png = await decodeImage(img('landscape.png'));
    const src = sharp(img('landscape.png'));
    const lossless = { webp: await src.clone().webp({ lossless: true }).toBuffer(), tiff: await src.clone().tiff({ compression: 'lzw' }).toBuffer() };
    for (const [fmt, bytes] of Object.entries(lossless)) expect(diff(await decodeImage(bytes), png).max, fmt).toBe(0);
    for (const bytes of [await src.clone().avif({ quality: 90 }).toBuffer(), await src.clone().jpeg({ quality: 95 }).toBuffer()]) {
      const d = await decodeImage(bytes);
      expect([d.width, d.height]).toEqual([png.width, png.height]);
      let sum = 0;
      for (let i = 0; i < d.data.length; i++) sum += Math.abs(d.data[i] - png.data[i]);
      expect(sum / d.data.length).toBeLessThan(6);
    }
  });

  it('bad bytes and missing files are errors that name the input', async () => {
    await expect(decodeImage(new Uint8Array([1, 2, 3, 4]))).rejects.toThrow(/cannot decode 4 bytes/);
    await expect(decodeImage(img('no-such-file.png'))).rejects.toThrow(/cannot decode '.*no-such-file.png'/);
    await expect(preprocess([])).rejects.toThrow(RangeError);
    await expect(preprocess(img('small.png'), { size: 0 })).rejects.toThrow(/size must be a positive integer/);
    await expect(preprocess(img('small.png'), { resize: 100 })).rejects.toThrow(/resize must be an integer >= size/);
    await expect(preprocess(img('small.png'), { std: [1, 0, 1] })).rejects.toThrow(/std must be 3 finite numbers/);
    await expect(preprocess(img('small.png'), { interpolation: 'lanczos' as 'bicubic' })).rejects.toThrow(/interpolation/);
  });
});
