// conv2d / fusedConv2d against conv2dRef (NCHW double loops). Tolerances: fp32 accumulation
// over C/g * kh * kw <= 600 terms, ~1e-6 relative; 1e-5 bounds it. 16-bit: the output's
// rounding, as for linear.
import { conv2d, fusedConv2d, type Tensor } from '../../lib/index.js';
import type { OpCase } from '../helpers/op-cases.js';
import { conv2dRef, type Conv2dRefOptions } from '../reference/layers.js';

const F32 = 1e-5;
const HALF = { float32: F32, bfloat16: 8e-3, float16: 1e-3 };
const cl = (t: Tensor) => t.contiguous('channelsLast');

function conv(
  name: string, xs: number[], ws: number[], o: Conv2dRefOptions & { channelsLast?: boolean; fused?: boolean },
  tol: OpCase['tol'] = HALF,
): OpCase {
  const opts = { stride: o.stride, padding: o.padding, dilation: o.dilation, groups: o.groups };
  const out = conv2dRef(new Float32Array(xs.reduce((a, b) => a * b, 1)), xs, new Float32Array(ws.reduce((a, b) => a * b, 1)), ws, o).shape;
  return {
    name,
    inputs: {
      x: { shape: xs, view: o.channelsLast === false ? undefined : cl },
      w: { shape: ws, scale: 0.3 },
      ...(o.bias !== null ? { b: { shape: [ws[0]] } } : {}),
      ...(o.residual !== undefined ? { r: { shape: out, view: cl } } : {}),
    },
    run: (t) =>
      o.fused
        ? fusedConv2d(t.x, t.w, t.b ?? null, { ...opts, activation: o.activation, residual: t.r ?? null })
        : conv2d(t.x, t.w, t.b ?? null, opts),
    ref: (v) => conv2dRef(v.x, xs, v.w, ws, { ...o, bias: v.b ?? null, residual: v.r ?? null }).y,
    tol,
    shapes: [out],
  };
}

export const cases: OpCase[] = [
  conv('depthwise 3x3, pad 1 (CPE), odd sizes', [2, 13, 7, 9], [13, 1, 3, 3], { padding: [1, 1], groups: 13 }),
  conv('depthwise 5x5, pad 2 (LCE)', [1, 24, 11, 6], [24, 1, 5, 5], { padding: [2, 2], groups: 24 }),
  conv('depthwise 3x3 + residual (x + dwconv(x))', [1, 17, 8, 8], [17, 1, 3, 3], { padding: [1, 1], groups: 17, residual: null, fused: true }),
  conv('depthwise, stride 2, NCHW input', [1, 5, 9, 7], [5, 1, 3, 3], { padding: [1, 1], stride: [2, 2], groups: 5, channelsLast: false }),
  conv('1x1 (a GEMM over pixels)', [2, 19, 5, 7], [23, 19, 1, 1], {}),
  conv('1x1, NCHW input', [1, 11, 6, 6], [8, 11, 1, 1], { channelsLast: false }),
  conv('3x3 stride 2 pad 1 from 3 channels (the stem)', [2, 3, 15, 13], [8, 3, 3, 3], { stride: [2, 2], padding: [1, 1] }),
  conv('3x3 stride 1 pad 1, 32 -> 32', [1, 32, 10, 10], [32, 32, 3, 3], { padding: [1, 1] }),
  conv('3x3 stride 2 pad 1 + GELU (downsample + folded BN + act)', [1, 16, 9, 9], [29, 16, 3, 3], { stride: [2, 2], padding: [1, 1], activation: 'gelu', fused: true }),
  conv('groups = 2, 3x5 kernel, dilation 2, no bias', [1, 6, 12, 11], [4, 3, 3, 5], { groups: 2, dilation: [2, 2], padding: [2, 1], bias: null }),
  conv('stride 3, no padding, NCHW input, SiLU', [2, 7, 10, 10], [5, 7, 2, 2], { stride: [3, 3], channelsLast: false, activation: 'silu', fused: true }),
  conv('dense + residual in NCHW layout', [1, 9, 6, 5], [9, 9, 3, 3], { padding: [1, 1], residual: null, fused: true }),
];
