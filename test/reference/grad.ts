// Double-precision references of gradients, written from the definitions (the chain rule on
// each op's formula, not from the kernels, not by differencing). test/helpers/grad-cases.ts
// checks each against central differences of the matching forward reference.
import { act, broadcastOffset, broadcastShapes, erf, forEachIndex, numel, type Arr, type Conv2dRefOptions } from './layers.js';

/** d gelu / dx = Phi(x) + x phi(x). */
export function geluGradRef(x: number): number {
  return 0.5 * (1 + erf(x / Math.SQRT2)) + (x * Math.exp(-0.5 * x * x)) / Math.sqrt(2 * Math.PI);
}

/** d silu / dx = s (1 + x (1 - s)), s = sigmoid(x). */
export function siluGradRef(x: number): number {
  const s = 1 / (1 + Math.exp(-x));
  return s * (1 + x * (1 - s));
}

export function actGradRef(kind: 'none' | 'gelu' | 'silu', x: number): number {
  return kind === 'gelu' ? geluGradRef(x) : kind === 'silu' ? siluGradRef(x) : 1;
}

/**
 * Gradients of y = f(a, b) under NumPy broadcasting: each operand element collects dy * df/d(it)
 * over every output position it was broadcast to.
 */
export function broadcastGradRef(
  a: Arr, as: readonly number[], b: Arr, bs: readonly number[], dy: Arr,
  dfa: (x: number, y: number) => number, dfb: (x: number, y: number) => number,
): { da: Float64Array; db: Float64Array } {
  const { pa, pb, shape } = broadcastShapes(as, bs);
  const da = new Float64Array(a.length);
  const db = new Float64Array(b.length);
  forEachIndex(shape, (e, idx) => {
    const ia = broadcastOffset(idx, pa);
    const ib = broadcastOffset(idx, pb);
    da[ia] += dy[e] * dfa(a[ia], b[ib]);
    db[ib] += dy[e] * dfb(a[ia], b[ib]);
  });
  return { da, db };
}

/** Sum of a row-major tensor over the dims in `dims` (every dim when empty), keeping them as 1. */
export function sumRef(x: Arr, shape: readonly number[], dims: readonly number[]): Float64Array {
  const out = summedShape(shape, dims);
  const y = new Float64Array(numel(out));
  forEachIndex(shape, (e, idx) => {
    y[broadcastOffset(idx, out)] += x[e];
  });
  return y;
}

/** d/dx of <sum(x, dims), dy>: dy broadcast back over the summed dims. */
export function sumGradRef(shape: readonly number[], dims: readonly number[], dy: Arr): Float64Array {
  const out = summedShape(shape, dims);
  const g = new Float64Array(numel(shape));
  forEachIndex(shape, (e, idx) => {
    g[e] = dy[broadcastOffset(idx, out)];
  });
  return g;
}

/** `shape` with the dims in `dims` (every dim when empty) set to 1. */
function summedShape(shape: readonly number[], dims: readonly number[]): number[] {
  return shape.map((s, i) => (dims.length === 0 || dims.includes(i) ? 1 : s));
}

/** A row-major tensor's elements in the order of `perm` (y = x.permute(perm), packed). */
export function permuteRef(x: Arr, shape: readonly number[], perm: readonly number[]): Float64Array {
  const out = perm.map((p) => shape[p]);
  const strides = shape.map((_, i) => numel(shape.slice(i + 1)));
  const y = new Float64Array(x.length);
  const idx = new Array(out.length).fill(0);
  for (let e = 0; e < y.length; e++) {
    let rem = e;
    for (let i = out.length - 1; i >= 0; i--) {
      idx[i] = rem % out[i];
      rem = Math.floor(rem / out[i]);
    }
    let src = 0;
    for (let i = 0; i < out.length; i++) src += idx[i] * strides[perm[i]];
    y[e] = x[src];
  }
  return y;
}

/** x.narrow(dim, start, len), packed. */
export function narrowRef(x: Arr, shape: readonly number[], dim: number, start: number, len: number): Float64Array {
  const outer = numel(shape.slice(0, dim));
  const inner = numel(shape.slice(dim + 1));
  const y = new Float64Array(outer * len * inner);
  for (let o = 0; o < outer; o++)
    for (let j = 0; j < len; j++)
      for (let i = 0; i < inner; i++) y[(o * len + j) * inner + i] = x[(o * shape[dim] + start + j) * inner + i];
  return y;
}

/** d/dx of <x.narrow(dim, start, len), dy>: dy placed in the window, zeros elsewhere. */
export function narrowGradRef(shape: readonly number[], dim: number, start: number, len: number, dy: Arr): Float64Array {
  const outer = numel(shape.slice(0, dim));
  const inner = numel(shape.slice(dim + 1));
  const g = new Float64Array(numel(shape));
  for (let o = 0; o < outer; o++)
    for (let j = 0; j < len; j++)
      for (let i = 0; i < inner; i++) g[(o * shape[dim] + start + j) * inner + i] = dy[(o * len + j) * inner + i];
  return g;
}

export interface LinearGradOptions {
  bias?: Arr | null;
  activation?: 'none' | 'gelu' | 'silu';
  norm?: { weight?: Arr | null; bias?: Arr | null; eps: number } | null;
  add?: Arr | null;
  scale?: Arr | null;
  residual?: Arr | null;
  rope?: { angle: Arr; heads: number; height: number; width: number; kScale: number } | null;
}

/**
 * Gradients of <linearRef(x, w, ...), dy> (test/reference/layers.ts): per row, s = x + add,
 * a = LN(s) (x-hat w + b), z = a W^T + bias, h = act(z), r = rope(h) (k columns times kScale),
 * y = residual + scale r. Chain rule, step by step back.
 */
export function linearGradRef(x: Arr, w: Arr, m: number, k: number, n: number, o: LinearGradOptions, dy: Arr): Record<string, Float64Array> {
  const g = {
    x: new Float64Array(m * k), w: new Float64Array(n * k), bias: new Float64Array(n), scale: new Float64Array(n),
    lnWeight: new Float64Array(k), lnBias: new Float64Array(k), residual: Float64Array.from(dy),
  };
  const s = new Float64Array(k);
  const xh = new Float64Array(k);
  const a = new Float64Array(k);
  const z = new Float64Array(n);
  const h = new Float64Array(n);
  const dh = new Float64Array(n);
  const dz = new Float64Array(n);
  const da = new Float64Array(k);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < k; j++) s[j] = x[i * k + j] + (o.add ? o.add[i * k + j] : 0);
    let rs = 1;
    if (o.norm) {
      let mu = 0;
      for (let j = 0; j < k; j++) mu += s[j];
      mu /= k;
      let v = 0;
      for (let j = 0; j < k; j++) v += (s[j] - mu) ** 2;
      rs = 1 / Math.sqrt(v / k + o.norm.eps);
      for (let j = 0; j < k; j++) {
        xh[j] = (s[j] - mu) * rs;
        a[j] = xh[j] * (o.norm.weight ? o.norm.weight[j] : 1) + (o.norm.bias ? o.norm.bias[j] : 0);
      }
    } else {
      a.set(s);
    }
    for (let c = 0; c < n; c++) {
      let acc = o.bias ? o.bias[c] : 0;
      for (let j = 0; j < k; j++) acc += a[j] * w[c * k + j];
      z[c] = acc;
      h[c] = act(o.activation ?? 'none', acc);
    }
    // r = rope(h) and dh = rope^T(scale dy): the rotation of each pair and its transpose.
    const r = Float64Array.from(h);
    for (let c = 0; c < n; c++) dh[c] = dy[i * n + c] * (o.scale ? o.scale[c] : 1);
    if (o.rope) {
      const { angle, heads, height, width, kScale } = o.rope;
      const d = n / 3 / heads;
      const l = i % (height * width);
      const yy = Math.floor(l / width);
      const xx = l % width;
      for (let c = 0; c < 2 * heads * d; c += 2) {
        const j = c % d;
        const theta = j < d / 2 ? yy * angle[j] : xx * angle[j - d / 2];
        const cs = Math.cos(theta);
        const sn = Math.sin(theta);
        const f = c >= heads * d ? kScale : 1;
        r[c] = f * (h[c] * cs - h[c + 1] * sn);
        r[c + 1] = f * (h[c + 1] * cs + h[c] * sn);
        const d0 = f * dh[c];
        const d1 = f * dh[c + 1];
        dh[c] = d0 * cs + d1 * sn;
        dh[c + 1] = -d0 * sn + d1 * cs;
      }
    }
    for (let c = 0; c < n; c++) {
      g.scale[c] += dy[i * n + c] * r[c];
      dz[c] = dh[c] * actGradRef(o.activation ?? 'none', z[c]);
      g.bias[c] += dz[c];
      for (let j = 0; j < k; j++) g.w[c * k + j] += dz[c] * a[j];
    }
    for (let j = 0; j < k; j++) {
      let acc = 0;
      for (let c = 0; c < n; c++) acc += dz[c] * w[c * k + j];
      da[j] = acc;
    }
    if (o.norm) {
      let c1 = 0;
      let c2 = 0;
      for (let j = 0; j < k; j++) {
        g.lnWeight[j] += da[j] * xh[j];
        g.lnBias[j] += da[j];
        const dxh = da[j] * (o.norm.weight ? o.norm.weight[j] : 1);
        c1 += dxh;
        c2 += dxh * xh[j];
      }
      c1 /= k;
      c2 /= k;
      for (let j = 0; j < k; j++) g.x[i * k + j] = rs * (da[j] * (o.norm.weight ? o.norm.weight[j] : 1) - c1 - xh[j] * c2);
    } else {
      for (let j = 0; j < k; j++) g.x[i * k + j] = da[j];
    }
  }
  return { ...g, add: g.x };
}

/** Gradients of <layerNormRef(x, shape, dim, eps, w, b), dy>. */
export function layerNormGradRef(x: Arr, shape: readonly number[], dim: number, eps: number, w: Arr | null, dy: Arr): Record<string, Float64Array> {
  const d = shape[dim];
  const inner = numel(shape.slice(dim + 1));
  const outer = numel(shape.slice(0, dim));
  const gx = new Float64Array(x.length);
  const gw = new Float64Array(d);
  const gb = new Float64Array(d);
  for (let o = 0; o < outer; o++)
    for (let i = 0; i < inner; i++) {
      const at = (j: number) => (o * d + j) * inner + i;
      let mu = 0;
      for (let j = 0; j < d; j++) mu += x[at(j)];
      mu /= d;
      let v = 0;
      for (let j = 0; j < d; j++) v += (x[at(j)] - mu) ** 2;
      const rs = 1 / Math.sqrt(v / d + eps);
      let c1 = 0;
      let c2 = 0;
      for (let j = 0; j < d; j++) {
        const xh = (x[at(j)] - mu) * rs;
        gw[j] += dy[at(j)] * xh;
        gb[j] += dy[at(j)];
        const g = dy[at(j)] * (w ? w[j] : 1);
        c1 += g;
        c2 += g * xh;
      }
      for (let j = 0; j < d; j++) {
        const xh = (x[at(j)] - mu) * rs;
        gx[at(j)] = rs * (dy[at(j)] * (w ? w[j] : 1) - c1 / d - xh * (c2 / d));
      }
    }
  return { x: gx, weight: gw, bias: gb };
}

/**
 * Training-mode batch norm over dim 1 with an activation: y = act(x-hat w + b), x-hat = (x -
 * mean) / sqrt(var + eps), mean and biased var over every dim but 1 (computed from x).
 */
export function batchNormTrainRef(x: Arr, shape: readonly number[], w: Arr | null, b: Arr | null, eps: number,
  kind: 'none' | 'gelu' | 'silu' = 'none'): { y: Float64Array; mean: Float64Array; var: Float64Array } {
  const c = shape[1];
  const inner = numel(shape.slice(2));
  const n = x.length / c;
  const mean = new Float64Array(c);
  const vr = new Float64Array(c);
  for (let e = 0; e < x.length; e++) mean[Math.floor(e / inner) % c] += x[e] / n;
  for (let e = 0; e < x.length; e++) vr[Math.floor(e / inner) % c] += (x[e] - mean[Math.floor(e / inner) % c]) ** 2 / n;
  const y = new Float64Array(x.length);
  for (let e = 0; e < x.length; e++) {
    const ch = Math.floor(e / inner) % c;
    const xh = (x[e] - mean[ch]) / Math.sqrt(vr[ch] + eps);
    y[e] = act(kind, xh * (w ? w[ch] : 1) + (b ? b[ch] : 0));
  }
  return { y, mean, var: vr };
}

/** Gradients of <batchNormTrainRef(...).y, dy>: through the activation, x-hat, and the batch statistics. */
export function batchNormTrainGradRef(x: Arr, shape: readonly number[], w: Arr | null, b: Arr | null, eps: number,
  kind: 'none' | 'gelu' | 'silu', dy: Arr): Record<string, Float64Array> {
  const c = shape[1];
  const inner = numel(shape.slice(2));
  const n = x.length / c;
  const { mean, var: vr } = batchNormTrainRef(x, shape, w, b, eps, kind);
  const g = new Float64Array(x.length);
  const sg = new Float64Array(c);
  const sgx = new Float64Array(c);
  for (let e = 0; e < x.length; e++) {
    const ch = Math.floor(e / inner) % c;
    const xh = (x[e] - mean[ch]) / Math.sqrt(vr[ch] + eps);
    g[e] = dy[e] * actGradRef(kind, xh * (w ? w[ch] : 1) + (b ? b[ch] : 0));
    sg[ch] += g[e];
    sgx[ch] += g[e] * xh;
  }
  const gx = new Float64Array(x.length);
  for (let e = 0; e < x.length; e++) {
    const ch = Math.floor(e / inner) % c;
    const is = 1 / Math.sqrt(vr[ch] + eps);
    const xh = (x[e] - mean[ch]) * is;
    gx[e] = (w ? w[ch] : 1) * is * (g[e] - sg[ch] / n - xh * sgx[ch] / n);
  }
  return { x: gx, weight: sgx, bias: sg };
}

/** Gradients of matmul: a [B?, M, K], b [B?, K, N] (a 2-D b shared by the batch). */
export function matmulGradRef(a: Arr, b: Arr, batch: number, m: number, k: number, n: number, bBatched: boolean, dy: Arr): Record<string, Float64Array> {
  const ga = new Float64Array(a.length);
  const gb = new Float64Array(b.length);
  for (let bi = 0; bi < batch; bi++) {
    const bo = bBatched ? bi * k * n : 0;
    for (let i = 0; i < m; i++)
      for (let j = 0; j < n; j++) {
        const d = dy[(bi * m + i) * n + j];
        for (let q = 0; q < k; q++) {
          ga[(bi * m + i) * k + q] += d * b[bo + q * n + j];
          gb[bo + q * n + j] += d * a[(bi * m + i) * k + q];
        }
      }
  }
  return { a: ga, b: gb };
}

/**
 * Gradients of <conv2dRef(x, w, o), dy> (NCHW): per output element, pre = scale * s + bias with
 * s = sum over taps x w; g = dy act'(pre); dbias += g, dscale += g s, and g * scale flows to every
 * (x, w) pair of the sum.
 */
export function conv2dGradRef(x: Arr, xs: readonly number[], w: Arr, ws: readonly number[], o: Conv2dRefOptions, dy: Arr): Record<string, Float64Array> {
  const [b, c, h, wd] = xs;
  const [oc, cg, kh, kw] = ws;
  const [sh, sw] = o.stride ?? [1, 1];
  const [ph, pw] = o.padding ?? [0, 0];
  const [dh, dw] = o.dilation ?? [1, 1];
  const groups = o.groups ?? 1;
  const og = oc / groups;
  const oh = Math.floor((h + 2 * ph - dh * (kh - 1) - 1) / sh) + 1;
  const ow = Math.floor((wd + 2 * pw - dw * (kw - 1) - 1) / sw) + 1;
  const gx = new Float64Array(x.length);
  const gw = new Float64Array(w.length);
  const gb = new Float64Array(oc);
  const gs = new Float64Array(oc);
  for (let bi = 0; bi < b; bi++)
    for (let o2 = 0; o2 < oc; o2++) {
      const grp = Math.floor(o2 / og);
      for (let oy = 0; oy < oh; oy++)
        for (let ox = 0; ox < ow; ox++) {
          const taps: [number, number][] = [];
          let s = 0;
          for (let ci = 0; ci < cg; ci++)
            for (let ky = 0; ky < kh; ky++) {
              const iy = oy * sh - ph + ky * dh;
              if (iy < 0 || iy >= h) continue;
              for (let kx = 0; kx < kw; kx++) {
                const ix = ox * sw - pw + kx * dw;
                if (ix < 0 || ix >= wd) continue;
                const xi = ((bi * c + grp * cg + ci) * h + iy) * wd + ix;
                const wi = ((o2 * cg + ci) * kh + ky) * kw + kx;
                s += x[xi] * w[wi];
                taps.push([xi, wi]);
              }
            }
          const idx = ((bi * oc + o2) * oh + oy) * ow + ox;
          const pre = (o.scale ? o.scale[o2] * s : s) + (o.bias ? o.bias[o2] : 0);
          const g = dy[idx] * actGradRef(o.activation ?? 'none', pre);
          gb[o2] += g;
          gs[o2] += g * s;
          const gc = g * (o.scale ? o.scale[o2] : 1);
          for (const [xi, wi] of taps) {
            gx[xi] += gc * w[wi];
            gw[wi] += gc * x[xi];
          }
        }
    }
  return { x: gx, weight: gw, bias: gb, scale: gs, residual: Float64Array.from(dy) };
}

/** F.cross_entropy's rows in double: loss_r = lse_r sum(q) - sum q z, q = (1 - e) t + e / C. */
export function crossEntropyRef(z: Arr, b: number, c: number, target: Arr, classTarget: boolean, e: number, ignore = -100): { rows: Float64Array; counted: boolean[] } {
  const rows = new Float64Array(b);
  const counted: boolean[] = [];
  for (let r = 0; r < b; r++) {
    const ok = !classTarget || target[r] !== ignore;
    counted.push(ok);
    if (!ok) continue;
    let mx = -Infinity;
    for (let j = 0; j < c; j++) mx = Math.max(mx, z[r * c + j]);
    let s = 0;
    for (let j = 0; j < c; j++) s += Math.exp(z[r * c + j] - mx);
    const lse = mx + Math.log(s);
    for (let j = 0; j < c; j++) {
      const t = classTarget ? (target[r] === j ? 1 : 0) : target[r * c + j];
      rows[r] += ((1 - e) * t + e / c) * (lse - z[r * c + j]);
    }
  }
  return { rows, counted };
}

/** d/dz of the rows weighted by g_r: g_r (softmax(z) sum(q) - q). */
export function crossEntropyGradRef(z: Arr, b: number, c: number, target: Arr, classTarget: boolean, e: number, g: Arr, ignore = -100): Float64Array {
  const out = new Float64Array(b * c);
  for (let r = 0; r < b; r++) {
    if (classTarget && target[r] === ignore) continue;
    let mx = -Infinity;
    for (let j = 0; j < c; j++) mx = Math.max(mx, z[r * c + j]);
    let s = 0;
    for (let j = 0; j < c; j++) s += Math.exp(z[r * c + j] - mx);
    let total = 0;
    const q: number[] = [];
    for (let j = 0; j < c; j++) {
      const t = classTarget ? (target[r] === j ? 1 : 0) : target[r * c + j];
      q.push((1 - e) * t + e / c);
      total += q[j];
    }
    for (let j = 0; j < c; j++) out[r * c + j] = g[r] * ((Math.exp(z[r * c + j] - mx) / s) * total - q[j]);
  }
  return out;
}
