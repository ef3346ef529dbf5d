// conv2d / fusedConv2d against conv2dRef (NCHW double loops). Tolerances: fp32 accumulation
// over C/g * kh * kw <= 600 terms, ~1e-6 relative; 1e-5 bounds it. 16-bit: the output's
// rounding, as for linear.
import { conv2d, fusedConv2d, type Tensor } from '../../lib/index.js';
import { withSpecials, type InputSpec, type OpCase } from '../helpers/op-cases.js';
import { conv2dRef, conv2dShape, type Conv2dRefOptions } from '../reference/layers.js';

const F32 = 1e-5;
const HALF = { float32: F32, bfloat16: 8e-3, float16: 1e-3 };
const cl = (t: Tensor) => t.contiguous('channelsLast');

// `channelsLast: false` keeps x (and the residual) NCHW; `withResidual` adds one; `x` sets x's
// values (default normals).
type ConvCase = Omit<Conv2dRefOptions, 'residual' | 'scale'> & {
  channelsLast?: boolean; fused?: boolean; withResidual?: boolean; withScale?: boolean; x?: InputSpec['values'];
};

function conv(name: string, xs: number[], ws: number[], o: ConvCase, tol: OpCase['tol'] = HALF): OpCase {
  const opts = { stride: o.stride, padding: o.padding, dilation: o.dilation, groups: o.groups };
  const out = conv2dShape(xs, ws, o);
  const layout = o.channelsLast === false ? undefined : cl;
  return {
    name,
    inputs: {
      x: { shape: xs, view: layout, values: o.x },
      w: { shape: ws, scale: 0.3 },
      ...(o.bias !== null ? { b: { shape: [ws[0]] } } : {}),
      ...(o.withResidual ? { r: { shape: out, view: layout } } : {}),
      ...(o.withScale ? { s: { shape: [ws[0]] } } : {}),
    },
    run: (t) =>
      o.fused
        ? fusedConv2d(t.x, t.w, t.b ?? null, { ...opts, activation: o.activation, residual: t.r ?? null, scale: t.s ?? null })
        : conv2d(t.x, t.w, t.b ?? null, opts),
    ref: (v) => conv2dRef(v.x, xs, v.w, ws, { ...o, bias: v.b ?? null, residual: v.r ?? null, scale: v.s ?? null }).y,
    tol,
    shapes: [out],
  };
}

export const cases: OpCase[] = [
  conv('depthwise 3x3, pad 1 (CPE), odd sizes', [2, 13, 7, 9], [13, 1, 3, 3], { padding: [1, 1], groups: 13 }),
  conv('depthwise 5x5, pad 2 (LCE)', [1, 24, 11, 6], [24, 1, 5, 5], { padding: [2, 2], groups: 24 }),
  conv('depthwise 3x3 + residual (x + dwconv(x))', [1, 17, 8, 8], [17, 1, 3, 3], { padding: [1, 1], groups: 17, withResidual: true, fused: true }),
  conv('depthwise, stride 2, NCHW input', [1, 5, 9, 7], [5, 1, 3, 3], { padding: [1, 1], stride: [2, 2], groups: 5, channelsLast: false }),
  // C a multiple of 8, channels-last: the AVX2 register-blocked kernel (4 pixels per step, the
  // border pixels one at a time).
  conv('depthwise 3x3 + residual, 16 channels (blocked), odd sizes', [2, 16, 7, 13], [16, 1, 3, 3], { padding: [1, 1], groups: 16, withResidual: true, fused: true }),
  conv('depthwise 5x5, stride [1, 2], dilation [2, 1], + GELU, 24 channels (blocked)', [1, 24, 11, 17], [24, 1, 5, 5], { padding: [4, 2], stride: [1, 2], dilation: [2, 1], groups: 24, activation: 'gelu', fused: true }),
  conv('depthwise 3x3, 8 channels (blocked): NaN and infinities', [1, 8, 5, 9], [8, 1, 3, 3], { padding: [1, 1], groups: 8, x: withSpecials({ 3: NaN, 100: Infinity, 201: -Infinity, 300: 3e4 }) }),
  conv('1x1 (a GEMM over pixels)', [2, 19, 5, 7], [23, 19, 1, 1], {}),
  conv('1x1, NCHW input', [1, 11, 6, 6], [8, 11, 1, 1], { channelsLast: false }),
  conv('3x3 stride 2 pad 1 from 3 channels (the stem)', [2, 3, 15, 13], [8, 3, 3, 3], { stride: [2, 2], padding: [1, 1] }),
  conv('3x3 stride 1 pad 1, 32 -> 32', [1, 32, 10, 10], [32, 32, 3, 3], { padding: [1, 1] }),
  // K = 9 x 40 = 360: two K blocks of 180, split inside a tap (tap 4, channel 20); rows whose
  // taps are all inside the image are one copy per kernel row, the border rows tap by tap.
  conv('3x3 pad 1, 40 -> 19, K blocks split inside a tap', [1, 40, 9, 8], [19, 40, 3, 3], { padding: [1, 1] }),
  conv('3x3 pad 2 dilation 2, 40 -> 17, NCHW input, two K blocks', [1, 40, 8, 9], [17, 40, 3, 3], { padding: [2, 2], dilation: [2, 2], channelsLast: false }),
  conv('3x3 stride 2 pad 1 + GELU (downsample + folded BN + act)', [1, 16, 9, 9], [29, 16, 3, 3], { stride: [2, 2], padding: [1, 1], activation: 'gelu', fused: true }),
  conv('groups = 2, 3x5 kernel, dilation 2, no bias', [1, 6, 12, 11], [4, 3, 3, 5], { groups: 2, dilation: [2, 2], padding: [2, 1], bias: null }),
  conv('stride 3, no padding, NCHW input, SiLU', [2, 7, 10, 10], [5, 7, 2, 2], { stride: [3, 3], channelsLast: false, activation: 'silu', fused: true }),
  conv('dense + residual in NCHW layout', [1, 9, 6, 5], [9, 9, 3, 3], { padding: [1, 1], withResidual: true, fused: true, channelsLast: false }),
  // A batch norm after the conv as scale and bias in the epilogue (the model's stem, downsample
  // and head; scale has its sign and size from normals, so it also flips channels).
  conv('3x3 stride 2 + BN as scale/bias (downsample), odd sizes', [2, 13, 11, 9], [21, 13, 3, 3], { stride: [2, 2], padding: [1, 1], withScale: true, fused: true }),
  conv('3x3 + BN scale/bias + GELU (stem)', [1, 3, 17, 15], [16, 3, 3, 3], { padding: [1, 1], withScale: true, activation: 'gelu', fused: true }),
  conv('1x1 + BN scale/bias + SiLU (head projection), NCHW', [2, 24, 3, 5], [37, 24, 1, 1], { withScale: true, activation: 'silu', fused: true, channelsLast: false }),
  conv('groups = 3 + scale + residual, no bias', [1, 9, 7, 6], [6, 3, 3, 3], { groups: 3, padding: [1, 1], withScale: true, withResidual: true, fused: true, bias: null }),
  // 3x3, stride 1, one group, C and O >= 8: Winograd F(2x2, 3x3) on the AVX2 path (2x2 output
  // tiles: odd sizes leave partial tiles; O not a multiple of 8 or 16 leaves tail lanes; a
  // channel count not a multiple of 8 or an NCHW input goes through the patch copy).
  conv('Winograd: 3x3 pad 1, 16 -> 24, odd sizes, batch 2', [2, 16, 7, 9], [24, 16, 3, 3], { padding: [1, 1] }),
  conv('Winograd: + BN scale/bias + GELU + residual, 32 -> 20', [1, 32, 11, 6], [20, 32, 3, 3], { padding: [1, 1], withScale: true, activation: 'gelu', withResidual: true, fused: true }),
  conv('Winograd: no padding, 12 channels (patch copy), SiLU', [1, 12, 9, 10], [16, 12, 3, 3], { activation: 'silu', fused: true }),
  conv('Winograd: pad 2, NCHW input and residual, 8 -> 9', [1, 8, 5, 6], [9, 8, 3, 3], { padding: [2, 2], channelsLast: false, withResidual: true, fused: true }),
  conv('Winograd: 24 -> 32 at 30 x 26, batch 2 (several tile blocks)', [2, 24, 30, 26], [32, 24, 3, 3], { padding: [1, 1], withScale: true, fused: true }),
  // Not finite or huge inputs leave Winograd (its transforms would turn +-inf into NaN) for the
  // direct path: exactly the reference's NaN and infinities.
  conv('Winograd shape with NaN, infinities and 1e20 (direct path)', [1, 16, 6, 7], [8, 16, 3, 3], { padding: [1, 1], x: withSpecials({ 7: NaN, 64: -Infinity, 300: Infinity, 500: 1e20 }) }),
  // NaN and infinities reach exactly the outputs whose window holds them (padding adds no NaN).
  conv('depthwise 3x3: NaN and infinities', [1, 5, 6, 7], [5, 1, 3, 3], { padding: [1, 1], groups: 5, x: withSpecials({ 3: NaN, 50: Infinity, 130: -Infinity, 200: 3e4 }) }),
  conv('dense 3x3 (im2col): NaN and an infinity', [1, 4, 5, 6], [6, 4, 3, 3], { padding: [1, 1], x: withSpecials({ 7: NaN, 64: -Infinity }) }),
  conv('1x1: an infinity + GELU', [1, 8, 3, 5], [7, 8, 1, 1], { activation: 'gelu', fused: true, x: withSpecials({ 17: Infinity, 30: NaN }) }),
  conv('3x3 stride 2 + BN scale/bias: NaN, an infinity and large values', [1, 6, 9, 7], [11, 6, 3, 3], { stride: [2, 2], padding: [1, 1], withScale: true, fused: true, x: withSpecials({ 5: NaN, 80: Infinity, 200: 3e4, 301: -3e4 }) }),
];
