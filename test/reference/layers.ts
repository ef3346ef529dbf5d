// Double-precision references of the layer ops, written from PyTorch's documented semantics
// and SPEC section 3 (not from the kernels). Arrays are row-major (NCHW for images).

export type Arr = ArrayLike<number>;

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** erf to double precision (Abramowitz & Stegun 7.1.26 is not enough here): series / continued fraction. */
export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (!Number.isFinite(x)) return Math.sign(x);
  const ax = Math.abs(x);
  let r: number;
  if (ax < 2.5) {
    // Maclaurin series: erf x = 2/sqrt(pi) sum (-1)^n x^(2n+1) / (n! (2n+1)).
    let term = ax;
    let sum = ax;
    for (let n = 1; n < 60; n++) {
      term *= (-ax * ax) / n;
      sum += term / (2 * n + 1);
    }
    r = (2 / Math.sqrt(Math.PI)) * sum;
  } else {
    // Continued fraction for erfc (Lentz).
    const x2 = ax * ax;
    let f = ax;
    let c = ax;
    let d = 0;
    for (let n = 1; n < 200; n++) {
      const an = n / 2;
      d = ax + an * d;
      d = d === 0 ? 1e-300 : 1 / d;
      c = ax + an / c;
      const delta = c * d;
      f *= delta;
      if (Math.abs(delta - 1) < 1e-16) break;
    }
    r = 1 - Math.exp(-x2) / (f * Math.sqrt(Math.PI));
  }
  return x < 0 ? -r : r;
}

export const geluRef = (x: number) => 0.5 * x * (1 + erf(x / Math.SQRT2));
export const siluRef = (x: number) => x / (1 + Math.exp(-x));
export function act(kind: 'none' | 'gelu' | 'silu', x: number): number {
  return kind === 'gelu' ? geluRef(x) : kind === 'silu' ? siluRef(x) : x;
}

export interface LinearRefOptions {
  bias?: Arr | null;
  activation?: 'none' | 'gelu' | 'silu';
  norm?: { weight?: Arr | null; bias?: Arr | null; eps: number } | null;
  add?: Arr | null;
  scale?: Arr | null;
  residual?: Arr | null;
  rope?: { angle: Arr; heads: number; height: number; width: number; kScale: number } | null;
}

/** y[m, n] = residual + scale[n] * rope(act(sum_k LN(x + add)[m, k] w[n, k] + bias[n])). x [M, K], w [N, K]. */
export function linearRef(x: Arr, w: Arr, m: number, k: number, n: number, o: LinearRefOptions = {}): Float64Array {
  const y = new Float64Array(m * n);
  const row = new Float64Array(k);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < k; j++) row[j] = x[i * k + j] + (o.add ? o.add[i * k + j] : 0);
    if (o.norm) {
      let mu = 0;
      for (let j = 0; j < k; j++) mu += row[j];
      mu /= k;
      let v = 0;
      for (let j = 0; j < k; j++) v += (row[j] - mu) ** 2;
      const rs = 1 / Math.sqrt(v / k + o.norm.eps);
      for (let j = 0; j < k; j++) row[j] = (row[j] - mu) * rs * (o.norm.weight ? o.norm.weight[j] : 1) + (o.norm.bias ? o.norm.bias[j] : 0);
    }
    for (let c = 0; c < n; c++) {
      let s = o.bias ? o.bias[c] : 0;
      for (let j = 0; j < k; j++) s += row[j] * w[c * k + j];
      y[i * n + c] = act(o.activation ?? 'none', s);
    }
    if (o.rope) {
      const { angle, heads, height, width, kScale } = o.rope;
      const d = n / 3 / heads;
      const l = i % (height * width);
      const yy = Math.floor(l / width);
      const xx = l % width;
      for (let part = 0; part < 2; part++) {
        for (let h = 0; h < heads; h++) {
          const base = i * n + part * heads * d + h * d;
          const t = Array.from({ length: d }, (_, j) => y[base + j]);
          for (let j = 0; j < d; j++) {
            const theta = j < d / 2 ? yy * angle[j] : xx * angle[j - d / 2];
            const r = j % 2 === 0 ? -t[j + 1] : t[j - 1];
            y[base + j] = (t[j] * Math.cos(theta) + r * Math.sin(theta)) * (part === 1 ? kScale : 1);
          }
        }
      }
    }
    for (let c = 0; c < n; c++) {
      if (o.scale) y[i * n + c] *= o.scale[c];
      if (o.residual) y[i * n + c] += o.residual[i * n + c];
    }
  }
  return y;
}

export interface Conv2dRefOptions {
  stride?: [number, number];
  padding?: [number, number];
  dilation?: [number, number];
  groups?: number;
  bias?: Arr | null;
  /** Per output channel, on the sum before the bias (secvit's fused batch norm). */
  scale?: Arr | null;
  activation?: 'none' | 'gelu' | 'silu';
  residual?: Arr | null;
}

/** The output shape of F.conv2d (PyTorch's formula). */
export function conv2dShape(xs: readonly number[], ws: readonly number[], o: Conv2dRefOptions = {}): number[] {
  const [sh, sw] = o.stride ?? [1, 1];
  const [ph, pw] = o.padding ?? [0, 0];
  const [dh, dw] = o.dilation ?? [1, 1];
  const oh = Math.floor((xs[2] + 2 * ph - dh * (ws[2] - 1) - 1) / sh) + 1;
  const ow = Math.floor((xs[3] + 2 * pw - dw * (ws[3] - 1) - 1) / sw) + 1;
  return [xs[0], ws[0], oh, ow];
}

/** F.conv2d in NCHW (x [B, C, H, W], w [O, C/g, kh, kw]) plus the fused activation and residual. */
export function conv2dRef(x: Arr, xs: readonly number[], w: Arr, ws: readonly number[], o: Conv2dRefOptions = {}): { y: Float64Array; shape: number[] } {
  const [b, c, h, wd] = xs;
  const [oc, cg, kh, kw] = ws;
  const [sh, sw] = o.stride ?? [1, 1];
  const [ph, pw] = o.padding ?? [0, 0];
  const [dh, dw] = o.dilation ?? [1, 1];
  const g = o.groups ?? 1;
  const og = oc / g;
  const [, , oh, ow] = conv2dShape(xs, ws, o);
  const y = new Float64Array(b * oc * oh * ow);
  for (let bi = 0; bi < b; bi++)
    for (let o2 = 0; o2 < oc; o2++) {
      const grp = Math.floor(o2 / og);
      for (let oy = 0; oy < oh; oy++)
        for (let ox = 0; ox < ow; ox++) {
          let s = 0;
          for (let ci = 0; ci < cg; ci++)
            for (let ky = 0; ky < kh; ky++) {
              const iy = oy * sh - ph + ky * dh;
              if (iy < 0 || iy >= h) continue;
              for (let kx = 0; kx < kw; kx++) {
                const ix = ox * sw - pw + kx * dw;
                if (ix < 0 || ix >= wd) continue;
                s += x[((bi * c + grp * cg + ci) * h + iy) * wd + ix] * w[((o2 * cg + ci) * kh + ky) * kw + kx];
              }
            }
          const idx = ((bi * oc + o2) * oh + oy) * ow + ox;
          const pre = (o.scale ? o.scale[o2] * s : s) + (o.bias ? o.bias[o2] : 0);
          y[idx] = act(o.activation ?? 'none', pre) + (o.residual ? o.residual[idx] : 0);
        }
    }
  return { y, shape: [b, oc, oh, ow] };
}

/** Broadcast shape and a binary op over row-major operands (NumPy rules). */
/** Calls fn(e, idx) for every element e of a row-major tensor of `shape`, idx its multi-index. */
export function forEachIndex(shape: readonly number[], fn: (e: number, idx: readonly number[]) => void): void {
  const idx = new Array<number>(shape.length).fill(0);
  const n = numel(shape);
  for (let e = 0; e < n; e++) {
    let rem = e;
    for (let i = shape.length - 1; i >= 0; i--) {
      idx[i] = rem % shape[i];
      rem = Math.floor(rem / shape[i]);
    }
    fn(e, idx);
  }
}

/** Row-major offset of the multi-index idx in a tensor of `shape` whose size-1 dims broadcast. */
export function broadcastOffset(idx: readonly number[], shape: readonly number[]): number {
  let o = 0;
  for (let i = 0; i < shape.length; i++) o = o * shape[i] + (shape[i] === 1 ? 0 : idx[i]);
  return o;
}

/** NumPy broadcasting of two shapes: both padded with leading 1s to one rank, and the result. */
export function broadcastShapes(as: readonly number[], bs: readonly number[]): { pa: number[]; pb: number[]; shape: number[] } {
  const nd = Math.max(as.length, bs.length);
  const pa = [...Array<number>(nd - as.length).fill(1), ...as];
  const pb = [...Array<number>(nd - bs.length).fill(1), ...bs];
  return { pa, pb, shape: pa.map((d, i) => Math.max(d, pb[i])) };
}

export function broadcastRef(a: Arr, as: readonly number[], b: Arr | number, bs: readonly number[], f: (x: number, y: number) => number): { y: Float64Array; shape: number[] } {
  const { pa, pb, shape } = broadcastShapes(as, bs);
  const y = new Float64Array(numel(shape));
  forEachIndex(shape, (e, idx) => {
    y[e] = f(a[broadcastOffset(idx, pa)], typeof b === 'number' ? b : b[broadcastOffset(idx, pb)]);
  });
  return { y, shape };
}

/** LayerNorm over dim `dim` of a row-major tensor (biased variance). */
export function layerNormRef(x: Arr, shape: readonly number[], dim: number, eps: number, w?: Arr | null, b?: Arr | null): Float64Array {
  const d = shape[dim];
  const inner = numel(shape.slice(dim + 1));
  const outer = numel(shape.slice(0, dim));
  const y = new Float64Array(x.length);
  for (let o = 0; o < outer; o++)
    for (let i = 0; i < inner; i++) {
      let mu = 0;
      for (let j = 0; j < d; j++) mu += x[(o * d + j) * inner + i];
      mu /= d;
      let v = 0;
      for (let j = 0; j < d; j++) v += (x[(o * d + j) * inner + i] - mu) ** 2;
      const rs = 1 / Math.sqrt(v / d + eps);
      for (let j = 0; j < d; j++) {
        const at = (o * d + j) * inner + i;
        y[at] = (x[at] - mu) * rs * (w ? w[j] : 1) + (b ? b[j] : 0);
      }
    }
  return y;
}

/** Eval-mode batch norm over dim 1. */
export function batchNormRef(x: Arr, shape: readonly number[], mean: Arr, variance: Arr, w: Arr | null, b: Arr | null, eps: number): Float64Array {
  const c = shape[1];
  const inner = numel(shape.slice(2));
  const y = new Float64Array(x.length);
  for (let e = 0; e < x.length; e++) {
    const ch = Math.floor(e / inner) % c;
    y[e] = ((x[e] - mean[ch]) / Math.sqrt(variance[ch] + eps)) * (w ? w[ch] : 1) + (b ? b[ch] : 0);
  }
  return y;
}

/** SPEC 3.3 on x [B, heads, L, d] row-major, the L tokens row-major on a grid `width` wide. */
export function rope2dRef(x: Arr, shape: readonly number[], angle: Arr, width: number): Float64Array {
  const [b, h, l, d] = shape;
  const y = new Float64Array(x.length);
  for (let bh = 0; bh < b * h; bh++)
    for (let t = 0; t < l; t++) {
      const yy = Math.floor(t / width);
      const xx = t % width;
      const base = (bh * l + t) * d;
      for (let j = 0; j < d; j++) {
        const theta = j < d / 2 ? yy * angle[j] : xx * angle[j - d / 2];
        const r = j % 2 === 0 ? -x[base + j + 1] : x[base + j - 1];
        y[base + j] = x[base + j] * Math.cos(theta) + r * Math.sin(theta);
      }
    }
  return y;
}

/** Mean over H, W of [B, C, H, W]. */
export function avgPoolRef(x: Arr, shape: readonly number[]): Float64Array {
  const [b, c, h, w] = shape;
  const y = new Float64Array(b * c);
  for (let i = 0; i < b * c; i++) {
    let s = 0;
    for (let p = 0; p < h * w; p++) s += x[i * h * w + p];
    y[i] = s / (h * w);
  }
  return y;
}

/** SPEC 3.3's angle table of a head of size d: a_m = 10000^(-m/(n-1)), n = d/4, each twice. */
export function ropeAngles(d: number): Float32Array {
  const n = d / 4;
  const a = new Float32Array(d / 2);
  for (let i = 0; i < n; i++) a[2 * i] = a[2 * i + 1] = 10000 ** (-i / Math.max(n - 1, 1));
  return a;
}
