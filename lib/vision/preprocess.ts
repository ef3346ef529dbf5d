// The authors' evaluation transform, exactly: torchvision's
//   Resize(256, bicubic) -> CenterCrop(224) -> ToTensor() -> Normalize(ImageNet mean, std)
// on a PIL RGB image (256 = floor(224 / crop_pct 0.875), timm's rule). The resize is Pillow's
// antialiased resampling reproduced bit for bit (resize.ts); ToTensor and Normalize are float32
// operations in torch's order: v / 255, then (v - mean) / std, each rounded to float32.
import { tensor, type Tensor } from '../tensor.js';
import type { DeviceChoice } from '../backends.js';
import { PRETRAINED_CFG } from '../models/secvit.js';
import { decodeImage, type ImageInput } from './image.js';
import { centerCropOffsets, resizeRegionLikePillow, resizeShorterSide, type RawImage, type ResampleFilter } from './resize.js';

export interface PreprocessOptions {
  /** Side of the square crop fed to the model. Default 224 (the published models' input). */
  size?: number;
  /** Shorter side after resizing, before the crop. Default floor(size / cropPct). */
  resize?: number;
  /** Fraction of the resized image the crop keeps. Default 0.875 (timm's crop_pct). */
  cropPct?: number;
  /** Pillow filter. Default 'bicubic' (the authors' interpolation=3). */
  interpolation?: ResampleFilter;
  /** Per-channel mean and std of Normalize. Default ImageNet's. */
  mean?: readonly number[];
  std?: readonly number[];
  /** Where the tensor is made. Default 'cpu'. */
  device?: DeviceChoice;
}

interface Resolved {
  size: number;
  resize: number;
  interpolation: ResampleFilter;
  mean: readonly number[];
  std: readonly number[];
}

/** @internal The options with their defaults filled in, checked (RangeError / TypeError naming the option). */
export function resolveOptions(o: PreprocessOptions): Resolved {
  if (typeof o !== 'object' || o === null) throw new TypeError(`preprocess: options must be an object, got ${o === null ? 'null' : typeof o}`);
  const size = o.size ?? PRETRAINED_CFG.inputSize[1];
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`preprocess: size must be a positive integer, got ${String(size)}`);
  const cropPct = o.cropPct ?? PRETRAINED_CFG.cropPct;
  if (typeof cropPct !== 'number' || !(cropPct > 0 && cropPct <= 1)) throw new RangeError(`preprocess: cropPct must be in (0, 1], got ${String(cropPct)}`);
  const resize = o.resize ?? Math.floor(size / cropPct);
  if (!Number.isInteger(resize) || resize < size) throw new RangeError(`preprocess: resize must be an integer >= size (${size}), got ${String(resize)}`);
  const interpolation = o.interpolation ?? PRETRAINED_CFG.interpolation;
  if (interpolation !== 'bicubic' && interpolation !== 'bilinear')
    throw new RangeError(`preprocess: interpolation must be 'bicubic' or 'bilinear', got '${String(interpolation)}'`);
  const mean = o.mean ?? PRETRAINED_CFG.mean;
  const std = o.std ?? PRETRAINED_CFG.std;
  for (const [name, v] of [['mean', mean], ['std', std]] as const)
    if (!Array.isArray(v) || v.length !== 3 || !v.every((n) => typeof n === 'number' && Number.isFinite(n) && (name === 'mean' || n !== 0)))
      throw new TypeError(`preprocess: ${name} must be 3 finite numbers${name === 'std' ? ', none 0' : ''}, got ${JSON.stringify(v)}`);
  return { size, resize, interpolation, mean, std };
}

/** Resize (shorter side) and center crop, as 8-bit RGB: what the model sees, before ToTensor. */
export function resizeAndCrop(img: RawImage, o: { size: number; resize: number; interpolation: ResampleFilter }): RawImage {
  const [w, h] = resizeShorterSide(img.width, img.height, o.resize);
  const [top, left] = centerCropOffsets(w, h, o.size, o.size);
  // Only the crop is resampled: the same pixels as resizing everything, then cropping.
  const r = resizeRegionLikePillow(img, w, h, { left, top, width: o.size, height: o.size }, o.interpolation);
  return r === img ? { ...img, data: img.data.slice() } : r;
}

// ToTensor + Normalize into `out` at `offset` (CHW), float32 at each step as torch computes it.
function toNormalized(img: RawImage, mean: readonly number[], std: readonly number[], out: Float32Array, offset: number): void {
  const n = img.width * img.height;
  for (let c = 0; c < 3; c++) {
    const m = Math.fround(mean[c]);
    const s = Math.fround(std[c]);
    const base = offset + c * n;
    for (let i = 0; i < n; i++) out[base + i] = Math.fround(Math.fround(img.data[i * 3 + c] / 255) - m) / s;
  }
}

/** ToTensor + Normalize of one 8-bit RGB image into a float32 CHW array. */
export function toNormalizedArray(img: RawImage, options: { mean?: readonly number[]; std?: readonly number[] } = {}): Float32Array {
  const o = resolveOptions({ mean: options.mean, std: options.std });
  const out = new Float32Array(3 * img.width * img.height);
  toNormalized(img, o.mean, o.std, out, 0);
  return out;
}

/**
 * One image or several as a float32 `[N, 3, size, size]` tensor, preprocessed as the authors
 * evaluate: decode to RGB (images.ts: EXIF orientation applied, alpha dropped), resize the
 * shorter side to `resize` with Pillow's bicubic, center crop, scale to [0, 1], normalize.
 */
export async function preprocess(images: ImageInput | readonly ImageInput[], options: PreprocessOptions = {}): Promise<Tensor> {
  const o = resolveOptions(options);
  const list = Array.isArray(images) ? (images as readonly ImageInput[]) : [images as ImageInput];
  if (list.length === 0) throw new RangeError('preprocess: no images given');
  const decoded = await Promise.all(list.map((im, i) => decodeImage(im, list.length > 1 ? `preprocess: image ${i}` : 'preprocess')));
  const per = 3 * o.size * o.size;
  const out = new Float32Array(per * decoded.length);
  decoded.forEach((img, i) => {
    let r: RawImage;
    try {
      r = resizeAndCrop(img, o);
    } catch (e) {
      // Name the function and the image (the resampler's own messages say 'resize').
      const which = `image ${i}${typeof list[i] === 'string' ? ` (${list[i] as string})` : ''}, ${img.width} x ${img.height}`;
      if (e instanceof RangeError) throw new RangeError(`preprocess: ${which}: ${e.message}`);
      if (e instanceof TypeError) throw new TypeError(`preprocess: ${which}: ${e.message}`);
      throw e;
    }
    toNormalized(r, o.mean, o.std, out, i * per);
  });
  return tensor(out, [decoded.length, 3, o.size, o.size], { device: options.device ?? 'cpu' });
}

