// Gradients of matmul, linear and fusedLinear (every prologue and epilogue: LayerNorm, add, bias,
// GELU/SiLU, RoPE with the key scale, layer scale, residual), layerNorm and batchNorm (eval and
// training, with the fused activation), against test/reference/grad.ts. fp32: GEMM sums over
// <= 100 terms, statistics in fp32: ~1e-6, bound 2e-5. 16-bit: inputs and outputs rounded
// (bf16 ~4e-3 relative per rounding, compounded through two GEMMs), bounds 3e-2 / 5e-3.
import { batchNorm, fusedLinear, layerNorm, linear, matmul, type Tensor } from '../../lib/index.js';
import type { F64, GradCase } from '../helpers/grad-cases.js';
import { batchNormTrainGradRef, batchNormTrainRef, layerNormGradRef, linearGradRef, matmulGradRef } from '../reference/grad.js';
import { batchNormRef, layerNormRef, linearRef, ropeAngles, type LinearRefOptions } from '../reference/layers.js';
import { matmulRef } from '../reference/matmul.js';

const TOL = { float32: 2e-5, bfloat16: 3e-2, float16: 5e-3 };
const cl = (t: Tensor) => t.contiguous('channelsLast');
const positive = (rng: { next(): number }, n: number) => Float32Array.from({ length: n }, () => 0.3 + rng.next() * 2);

type Opt = 'bias' | 'norm' | 'normAffine' | 'add' | 'gelu' | 'silu' | 'scale' | 'residual' | 'rope';

/** A fusedLinear case with the named parts; x [lead..., k] -> [lead..., n]. */
function fused(name: string, lead: number[], k: number, n: number, parts: Opt[], rope?: { heads: number; height: number; width: number }): GradCase {
  const m = lead.reduce((a, b) => a * b, 1);
  const has = (p: Opt) => parts.includes(p);
  const inputs: GradCase['inputs'] = { x: { shape: [...lead, k] }, w: { shape: [n, k], scale: 0.3 } };
  if (has('bias')) inputs.b = { shape: [n] };
  if (has('normAffine')) {
    inputs.lw = { shape: [k], values: positive };
    inputs.lb = { shape: [k] };
  }
  if (has('add')) inputs.add = { shape: [...lead, k] };
  if (has('scale')) inputs.scale = { shape: [n] };
  if (has('residual')) inputs.res = { shape: [...lead, n] };
  const d = rope ? n / 3 / rope.heads : 0;
  if (rope) inputs.angle = { shape: [d / 2], values: () => ropeAngles(d), grad: false };
  const opts = (v: F64): LinearRefOptions => ({
    bias: v.b ?? null,
    activation: has('gelu') ? 'gelu' : has('silu') ? 'silu' : 'none',
    norm: has('norm') || has('normAffine') ? { weight: v.lw ?? null, bias: v.lb ?? null, eps: 1e-5 } : null,
    add: v.add ?? null, scale: v.scale ?? null, residual: v.res ?? null,
    rope: rope ? { angle: v.angle, ...rope, kScale: d ** -0.5 } : null,
  });
  return {
    name,
    inputs,
    run: (t) => fusedLinear(t.x, t.w, t.b ?? null, {
      norm: has('norm') || has('normAffine') ? { weight: t.lw ?? null, bias: t.lb ?? null, eps: 1e-5 } : undefined,
      add: t.add ?? null, activation: has('gelu') ? 'gelu' : has('silu') ? 'silu' : 'none',
      scale: t.scale ?? null, residual: t.res ?? null,
      rope: rope ? { angle: t.angle, ...rope, kScale: d ** -0.5 } : undefined,
    }),
    forward: (v) => linearRef(v.x, v.w, m, k, n, opts(v)),
    backward: (v, dy) => {
      const g = linearGradRef(v.x, v.w, m, k, n, opts(v), dy);
      return { x: g.x, w: g.w, b: g.bias, lw: g.lnWeight, lb: g.lnBias, add: g.add, scale: g.scale, res: g.residual };
    },
    tol: TOL,
  };
}

export const cases: GradCase[] = [
  {
    name: 'matmul [7, 5] x [5, 9]', inputs: { a: { shape: [7, 5] }, b: { shape: [5, 9] } },
    run: (t) => matmul(t.a, t.b),
    forward: (v) => matmulRef(v.a, v.b, 1, 7, 5, 9, false),
    backward: (v, dy) => matmulGradRef(v.a, v.b, 1, 7, 5, 9, false, dy),
    tol: TOL,
  },
  {
    name: 'matmul batched [3, 4, 6] x [3, 6, 5]', inputs: { a: { shape: [3, 4, 6] }, b: { shape: [3, 6, 5] } },
    run: (t) => matmul(t.a, t.b),
    forward: (v) => matmulRef(v.a, v.b, 3, 4, 6, 5, true),
    backward: (v, dy) => matmulGradRef(v.a, v.b, 3, 4, 6, 5, true, dy),
    tol: TOL,
  },
  {
    name: 'matmul [2, 5, 7] x a shared [7, 3], a transposed view', inputs: { a: { shape: [2, 7, 5], view: (t) => t.transpose(1, 2) }, b: { shape: [7, 3] } },
    run: (t) => matmul(t.a, t.b),
    forward: (v) => matmulRef(transposeLast(v.a, 2, 7, 5), v.b, 2, 5, 7, 3, false),
    backward: (v, dy) => {
      const g = matmulGradRef(transposeLast(v.a, 2, 7, 5), v.b, 2, 5, 7, 3, false, dy);
      return { a: transposeLast(g.a, 2, 5, 7), b: g.b };
    },
    tol: TOL,
  },
  fused('linear [9, 13] -> 11 with bias', [9], 13, 11, ['bias']),
  fused('linear [2, 3, 5, 16] -> 24, no bias', [2, 3, 5], 16, 24, []),
  fused('fc1: LayerNorm (affine) + bias + GELU, 70 rows', [70], 24, 40, ['normAffine', 'bias', 'gelu']),
  fused('LayerNorm without affine + SiLU', [17], 12, 10, ['norm', 'silu']),
  fused('out_proj: add + bias + layer scale + residual', [2, 4, 5], 16, 16, ['add', 'bias', 'scale', 'residual']),
  fused('fc2: bias + scale + residual, 100 rows (packed path)', [100], 20, 8, ['bias', 'scale', 'residual']),
  fused('qkv: LayerNorm + bias + RoPE with the key scale', [2, 12], 16, 48, ['normAffine', 'bias', 'rope'], { heads: 2, height: 3, width: 4 }),
  fused('everything: add + LN + bias + GELU + RoPE + scale + residual', [15], 12, 24, ['add', 'normAffine', 'bias', 'gelu', 'rope', 'scale', 'residual'], { heads: 2, height: 5, width: 3 }),
  {
    name: 'linear with a [out, in, 1, 1] weight (a 1x1 conv\'s)', inputs: { x: { shape: [6, 8] }, w: { shape: [5, 8, 1, 1] } },
    run: (t) => linear(t.x, t.w),
    forward: (v) => linearRef(v.x, v.w, 6, 8, 5),
    backward: (v, dy) => {
      const g = linearGradRef(v.x, v.w, 6, 8, 5, {}, dy);
      return { x: g.x, w: g.w };
    },
    tol: TOL,
  },
  {
    name: 'layerNorm over the last dim, weight and bias', inputs: { x: { shape: [7, 33] }, w: { shape: [33], values: positive }, b: { shape: [33] } },
    run: (t) => layerNorm(t.x, t.w, t.b, { eps: 1e-5 }),
    forward: (v) => layerNormRef(v.x, [7, 33], 1, 1e-5, v.w, v.b),
    backward: (v, dy) => {
      const g = layerNormGradRef(v.x, [7, 33], 1, 1e-5, v.w, dy);
      return { x: g.x, w: g.weight, b: g.bias };
    },
    tol: TOL,
  },
  {
    name: 'layerNorm over channels of a channels-last [B, C, H, W] (norm1)', inputs: { x: { shape: [2, 19, 5, 3], view: cl }, w: { shape: [19] } },
    run: (t) => layerNorm(t.x, t.w, null, { eps: 1e-6, dim: 1 }),
    forward: (v) => layerNormRef(v.x, [2, 19, 5, 3], 1, 1e-6, v.w, null),
    backward: (v, dy) => {
      const g = layerNormGradRef(v.x, [2, 19, 5, 3], 1, 1e-6, v.w, dy);
      return { x: g.x, w: g.weight };
    },
    tol: TOL,
  },
  {
    name: 'layerNorm over channels of NCHW (strided)', inputs: { x: { shape: [2, 10, 4, 7] } },
    run: (t) => layerNorm(t.x, null, null, { eps: 1e-6, dim: 1 }),
    forward: (v) => layerNormRef(v.x, [2, 10, 4, 7], 1, 1e-6),
    backward: (v, dy) => ({ x: layerNormGradRef(v.x, [2, 10, 4, 7], 1, 1e-6, null, dy).x }),
    tol: TOL,
  },
  {
    name: 'batchNorm eval mode (running statistics are constants)',
    inputs: { x: { shape: [2, 6, 3, 4] }, m: { shape: [6], grad: false }, var: { shape: [6], values: positive, grad: false }, w: { shape: [6] }, b: { shape: [6] } },
    run: (t) => batchNorm(t.x, t.m, t.var, t.w, t.b, { eps: 1e-5 }),
    forward: (v) => batchNormRef(v.x, [2, 6, 3, 4], v.m, v.var, v.w, v.b, 1e-5),
    backward: (v, dy) => {
      const gx = new Float64Array(v.x.length);
      const gw = new Float64Array(6);
      const gb = new Float64Array(6);
      for (let e = 0; e < v.x.length; e++) {
        const c = Math.floor(e / 12) % 6;
        const is = 1 / Math.sqrt(v.var[c] + 1e-5);
        gx[e] = dy[e] * v.w[c] * is;
        gw[c] += dy[e] * (v.x[e] - v.m[c]) * is;
        gb[c] += dy[e];
      }
      return { x: gx, w: gw, b: gb };
    },
    tol: TOL,
  },
  ...(['none', 'gelu', 'silu'] as const).map((kind, i): GradCase => {
    const shape = i === 1 ? [3, 8, 5, 4] : [2, 5, 3, 7];
    return {
      name: `batchNorm training mode (batch statistics)${kind === 'none' ? '' : ` + ${kind}`}${i === 1 ? ', channels-last' : ''}`,
      inputs: { x: { shape, view: i === 1 ? cl : undefined }, w: { shape: [shape[1]], values: positive }, b: { shape: [shape[1]] } },
      run: (t) => batchNorm(t.x, null, null, t.w, t.b, { training: true, eps: 1e-5, activation: kind }),
      forward: (v) => batchNormTrainRef(v.x, shape, v.w, v.b, 1e-5, kind).y,
      backward: (v, dy) => {
        const g = batchNormTrainGradRef(v.x, shape, v.w, v.b, 1e-5, kind, dy);
        return { x: g.x, w: g.weight, b: g.bias };
      },
      tol: TOL,
    };
  }),
];

function transposeLast(a: ArrayLike<number>, batch: number, r: number, c: number): Float64Array {
  const out = new Float64Array(a.length);
  for (let b = 0; b < batch; b++) for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[(b * c + j) * r + i] = a[(b * r + i) * c + j];
  return out;
}
