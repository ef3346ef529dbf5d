// Gradients of SEC, window (shifted, padded) and global attention against attentionGradRef
// (test/reference/attention.ts: the softmax Jacobian per query, from the definition), with SEC's
// order a constant. Cases: clusters that do not divide L, one cluster, groups over a key tile
// (several tiles per group on the CPU), q/k/v as views of one qkv projection (the model's
// layout), odd head dims, CUDA's tensor-core tiles. fp32: sums over <= 300 keys, ~1e-6, bound
// 5e-5; 16-bit: inputs rounded, the outputs, and on CUDA P and dS rounded before their products
// (bf16 3e-2, fp16 5e-3).
import { globalAttention, secAttention, windowAttention } from '../../lib/index.js';
import type { F64, GradCase } from '../helpers/grad-cases.js';
import { withSpecials } from '../helpers/op-cases.js';
import { attentionGradRef, globalAttentionRef, secAttentionRef, secKeysOf, windowAttentionRef, windowBiasOf, windowKeysOf, windowSlotsOf, type AttnShape } from '../reference/attention.js';

const TOL = { float32: 5e-5, bfloat16: 3e-2, float16: 5e-3 };
const qkv = (s: AttnShape) => ({ q: { shape: [s.b, s.h, s.l, s.d] }, k: { shape: [s.b, s.h, s.l, s.d] }, v: { shape: [s.b, s.h, s.l, s.d] }, } as GradCase['inputs']);
const grads = (g: { q: Float64Array; k: Float64Array; v: Float64Array }) => ({ q: g.q, k: g.k, v: g.v });

function sec(name: string, s: AttnShape, clusters: number): GradCase {
  return {
    name: `secAttention ${name} (B=${s.b} H=${s.h} L=${s.l} D=${s.d} C=${clusters})`,
    inputs: qkv(s),
    run: (t) => secAttention(t.q, t.k, t.v, { clusters }),
    forward: (v) => secAttentionRef(v.q, v.k, v.v, s, clusters).out,
    backward: (v, dy) => grads(attentionGradRef(v.q, v.k, v.v, dy, s, secKeysOf(v.k, s, clusters))),
    tol: TOL,
  };
}

// The model's layout: one [B, L, 3H, D] projection viewed as q, k, v [B, H, L, D] (strided);
// the gradient flows back into the one tensor.
function fromProjection(s: AttnShape, clusters: number): GradCase {
  const split = (x: F64) => {
    const out = { q: new Float64Array(s.b * s.h * s.l * s.d), k: new Float64Array(s.b * s.h * s.l * s.d), v: new Float64Array(s.b * s.h * s.l * s.d) };
    for (let b = 0; b < s.b; b++) for (let t = 0; t < s.l; t++) for (let m = 0; m < 3; m++) for (let h = 0; h < s.h; h++) for (let c = 0; c < s.d; c++)
      [out.q, out.k, out.v][m][((b * s.h + h) * s.l + t) * s.d + c] = x.x[(((b * s.l + t) * 3 + m) * s.h + h) * s.d + c];
    return out;
  };
  return {
    name: `secAttention on views of one qkv projection (B=${s.b} H=${s.h} L=${s.l} D=${s.d} C=${clusters})`,
    inputs: { x: { shape: [s.b, s.l, 3 * s.h, s.d] } },
    run: (t) => {
      const p = t.x.permute([0, 2, 1, 3]);
      return secAttention(p.narrow(1, 0, s.h), p.narrow(1, s.h, s.h), p.narrow(1, 2 * s.h, s.h), { clusters });
    },
    forward: (v) => {
      const x = split(v);
      return secAttentionRef(x.q, x.k, x.v, s, clusters).out;
    },
    backward: (v, dy) => {
      const x = split(v);
      const g = attentionGradRef(x.q, x.k, x.v, dy, s, secKeysOf(x.k, s, clusters));
      const gx = new Float64Array(v.x.length);
      for (let b = 0; b < s.b; b++) for (let t = 0; t < s.l; t++) for (let m = 0; m < 3; m++) for (let h = 0; h < s.h; h++) for (let c = 0; c < s.d; c++)
        gx[(((b * s.l + t) * 3 + m) * s.h + h) * s.d + c] = [g.q, g.k, g.v][m][((b * s.h + h) * s.l + t) * s.d + c];
      return { x: gx };
    },
    tol: TOL,
  };
}

export const cases: GradCase[] = [
  sec('clusters not dividing L', { b: 2, h: 2, l: 37, d: 8 }, 4),
  sec('one cluster (global)', { b: 1, h: 3, l: 21, d: 16 }, 1),
  sec('groups of 150 (two key tiles on the CPU), odd D', { b: 1, h: 1, l: 300, d: 12 }, 2),
  // CUDA's tensor-core backward (16-bit, D <= 64) at its widest head: groups of 75 and 76 span two
  // 64-row blocks and three 32-row tiles of the other side; D = 72: 16-bit on fp32 arithmetic.
  sec('16-bit tensor-core tiles, D = 40', { b: 1, h: 2, l: 151, d: 40 }, 2),
  sec('a head wider than the tensor-core backward, D = 72', { b: 1, h: 1, l: 45, d: 72 }, 2),
  fromProjection({ b: 2, h: 2, l: 30, d: 8 }, 3),
  {
    name: 'windowAttention 3x3 windows, shifted by (1, 1), on a padded 7 x 5 grid',
    inputs: qkv({ b: 1, h: 2, l: 35, d: 8 }),
    run: (t) => windowAttention(t.q, t.k, t.v, { height: 7, width: 5, window: [3, 3], shift: [1, 1] }),
    forward: (v) => windowAttentionRef(v.q, v.k, v.v, { b: 1, h: 2, l: 35, d: 8 }, 7, 5, 3, 3, 1, 1),
    backward: (v, dy) => grads(attentionGradRef(v.q, v.k, v.v, dy, { b: 1, h: 2, l: 35, d: 8 }, windowKeysOf({ b: 1, h: 2, l: 35, d: 8 }, 7, 5, 3, 3, 1, 1))),
    tol: TOL,
  },
  windowBias('3x4 windows shifted by (1, 2) on a padded 7 x 9 grid, 3 heads, B=2', { b: 2, h: 3, l: 63, d: 8 }, 7, 9, 3, 4, 1, 2),
  windowBias('Swin-T\'s 7x7 windows shifted by 3 on a 14 x 14 grid', { b: 1, h: 2, l: 196, d: 16 }, 14, 14, 7, 7, 3, 3),
  // Hard numerics: a bias of scale 30 (logits in the tens, near-one-hot softmax rows) must not
  // overflow P = exp(s + bias - lse) nor lose dbias.
  { ...windowBias('bias in the tens, padded 5 x 7 grid', { b: 2, h: 2, l: 35, d: 8 }, 5, 7, 3, 3, 1, 1, 30), tol: { float32: TOL.float32 }, fd: { eps: 1e-7, tol: 1e-4 } },
  // Hard numerics. Scores in the hundreds: P = exp(s - lse) must not overflow (q, k ~ 6 sigma,
  // D = 16: |s| up to ~600). A NaN key element of head 0 (window attention: no order depends on
  // it): its window's rows are NaN in dq, dk and dv, every other window finite.
  {
    name: 'globalAttention with scores in the hundreds (B=1 H=2 L=33 D=16)',
    inputs: { q: { shape: [1, 2, 33, 16], scale: 6 }, k: { shape: [1, 2, 33, 16], scale: 6 }, v: { shape: [1, 2, 33, 16] } },
    run: (t) => globalAttention(t.q, t.k, t.v),
    forward: (v) => globalAttentionRef(v.q, v.k, v.v, { b: 1, h: 2, l: 33, d: 16 }),
    backward: (v, dy) => grads(attentionGradRef(v.q, v.k, v.v, dy, { b: 1, h: 2, l: 33, d: 16 }, () => Array.from({ length: 33 }, (_, i) => i))),
    tol: TOL,
    fd: { eps: 1e-7, tol: 1e-4 },
  },
  {
    name: 'windowAttention 3x3 windows on a 6 x 6 grid, a NaN key element',
    inputs: { q: { shape: [1, 2, 36, 8] }, k: { shape: [1, 2, 36, 8], values: withSpecials({ [8 * 7 + 3]: NaN }) }, v: { shape: [1, 2, 36, 8] } },
    run: (t) => windowAttention(t.q, t.k, t.v, { height: 6, width: 6, window: [3, 3] }),
    forward: (v) => windowAttentionRef(v.q, v.k, v.v, { b: 1, h: 2, l: 36, d: 8 }, 6, 6, 3, 3, 0, 0),
    backward: (v, dy) => grads(attentionGradRef(v.q, v.k, v.v, dy, { b: 1, h: 2, l: 36, d: 8 }, windowKeysOf({ b: 1, h: 2, l: 36, d: 8 }, 6, 6, 3, 3, 0, 0))),
    tol: TOL,
    fd: false,
  },
  {
    name: 'globalAttention (B=2 H=1 L=40 D=20)',
    inputs: qkv({ b: 2, h: 1, l: 40, d: 20 }),
    run: (t) => globalAttention(t.q, t.k, t.v),
    forward: (v) => globalAttentionRef(v.q, v.k, v.v, { b: 2, h: 1, l: 40, d: 20 }),
    backward: (v, dy) => grads(attentionGradRef(v.q, v.k, v.v, dy, { b: 2, h: 1, l: 40, d: 20 }, () => Array.from({ length: 40 }, (_, i) => i))),
    tol: TOL,
  },
];

// Window attention with Swin's relative position bias [H, N, N] (a differentiable input: its
// gradient sums dS over images and windows by window slot). The bias is float32 in every dtype:
// a 16-bit case holds it as a leaf of the case's dtype cast to float32 (as the Swin model does),
// so the gradient returns through the cast; on CUDA 16-bit q, k, v run the tensor-core kernels.
function windowBias(name: string, s: AttnShape, height: number, width: number, wh: number, ww: number, sh: number, sw: number, biasScale = 1): GradCase {
  const n = wh * ww;
  const geometry = [height, width, wh, ww, sh, sw] as const;
  return {
    name: `windowAttention with a relative position bias, ${name}`,
    inputs: { ...qkv(s), bias: { shape: [s.h, n, n], scale: biasScale, view: (t) => (t.dtype === 'float32' ? t : t.cast('float32')) } },
    run: (t) => windowAttention(t.q, t.k, t.v, { height, width, window: [wh, ww], shift: [sh, sw], bias: t.bias }),
    forward: (v) => windowAttentionRef(v.q, v.k, v.v, s, ...geometry, v.bias),
    backward: (v, dy) => {
      const slot = windowSlotsOf(...geometry);
      const gb = new Float64Array(s.h * n * n);
      const g = attentionGradRef(v.q, v.k, v.v, dy, s, windowKeysOf(s, ...geometry), {
        of: windowBiasOf(v.bias, s, ...geometry),
        grad: (bh, i, j, ds) => (gb[((bh % s.h) * n + slot[i]) * n + slot[j]] += ds),
      });
      return { ...grads(g), bias: gb };
    },
    tol: TOL,
  };
}
