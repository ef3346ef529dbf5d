// Gradients of conv2d and fusedConv2d against test/reference/grad.ts: depthwise (SecViT's CPE,
// LCE 5x5 and FFN convolutions, with the residual), dense 3x3 stride 1 (dx through the
// transposed-weight convolution) and stride 2 (col2im), 1x1, dilated, grouped, odd sizes, NCHW
// and channels-last inputs, with bias, scale (the eval-mode batch norm), activations and the
// residual. fp32: sums over <= 300 terms, ~1e-6, bound 2e-5; 16-bit: the roundings, 3e-2/5e-3.
import { conv2d, fusedConv2d, type Tensor } from '../../lib/index.js';
import type { F64, GradCase } from '../helpers/grad-cases.js';
import { conv2dGradRef } from '../reference/grad.js';
import { conv2dRef, conv2dShape, type Conv2dRefOptions } from '../reference/layers.js';

const TOL = { float32: 2e-5, bfloat16: 3e-2, float16: 5e-3 };
const cl = (t: Tensor) => t.contiguous('channelsLast');

interface Spec {
  name: string;
  x: number[];
  w: number[];
  stride?: [number, number];
  padding?: [number, number];
  dilation?: [number, number];
  groups?: number;
  bias?: boolean;
  scale?: boolean;
  activation?: 'none' | 'gelu' | 'silu';
  residual?: boolean;
  channelsLast?: boolean;
  tol?: GradCase['tol'];
}

function conv(s: Spec): GradCase {
  const out = conv2dShape(s.x, s.w, { stride: s.stride, padding: s.padding, dilation: s.dilation });
  const inputs: GradCase['inputs'] = { x: { shape: s.x, view: s.channelsLast ? cl : undefined }, w: { shape: s.w, scale: 0.3 } };
  if (s.bias) inputs.b = { shape: [s.w[0]] };
  if (s.scale) inputs.scale = { shape: [s.w[0]] };
  if (s.residual) inputs.res = { shape: out, view: cl };
  const opts = (v: F64): Conv2dRefOptions => ({
    stride: s.stride, padding: s.padding, dilation: s.dilation, groups: s.groups,
    bias: v.b ?? null, scale: v.scale ?? null, activation: s.activation ?? 'none', residual: v.res ?? null,
  });
  return {
    name: s.name,
    inputs,
    run: (t) => fusedConv2d(t.x, t.w, t.b ?? null, {
      stride: s.stride, padding: s.padding, dilation: s.dilation, groups: s.groups,
      scale: t.scale ?? null, activation: s.activation, residual: t.res ?? null,
    }),
    forward: (v) => conv2dRef(v.x, s.x, v.w, s.w, opts(v)).y,
    backward: (v, dy) => {
      const g = conv2dGradRef(v.x, s.x, v.w, s.w, opts(v), dy);
      return { x: g.x, w: g.weight, b: g.bias, scale: g.scale, res: g.residual };
    },
    tol: s.tol ?? TOL,
  };
}

export const cases: GradCase[] = [
  conv({ name: 'depthwise 3x3 + bias + residual (CPE), channels-last', x: [2, 16, 7, 5], w: [16, 1, 3, 3], padding: [1, 1], groups: 16, bias: true, residual: true, channelsLast: true }),
  conv({ name: 'depthwise 5x5, pad 2 (LCE), odd channels', x: [1, 13, 9, 8], w: [13, 1, 5, 5], padding: [2, 2], groups: 13, bias: true, channelsLast: true }),
  conv({ name: 'depthwise 3x3 stride 2, dilation 2, NCHW', x: [2, 6, 11, 9], w: [6, 1, 3, 3], stride: [2, 2], padding: [2, 2], dilation: [2, 2], groups: 6 }),
  conv({ name: 'dense 3x3 stride 1 pad 1 + bias (stem conv 2)', x: [2, 8, 9, 7], w: [12, 8, 3, 3], padding: [1, 1], bias: true, channelsLast: true }),
  conv({ name: 'dense 3x3 stride 2 pad 1 (downsample), NCHW input', x: [2, 5, 11, 10], w: [7, 5, 3, 3], stride: [2, 2], padding: [1, 1], bias: true }),
  conv({ name: 'dense 3x3 stride 1, scale + bias + GELU + residual (eval batch norm fused)', x: [1, 9, 6, 6], w: [10, 9, 3, 3], padding: [1, 1], bias: true, scale: true, activation: 'gelu', residual: true, channelsLast: true }),
  conv({ name: '1x1 + scale + bias + SiLU (the head projection)', x: [3, 16, 4, 5], w: [24, 16, 1, 1], bias: true, scale: true, activation: 'silu', channelsLast: true }),
  conv({ name: 'dense 2x3 kernel, dilation (2, 1), no padding, odd sizes', x: [2, 3, 10, 9], w: [4, 3, 2, 3], dilation: [2, 1] }),
  conv({ name: 'grouped (3 groups), stride 2', x: [2, 6, 8, 8], w: [9, 2, 3, 3], stride: [2, 2], padding: [1, 1], groups: 3, bias: true, channelsLast: true }),
  conv({ name: 'dense 3x3 stride 1 pad 0 (valid)', x: [1, 4, 6, 7], w: [5, 4, 3, 3] }),
  {
    name: 'conv2d without bias, the plain functional form', inputs: { x: { shape: [1, 3, 5, 5] }, w: { shape: [4, 3, 3, 3], scale: 0.3 } },
    run: (t) => conv2d(t.x, t.w, null, { padding: 1 }),
    forward: (v) => conv2dRef(v.x, [1, 3, 5, 5], v.w, [4, 3, 3, 3], { padding: [1, 1] }).y,
    backward: (v, dy) => {
      const g = conv2dGradRef(v.x, [1, 3, 5, 5], v.w, [4, 3, 3, 3], { padding: [1, 1] }, dy);
      return { x: g.x, w: g.weight };
    },
    tol: TOL,
  },
];
