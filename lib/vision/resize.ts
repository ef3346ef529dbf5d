// Pillow's resampling of 8-bit images, reproduced operation for operation, so that secvit's
// preprocessing gives the pixels the published accuracy numbers were measured on (the authors
// evaluate with torchvision's Resize on PIL images). Pillow (src/libImaging/Resample.c):
//
// - Separable: a horizontal pass into an 8-bit image of the rows the vertical pass needs, then
//   a vertical pass. Each pass that does not change its axis is skipped.
// - Antialiased: when shrinking by `scale`, the filter is stretched by `scale` (support 2 for
//   bicubic becomes 2 * scale input pixels) and its argument divided by it.
// - Weights in double, normalised to sum 1 per output pixel, then converted to 22-bit fixed
//   point (rounded away from zero); accumulation in integers starting from half a unit; the
//   result clipped to 0..255 after the shift (truncating). The intermediate image is 8-bit.
//
// Bicubic is Keys' cubic with a = -0.5. The arithmetic below is exact in doubles (products of
// 8-bit values and 22-bit weights summed over at most a few hundred taps stay far below 2^53), so
// the results equal Pillow's bit for bit (tested against Pillow's own output).

/** Interleaved 8-bit pixels, row-major: `data[(y * width + x) * channels + c]`. */
export interface RawImage {
  data: Uint8Array | Uint8ClampedArray;
  width: number;
  height: number;
  channels: number;
}

export type ResampleFilter = 'bicubic' | 'bilinear';

const PRECISION_BITS = 32 - 8 - 2;
const ONE = 2 ** PRECISION_BITS;
const HALF = 2 ** (PRECISION_BITS - 1);

const FILTERS: Record<ResampleFilter, { support: number; fn: (x: number) => number }> = {
  bicubic: {
    support: 2,
    fn: (x) => {
      const a = -0.5;
      if (x < 0) x = -x;
      if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
      if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
      return 0;
    },
  },
  bilinear: {
    support: 1,
    fn: (x) => {
      if (x < 0) x = -x;
      return x < 1 ? 1 - x : 0;
    },
  },
};

interface Coeffs {
  ksize: number;
  /** Per output pixel: first input index, tap count. */
  bounds: Int32Array;
  /** Fixed-point weights, ksize per output pixel. */
  weights: Float64Array;
}

// Pillow's precompute_coeffs + normalize_coeffs_8bpc, for the whole input range [0, inSize).
// The coefficients of outputs [from, from + count) of an inSize -> outSize resampling (each
// output's depend on its own index only, so a region's are those of the whole resize).
function coefficients(inSize: number, outSize: number, filter: ResampleFilter, from = 0, count = outSize): Coeffs {
  const f = FILTERS[filter];
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = f.support * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(count * 2);
  const weights = new Float64Array(count * ksize);
  const k = new Float64Array(ksize);
  const ss = 1 / filterscale;
  for (let i = 0; i < count; i++) {
    const xx = from + i;
    const center = (xx + 0.5) * scale;
    // C's (int) cast truncates toward zero; the arguments here are >= -support + 0.5.
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      const w = f.fn((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (let x = 0; x < xmax; x++) {
      const v = ww !== 0 ? k[x] / ww : k[x];
      weights[i * ksize + x] = v < 0 ? Math.trunc(-0.5 + v * ONE) : Math.trunc(0.5 + v * ONE);
    }
    bounds[i * 2] = xmin;
    bounds[i * 2 + 1] = xmax;
  }
  return { ksize, bounds, weights };
}

function clip8(v: number): number {
  if (v >= ONE * 256) return 255;
  if (v <= 0) return 0;
  return Math.floor(v / ONE);
}

/** Checks raw pixels: positive integer sizes, 1-4 channels, 8-bit data of exactly that length. */
export function checkRawImage(img: RawImage, what: string): void {
  const { width, height, channels, data } = img;
  if (!Number.isInteger(width) || width < 1 || !Number.isInteger(height) || height < 1)
    throw new RangeError(`${what}: width and height must be positive integers, got ${String(width)} x ${String(height)}`);
  if (!Number.isInteger(channels) || channels < 1 || channels > 4)
    throw new RangeError(`${what}: channels must be 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA), got ${String(channels)}`);
  if (!(data instanceof Uint8Array || data instanceof Uint8ClampedArray))
    throw new TypeError(`${what}: data must be a Uint8Array of 8-bit pixels, got ${data === null ? 'null' : typeof data === 'object' ? (data as object).constructor.name : typeof data}`);
  if (data.length !== width * height * channels)
    throw new RangeError(`${what}: data holds ${data.length} bytes; ${width} x ${height} x ${channels} needs ${width * height * channels}`);
}

/**
 * `img` resized to `width` x `height` as Pillow's `Image.resize((width, height), filter)` would
 * (reducing_gap off, the whole image as the box). Returns `img` itself when the size is
 * unchanged (Pillow copies).
 */
export function resizeLikePillow(img: RawImage, width: number, height: number, filter: ResampleFilter = 'bicubic'): RawImage {
  return resizeRegionLikePillow(img, width, height, { left: 0, top: 0, width, height }, filter);
}

/**
 * The `region` of `img` resized to `width` x `height` as Pillow would (resizeLikePillow), computed
 * for that region only: a center crop of a resize costs the crop, not the resize (a 200000 x 1
 * image resized to 51,200,000 x 256 for a 224 x 224 crop took 2.5 GB). Returns `img` itself when
 * nothing changes.
 */
export function resizeRegionLikePillow(img: RawImage, width: number, height: number, region: { left: number; top: number; width: number; height: number }, filter: ResampleFilter = 'bicubic'): RawImage {
  checkRawImage(img, 'resize');
  if (!Number.isSafeInteger(width) || width < 1 || !Number.isSafeInteger(height) || height < 1)
    throw new RangeError(`resize: the output size must be positive integers, got ${width} x ${height}`);
  if (!(filter in FILTERS)) throw new RangeError(`resize: filter must be 'bicubic' or 'bilinear', got '${String(filter)}'`);
  const { left, top } = region;
  const rw = region.width, rh = region.height;
  if (![left, top, rw, rh].every(Number.isSafeInteger) || left < 0 || top < 0 || rw < 1 || rh < 1 || left + rw > width || top + rh > height)
    throw new RangeError(`resize: the region ${rw} x ${rh} at (${left}, ${top}) is not inside ${width} x ${height}`);
  const c = img.channels;
  const needH = width !== img.width;
  const needV = height !== img.height;
  if (!needH && !needV && rw === width && rh === height) return img;
  const vert = needV ? coefficients(img.height, height, filter, top, rh) : null;
  // The input rows the region needs: all the vertical pass reads, or the region's own rows.
  const y0 = vert ? vert.bounds[0] : top;
  const rows = vert ? vert.bounds[rh * 2 - 2] + vert.bounds[rh * 2 - 1] - y0 : rh;
  // Horizontal pass (or a copy of the region's columns) over those rows: rw x rows.
  const mid = new Uint8Array(rw * rows * c);
  if (needH) {
    const hz = coefficients(img.width, width, filter, left, rw);
    const acc = new Float64Array(c);
    for (let y = 0; y < rows; y++) {
      const inRow = (y + y0) * img.width * c;
      for (let xx = 0; xx < rw; xx++) {
        const xmin = hz.bounds[xx * 2];
        const n = hz.bounds[xx * 2 + 1];
        const kb = xx * hz.ksize;
        acc.fill(HALF);
        for (let x = 0; x < n; x++) {
          const w = hz.weights[kb + x];
          const p = inRow + (x + xmin) * c;
          for (let ch = 0; ch < c; ch++) acc[ch] += img.data[p + ch] * w;
        }
        const o = (y * rw + xx) * c;
        for (let ch = 0; ch < c; ch++) mid[o + ch] = clip8(acc[ch]);
      }
    }
  } else {
    for (let y = 0; y < rows; y++) mid.set(img.data.subarray(((y + y0) * img.width + left) * c, ((y + y0) * img.width + left + rw) * c), y * rw * c);
  }
  if (!vert) return { data: mid, width: rw, height: rh, channels: c };
  const out = new Uint8Array(rw * rh * c);
  for (let yy = 0; yy < rh; yy++) {
    const ymin = vert.bounds[yy * 2] - y0;
    const n = vert.bounds[yy * 2 + 1];
    const kb = yy * vert.ksize;
    for (let i = 0; i < rw * c; i++) {
      let acc = HALF;
      for (let y = 0; y < n; y++) acc += mid[(y + ymin) * rw * c + i] * vert.weights[kb + y];
      out[yy * rw * c + i] = clip8(acc);
    }
  }
  return { data: out, width: rw, height: rh, channels: c };
}

/** torchvision's `Resize(size)` for PIL images: the shorter side becomes `size`, the longer one `floor(size * long / short)`. */
export function resizeShorterSide(width: number, height: number, size: number): [number, number] {
  const [short, long] = width <= height ? [width, height] : [height, width];
  const newLong = Math.floor((size * long) / short);
  return width <= height ? [size, newLong] : [newLong, size];
}

// Python's round(): halves to even.
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * torchvision's `CenterCrop(size)` offsets: `int(round((H - size) / 2))` (Python rounds halves to
 * even). Returns [top, left]. Images smaller than the crop are padded with zeros by torchvision;
 * here that is an error (preprocess resizes first, so it cannot happen there).
 */
export function centerCropOffsets(width: number, height: number, cropW: number, cropH: number): [number, number] {
  if (cropW > width || cropH > height) throw new RangeError(`centerCrop: a ${cropW} x ${cropH} crop does not fit a ${width} x ${height} image`);
  return [roundHalfEven((height - cropH) / 2), roundHalfEven((width - cropW) / 2)];
}
