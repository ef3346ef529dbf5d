// Training augmentation, DeiT's recipe as timm implements it, on 8-bit images in plain JS (it runs
// in the data worker): random resized crop and flip, RandAugment (rand-m9-mstd0.5-inc1), then
// normalisation and random erasing; mixup/cutmix on whole batches with label smoothing folded
// into the soft targets. Every draw comes from an Rng seeded per batch, so a batch's pixels depend
// on (seed, epoch, batch) only: not on timing, workers or prefetch depth.
import { Rng } from '../nn/random.js';

export interface AugmentOptions {
  /** RandomResizedCrop's area fraction range; null: no crop (the whole image). Default [0.08, 1]. */
  cropScale?: [number, number] | null;
  /** RandomResizedCrop's aspect-ratio range. Default [3/4, 4/3]. */
  cropRatio?: [number, number];
  /** Horizontal flip probability. Default 0.5. */
  flip?: number;
  /** RandAugment as timm's string ('rand-m9-mstd0.5-inc1'), or null for none. */
  randAugment?: string | null;
  /** Random erasing probability (timm's 'pixel' mode: normal noise). Default 0.25. */
  reprob?: number;
}

export interface MixOptions {
  /** Mixup's Beta(alpha, alpha); 0 disables. Default 0.8. */
  mixup: number;
  /** CutMix's Beta(alpha, alpha); 0 disables. Default 1. */
  cutmix: number;
  /** Probability of mixing a batch at all. Default 1. */
  prob: number;
  /** Probability of cutmix rather than mixup when both are on. Default 0.5. */
  switchProb: number;
  /** Label smoothing folded into the targets. */
  smoothing: number;
}

/** A float image, channel-major [C, H, W], values in 0..255 until normalised. */
interface Img {
  c: number;
  h: number;
  w: number;
  d: Float32Array;
}

function bilinearSample(src: Img, x: number, y: number, ch: number, fill: number): number {
  const x0 = Math.floor(x), y0 = Math.floor(y);
  const fx = x - x0, fy = y - y0;
  const at = (xx: number, yy: number) => (xx < 0 || yy < 0 || xx >= src.w || yy >= src.h ? fill : src.d[(ch * src.h + yy) * src.w + xx]);
  return (at(x0, y0) * (1 - fx) + at(x0 + 1, y0) * fx) * (1 - fy) + (at(x0, y0 + 1) * (1 - fx) + at(x0 + 1, y0 + 1) * fx) * fy;
}

/** Output pixel (x, y) = src(a x + b y + c, d x + e y + f) (PIL's affine convention, centre-relative). */
function affine(src: Img, m: [number, number, number, number, number, number], fill: number): Img {
  const out = new Float32Array(src.d.length);
  const cx = src.w / 2 - 0.5, cy = src.h / 2 - 0.5;
  for (let ch = 0; ch < src.c; ch++)
    for (let y = 0; y < src.h; y++)
      for (let x = 0; x < src.w; x++) {
        const u = x - cx, v = y - cy;
        const sx = m[0] * u + m[1] * v + m[2] + cx, sy = m[3] * u + m[4] * v + m[5] + cy;
        out[(ch * src.h + y) * src.w + x] = bilinearSample(src, sx, sy, ch, fill);
      }
  return { ...src, d: out };
}

const clamp255 = (v: number) => (v < 0 ? 0 : v > 255 ? 255 : v);

function blend(a: Img, degenerate: Float32Array, factor: number): void {
  for (let i = 0; i < a.d.length; i++) a.d[i] = clamp255(degenerate[i] + (a.d[i] - degenerate[i]) * factor);
}

function grey(a: Img): Float32Array {
  const n = a.h * a.w, g = new Float32Array(n);
  if (a.c === 1) g.set(a.d);
  else for (let i = 0; i < n; i++) g[i] = 0.299 * a.d[i] + 0.587 * a.d[n + i] + 0.114 * a.d[2 * n + i];
  return g;
}

type Op = (img: Img, mag: number, rng: Rng, fill: number) => Img;
const sign = (rng: Rng) => (rng.next() < 0.5 ? -1 : 1);

// timm's RandAugment ops with the 'inc' (increasing) magnitude variants; mag in [0, 1].
const OPS: Record<string, Op> = {
  AutoContrast: (img) => {
    const n = img.h * img.w;
    for (let ch = 0; ch < img.c; ch++) {
      let lo = 255, hi = 0;
      for (let i = 0; i < n; i++) { const v = img.d[ch * n + i]; lo = Math.min(lo, v); hi = Math.max(hi, v); }
      if (hi > lo) for (let i = 0; i < n; i++) img.d[ch * n + i] = ((img.d[ch * n + i] - lo) * 255) / (hi - lo);
    }
    return img;
  },
  Equalize: (img) => {
    const n = img.h * img.w;
    for (let ch = 0; ch < img.c; ch++) {
      const hist = new Int32Array(256);
      for (let i = 0; i < n; i++) hist[Math.round(img.d[ch * n + i])]++;
      const cdf = new Float64Array(256);
      let acc = 0;
      for (let k = 0; k < 256; k++) cdf[k] = acc += hist[k];
      const first = cdf.find((v) => v > 0) ?? 0;
      if (n - first > 0) for (let i = 0; i < n; i++) img.d[ch * n + i] = ((cdf[Math.round(img.d[ch * n + i])] - first) * 255) / (n - first);
    }
    return img;
  },
  Invert: (img) => { for (let i = 0; i < img.d.length; i++) img.d[i] = 255 - img.d[i]; return img; },
  Rotate: (img, mag, rng, fill) => {
    const t = (sign(rng) * 30 * mag * Math.PI) / 180;
    return affine(img, [Math.cos(t), Math.sin(t), 0, -Math.sin(t), Math.cos(t), 0], fill);
  },
  PosterizeIncreasing: (img, mag) => {
    const bits = Math.max(1, 4 - Math.floor(mag * 4));
    const q = 2 ** (8 - bits);
    for (let i = 0; i < img.d.length; i++) img.d[i] = Math.floor(Math.round(img.d[i]) / q) * q;
    return img;
  },
  SolarizeIncreasing: (img, mag) => {
    const th = 256 - mag * 256;
    for (let i = 0; i < img.d.length; i++) if (img.d[i] >= th) img.d[i] = 255 - img.d[i];
    return img;
  },
  SolarizeAdd: (img, mag) => {
    const add = mag * 110;
    for (let i = 0; i < img.d.length; i++) if (img.d[i] < 128) img.d[i] = clamp255(img.d[i] + add);
    return img;
  },
  ColorIncreasing: (img, mag, rng) => {
    if (img.c === 1) return img;
    const g = grey(img), n = img.h * img.w, deg = new Float32Array(img.d.length);
    for (let ch = 0; ch < img.c; ch++) deg.set(g, ch * n);
    blend(img, deg, 1 + sign(rng) * mag * 0.9);
    return img;
  },
  ContrastIncreasing: (img, mag, rng) => {
    const g = grey(img);
    let m = 0;
    for (const v of g) m += v;
    blend(img, new Float32Array(img.d.length).fill(m / g.length), 1 + sign(rng) * mag * 0.9);
    return img;
  },
  BrightnessIncreasing: (img, mag, rng) => {
    blend(img, new Float32Array(img.d.length), 1 + sign(rng) * mag * 0.9);
    return img;
  },
  SharpnessIncreasing: (img, mag, rng) => {
    // PIL's SMOOTH kernel (1 1 1 / 1 5 1 / 1 1 1, /13) inside, the border kept.
    const deg = new Float32Array(img.d);
    for (let ch = 0; ch < img.c; ch++)
      for (let y = 1; y < img.h - 1; y++)
        for (let x = 1; x < img.w - 1; x++) {
          let s = 0;
          for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) s += img.d[(ch * img.h + y + dy) * img.w + x + dx] * (dx === 0 && dy === 0 ? 5 : 1);
          deg[(ch * img.h + y) * img.w + x] = s / 13;
        }
    blend(img, deg, 1 + sign(rng) * mag * 0.9);
    return img;
  },
  ShearX: (img, mag, rng, fill) => affine(img, [1, sign(rng) * 0.3 * mag, 0, 0, 1, 0], fill),
  ShearY: (img, mag, rng, fill) => affine(img, [1, 0, 0, sign(rng) * 0.3 * mag, 1, 0], fill),
  TranslateXRel: (img, mag, rng, fill) => affine(img, [1, 0, sign(rng) * 0.45 * mag * img.w, 0, 1, 0], fill),
  TranslateYRel: (img, mag, rng, fill) => affine(img, [1, 0, 0, 0, 1, sign(rng) * 0.45 * mag * img.h], fill),
};

export interface RandAugmentSpec {
  ops: number;
  magnitude: number;
  magnitudeStd: number;
  prob: number;
}

/** Parses timm's 'rand-m9-n2-mstd0.5-inc1' strings ('inc1' is the only op set offered). */
export function parseRandAugment(s: string): RandAugmentSpec {
  const parts = s.split('-');
  if (parts[0] !== 'rand') throw new RangeError(`randAugment: expected 'rand-m<M>[-n<N>][-mstd<S>][-inc1]', got '${s}'`);
  const spec: RandAugmentSpec = { ops: 2, magnitude: 10, magnitudeStd: 0, prob: 0.5 };
  for (const p of parts.slice(1)) {
    const m = /^(m|n|mstd|inc|p)([0-9.]+)$/.exec(p);
    if (!m || !Number.isFinite(Number(m[2]))) throw new RangeError(`randAugment: unknown part '${p}' in '${s}'`);
    const v = Number(m[2]);
    if (m[1] === 'm') spec.magnitude = v;
    else if (m[1] === 'n') spec.ops = Math.max(0, Math.floor(v));
    else if (m[1] === 'mstd') spec.magnitudeStd = v;
    else if (m[1] === 'p') spec.prob = v;
    else if (m[1] === 'inc' && v !== 1) throw new RangeError(`randAugment: only inc1 (the increasing op set) is offered, got '${p}'`);
  }
  return spec;
}

const OP_NAMES = Object.keys(OPS);

function randAugment(img: Img, spec: RandAugmentSpec, rng: Rng, fill: number): Img {
  for (let k = 0; k < spec.ops; k++) {
    const op = OP_NAMES[Math.floor(rng.next() * OP_NAMES.length)];
    if (rng.next() > spec.prob) continue;
    let m = spec.magnitude;
    if (spec.magnitudeStd > 0) m = Math.min(10, Math.max(0, m + rng.normal() * spec.magnitudeStd));
    img = OPS[op](img, m / 10, rng, fill);
  }
  return img;
}

/** Random resized crop (torchvision's sampling: 10 tries, then the centre crop at the ratio bound) into size x size, bilinear. */
function randomResizedCrop(src: Img, size: number, scale: [number, number], ratio: [number, number], rng: Rng): Img {
  const area = src.h * src.w;
  let cw = src.w, ch = src.h, x0 = 0, y0 = 0, found = false;
  for (let t = 0; t < 10 && !found; t++) {
    const a = area * (scale[0] + (scale[1] - scale[0]) * rng.next());
    const r = Math.exp(Math.log(ratio[0]) + (Math.log(ratio[1]) - Math.log(ratio[0])) * rng.next());
    const w = Math.round(Math.sqrt(a * r)), h = Math.round(Math.sqrt(a / r));
    if (w > 0 && h > 0 && w <= src.w && h <= src.h) {
      cw = w; ch = h;
      x0 = Math.floor(rng.next() * (src.w - w + 1));
      y0 = Math.floor(rng.next() * (src.h - h + 1));
      found = true;
    }
  }
  if (!found) {
    const r = src.w / src.h;
    if (r < ratio[0]) { cw = src.w; ch = Math.round(cw / ratio[0]); }
    else if (r > ratio[1]) { ch = src.h; cw = Math.round(ch * ratio[1]); }
    x0 = Math.floor((src.w - cw) / 2);
    y0 = Math.floor((src.h - ch) / 2);
  }
  return resample(src, x0, y0, cw, ch, size);
}

/** The crop (x0, y0, w, h) of src resized to size x size (bilinear, pixel centres aligned). */
function resample(src: Img, x0: number, y0: number, w: number, h: number, size: number): Img {
  const out = new Float32Array(src.c * size * size);
  const sx = w / size, sy = h / size;
  for (let c = 0; c < src.c; c++)
    for (let y = 0; y < size; y++) {
      const yy = Math.min(Math.max(y0 + (y + 0.5) * sy - 0.5, 0), src.h - 1);
      for (let x = 0; x < size; x++) {
        const xx = Math.min(Math.max(x0 + (x + 0.5) * sx - 0.5, 0), src.w - 1);
        out[(c * size + y) * size + x] = bilinearSample(src, xx, yy, c, 0);
      }
    }
  return { c: src.c, h: size, w: size, d: out };
}

/** Interleaved 8-bit [H, W, C] to a float [C, H, W] in 0..255. */
export function toPlanar(pixels: Uint8Array, h: number, w: number, c: number): Img {
  const d = new Float32Array(c * h * w);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let k = 0; k < c; k++) d[(k * h + y) * w + x] = pixels[(y * w + x) * c + k];
  return { c, h, w, d };
}

export interface ImageTransform {
  /** Output side. */
  size: number;
  /** Output channels (a grey source is repeated to 3 when the model takes RGB). */
  outChannels: number;
  mean: number[];
  std: number[];
  train: boolean;
  augment: Required<AugmentOptions>;
}

/**
 * One image (8-bit [H, W, C]) to the model's normalised float input, written into `out` at
 * `offset` ([outChannels, size, size]).
 */
export function transformImage(pixels: Uint8Array, h: number, w: number, c: number, t: ImageTransform, rng: Rng | null, out: Float32Array, offset: number): void {
  let img = toPlanar(pixels, h, w, c);
  const a = t.augment;
  if (t.train && rng) {
    if (a.cropScale) img = randomResizedCrop(img, t.size, a.cropScale, a.cropRatio, rng);
    else if (img.h !== t.size || img.w !== t.size) img = resample(img, 0, 0, img.w, img.h, t.size);
    if (rng.next() < a.flip) {
      const d = img.d;
      for (let k = 0; k < img.c; k++)
        for (let y = 0; y < img.h; y++) {
          const row = (k * img.h + y) * img.w;
          for (let x = 0; x < img.w >> 1; x++) { const tmp = d[row + x]; d[row + x] = d[row + img.w - 1 - x]; d[row + img.w - 1 - x] = tmp; }
        }
    }
    if (a.randAugment) {
      const mean = t.mean.reduce((s, v) => s + v, 0) / t.mean.length;
      img = randAugment(img, parseRandAugment(a.randAugment), rng, Math.round(mean * 255));
    }
  } else if (img.h !== t.size || img.w !== t.size) {
    img = resample(img, 0, 0, img.w, img.h, t.size);
  }
  const n = t.size * t.size;
  for (let k = 0; k < t.outChannels; k++) {
    const src = img.c === 1 ? 0 : k;
    const m = t.mean[k], s = t.std[k];
    for (let i = 0; i < n; i++) out[offset + k * n + i] = (img.d[src * n + i] / 255 - m) / s;
  }
  if (t.train && rng && a.reprob > 0 && rng.next() < a.reprob) randomErase(out, offset, t.outChannels, t.size, rng);
}

/** timm's RandomErasing, mode 'pixel', one rectangle: area 2% to 1/3, log-uniform aspect 0.3 to 3.3. */
function randomErase(out: Float32Array, offset: number, c: number, size: number, rng: Rng): void {
  const area = size * size;
  for (let t = 0; t < 10; t++) {
    const a = area * (0.02 + (1 / 3 - 0.02) * rng.next());
    const r = Math.exp(Math.log(0.3) + (Math.log(1 / 0.3) - Math.log(0.3)) * rng.next());
    const h = Math.round(Math.sqrt(a * r)), w = Math.round(Math.sqrt(a / r));
    if (w < size && h < size) {
      const top = Math.floor(rng.next() * (size - h + 1)), left = Math.floor(rng.next() * (size - w + 1));
      for (let k = 0; k < c; k++) for (let y = top; y < top + h; y++) for (let x = left; x < left + w; x++) out[offset + (k * size + y) * size + x] = rng.normal();
      return;
    }
  }
}

/** Beta(a, a) from two gammas (Marsaglia-Tsang). */
function beta(a: number, rng: Rng): number {
  const gamma = (k: number): number => {
    if (k < 1) return gamma(k + 1) * Math.pow(rng.next() || 1e-12, 1 / k);
    const d = k - 1 / 3, c = 1 / Math.sqrt(9 * d);
    for (;;) {
      let x: number, v: number;
      do { x = rng.normal(); v = 1 + c * x; } while (v <= 0);
      v = v * v * v;
      const u = rng.next();
      if (u < 1 - 0.0331 * x ** 4 || Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v;
    }
  };
  const x = gamma(a), y = gamma(a);
  return x / (x + y);
}

/**
 * timm's Mixup in 'batch' mode on a normalised batch [B, C, S, S] (in place): mixup blends each
 * image with the batch flipped (image B-1-i), cutmix pastes a box of it; the targets are the
 * smoothed one-hots mixed by the same lambda (the box's true area for cutmix). Returns the soft
 * targets [B, classes], or null when this batch is not mixed (plain smoothed labels apply).
 */
export function mixBatch(x: Float32Array, labels: Int32Array, classes: number, size: number, channels: number, o: MixOptions, rng: Rng): Float32Array | null {
  if (!(o.mixup > 0 || o.cutmix > 0) || rng.next() >= o.prob) return null;
  const b = labels.length, per = channels * size * size;
  const useCutmix = o.cutmix > 0 && (o.mixup <= 0 || rng.next() < o.switchProb);
  let lam = beta(useCutmix ? o.cutmix : o.mixup, rng);
  const orig = x.slice();
  if (useCutmix) {
    const cut = Math.sqrt(1 - lam);
    const ch = Math.floor(size * cut), cw = Math.floor(size * cut);
    const cy = Math.floor(rng.next() * size), cx = Math.floor(rng.next() * size);
    const y0 = Math.max(cy - (ch >> 1), 0), y1 = Math.min(cy + (ch >> 1), size);
    const x0 = Math.max(cx - (cw >> 1), 0), x1 = Math.min(cx + (cw >> 1), size);
    for (let i = 0; i < b; i++) {
      const j = b - 1 - i;
      for (let k = 0; k < channels; k++) for (let y = y0; y < y1; y++) for (let xx = x0; xx < x1; xx++) {
        const at = (k * size + y) * size + xx;
        x[i * per + at] = orig[j * per + at];
      }
    }
    lam = 1 - ((y1 - y0) * (x1 - x0)) / (size * size);
  } else {
    for (let i = 0; i < b; i++) {
      const j = b - 1 - i;
      for (let e = 0; e < per; e++) x[i * per + e] = orig[i * per + e] * lam + orig[j * per + e] * (1 - lam);
    }
  }
  const off = o.smoothing / classes, on = 1 - o.smoothing + off;
  const t = new Float32Array(b * classes);
  for (let i = 0; i < b; i++) {
    const j = b - 1 - i;
    for (let k = 0; k < classes; k++) t[i * classes + k] = off;
    t[i * classes + labels[i]] += (on - off) * lam;
    t[i * classes + labels[j]] += (on - off) * (1 - lam);
  }
  return t;
}
