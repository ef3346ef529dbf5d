// The layers of SecViT as functional ops, with the semantics and argument order of
// torch.nn.functional (NCHW shapes at the API), plus the fused forms the model runs.
//
// Where activations live. Shapes are PyTorch's, layouts are secvit's: convolutions return
// channels-last tensors (shape [B, C, H, W], memory B, H, W, C), and the norms and element-wise
// ops keep the layout they are given. Channels-last is what every layer of the model wants:
// a 1x1 convolution or linear layer is then a GEMM over pixels with contiguous rows, layer
// norm over channels normalises contiguous vectors, depthwise convolutions vectorise over
// channels, and SEC attention reads token rows. The model converts its input once and never
// transposes again; a user who reads a result gets row-major data whatever its layout
// (`dataSync()`, `contiguous()`), so the layout shows only in `strides`.
//
// Every op is queued on its inputs' device and returns at once; 16-bit inputs run where a
// device has 16-bit kernels and are widened and narrowed around float32 kernels elsewhere.
import type { MemoryFormat, Tensor } from '../tensor.js';
import { num, optionsOf, pair, tensorOrNull } from './options.js';
import { defineOp } from './run.js';

const conv2dOp = defineOp('conv2d');
const linearOp = defineOp('linear');
const geluOp = defineOp('gelu');
const siluOp = defineOp('silu');
const addOp = defineOp('add');
const mulOp = defineOp('mul');
const layerNormOp = defineOp('layerNorm');
const batchNormOp = defineOp('batchNorm');
const foldBatchNormOp = defineOp('foldBatchNorm');
const rope2dOp = defineOp('rope2d');
const poolOp = defineOp('globalAvgPool2d');

export type Activation = 'none' | 'gelu' | 'silu';
const ACT: Record<Activation, number> = { none: 0, gelu: 1, silu: 2 };

function activation(op: string, v: unknown): number {
  if (v === undefined) return 0;
  if (typeof v !== 'string' || !(v in ACT)) throw new TypeError(`${op}: activation must be 'none', 'gelu' or 'silu', got ${JSON.stringify(v)}`);
  return ACT[v as Activation];
}

// ---- convolution ---------------------------------------------------------------------------

export interface Conv2dOptions {
  stride?: number | readonly [number, number];
  padding?: number | readonly [number, number];
  dilation?: number | readonly [number, number];
  groups?: number;
}

export interface FusedConv2dOptions extends Conv2dOptions {
  /**
   * Per-output-channel factor [O] on the conv's sum, before the bias: y = residual +
   * act(scale * conv(x) + bias). With the bias it is a batch norm after the conv, applied without
   * folding it into a copy of the weight. Not for depthwise convs.
   */
  scale?: Tensor | null;
  /** Applied to scale * conv + bias. */
  activation?: Activation;
  /** Added last: y = residual + act(scale * conv(x) + bias); the output's shape, any layout. */
  residual?: Tensor | null;
}

function convAttrs(op: string, opts: Record<string, unknown>, act: number): number[] {
  const [sh, sw] = pair(op, 'stride', opts.stride, 1);
  const [ph, pw] = pair(op, 'padding', opts.padding, 0);
  const [dh, dw] = pair(op, 'dilation', opts.dilation, 1);
  return [sh, sw, ph, pw, dh, dw, num(op, 'groups', opts.groups, 1), act];
}

/**
 * 2-D convolution, F.conv2d: x [B, C, H, W], weight [O, C/groups, kh, kw], bias [O] or null.
 * Returns [B, O, OH, OW] (channels-last in memory).
 */
export function conv2d(x: Tensor, weight: Tensor, bias: Tensor | null = null, options: Conv2dOptions = {}): Tensor {
  const opts = optionsOf('conv2d', options);
  return conv2dOp.run1([x, weight, tensorOrNull(bias), null, null], convAttrs('conv2d', opts, 0));
}

/** conv2d with a per-channel scale, the activation and the residual add fused into the same pass. */
export function fusedConv2d(x: Tensor, weight: Tensor, bias: Tensor | null, options: FusedConv2dOptions = {}): Tensor {
  const opts = optionsOf('fusedConv2d', options);
  return conv2dOp.run1([x, weight, tensorOrNull(bias), tensorOrNull(opts.residual), tensorOrNull(opts.scale)],
    convAttrs('fusedConv2d', opts, activation('fusedConv2d', opts.activation)));
}

// ---- linear ----------------------------------------------------------------------------------

// The fused attributes of a plain linear: no activation, no LayerNorm, no RoPE, kScale 1.
const PLAIN_LINEAR_ATTRS: readonly number[] = [0, 0, 1e-6, 0, 0, 0, 1];

/** F.linear: x [..., in] times weight [out, in]^T plus bias [out]. */
export function linear(x: Tensor, weight: Tensor, bias: Tensor | null = null): Tensor {
  return linearOp.run1([x, weight, tensorOrNull(bias), null, null, null, null, null, null], PLAIN_LINEAR_ATTRS);
}

export interface FusedLinearOptions {
  /** LayerNorm of x's last dim before the product (the model's norm1/norm2 feeding qkv and fc1). */
  norm?: { weight?: Tensor | null; bias?: Tensor | null; eps?: number };
  /** Added to x before everything else (the LCE output added to the attention output). */
  add?: Tensor | null;
  activation?: Activation;
  /**
   * 2-D RoPE on the q and k columns of a qkv projection (out = 3 heads d; SPEC 3.3), tokens on a
   * height x width grid, with the k columns then scaled by kScale (the model's d^-0.5).
   */
  rope?: { angle: Tensor; heads: number; height: number; width: number; kScale?: number };
  /** Per-output-channel factor after the activation (layer scale, gamma). */
  scale?: Tensor | null;
  /** Added last (the residual connection); x's leading dims and `out` columns, any layout. */
  residual?: Tensor | null;
}

/** y = residual + scale * rope(act(LN(x + add) W^T + bias)), every part optional, one pass. */
export function fusedLinear(x: Tensor, weight: Tensor, bias: Tensor | null, options: FusedLinearOptions = {}): Tensor {
  const op = 'fusedLinear';
  const o = optionsOf(op, options);
  const norm = o.norm === undefined || o.norm === null ? null : optionsOf(op, o.norm);
  const rope = o.rope === undefined || o.rope === null ? null : optionsOf(op, o.rope);
  const inputs = [
    x, weight, tensorOrNull(bias), tensorOrNull(o.residual), tensorOrNull(o.scale),
    norm ? tensorOrNull(norm.weight) : null, norm ? tensorOrNull(norm.bias) : null,
    tensorOrNull(o.add), rope ? (rope.angle as Tensor) : null,
  ];
  const attrs = [
    activation(op, o.activation), norm ? 1 : 0, norm ? num(op, 'norm.eps', norm.eps, 1e-6) : 1e-6,
    rope ? num(op, 'rope.heads', rope.heads, 0) : 0, rope ? num(op, 'rope.height', rope.height, 0) : 0,
    rope ? num(op, 'rope.width', rope.width, 0) : 0, rope ? num(op, 'rope.kScale', rope.kScale, 1) : 1,
  ];
  return linearOp.run1(inputs, attrs);
}

// ---- element-wise ----------------------------------------------------------------------------

/** GELU, exact erf form (F.gelu with approximate='none'). */
export function gelu(x: Tensor): Tensor {
  return geluOp.run1([x]);
}

/** SiLU / swish: x * sigmoid(x) (F.silu). */
export function silu(x: Tensor): Tensor {
  return siluOp.run1([x]);
}
/** SiLU under its other name. */
export const swish = silu;

function binary(op: typeof addOp, a: Tensor, b: Tensor | number): Tensor {
  if (typeof b === 'number') return op.run1([a, null], [b]);
  return op.run1([a, b], [0]);
}

/** a + b with broadcasting (torch.add); b may be a number. */
export function add(a: Tensor, b: Tensor | number): Tensor {
  return binary(addOp, a, b);
}

/** a * b with broadcasting (torch.mul); b may be a number. Layer scale: mul(x, gamma [1, C, 1, 1]). */
export function mul(a: Tensor, b: Tensor | number): Tensor {
  return binary(mulOp, a, b);
}

// ---- normalisation ---------------------------------------------------------------------------

export interface LayerNormOptions {
  /** Default 1e-5, as nn.LayerNorm (SecViT's norms use 1e-6). */
  eps?: number;
  /** The normalised dim; default -1 (F.layer_norm(x, [C])). 1 normalises the channels of a [B, C, H, W] tensor. */
  dim?: number;
}

/** LayerNorm over one dim (biased variance), with optional weight and bias of that dim's size. */
export function layerNorm(x: Tensor, weight: Tensor | null = null, bias: Tensor | null = null, options: LayerNormOptions = {}): Tensor {
  const o = optionsOf('layerNorm', options);
  return layerNormOp.run1([x, tensorOrNull(weight), tensorOrNull(bias)],
    [num('layerNorm', 'dim', o.dim, -1), num('layerNorm', 'eps', o.eps, 1e-5)]);
}

/** Eval-mode batch norm over dim 1 (F.batch_norm(x, runningMean, runningVar, weight, bias, training=false)). */
export function batchNorm(
  x: Tensor, runningMean: Tensor, runningVar: Tensor, weight: Tensor | null = null, bias: Tensor | null = null,
  options: { eps?: number } = {},
): Tensor {
  const o = optionsOf('batchNorm', options);
  return batchNormOp.run1([x, runningMean, runningVar, tensorOrNull(weight), tensorOrNull(bias)],
    [num('batchNorm', 'eps', o.eps, 1e-5)]);
}

export interface BatchNormParams {
  runningMean: Tensor;
  runningVar: Tensor;
  weight?: Tensor | null;
  bias?: Tensor | null;
  eps?: number;
}

/**
 * Folds an eval-mode batch norm into the convolution (or linear layer) before it: returns the
 * weight and bias of one layer that computes bn(conv(x)).
 */
export function foldBatchNorm(weight: Tensor, bias: Tensor | null, bn: BatchNormParams): { weight: Tensor; bias: Tensor } {
  const b = optionsOf('foldBatchNorm', bn);
  const [w, bb] = foldBatchNormOp.run([
    weight, tensorOrNull(bias), b.runningMean as Tensor, b.runningVar as Tensor,
    tensorOrNull(b.weight), tensorOrNull(b.bias),
  ], [num('foldBatchNorm', 'eps', b.eps, 1e-5)]);
  return { weight: w, bias: bb };
}

// ---- position, pooling, layout ---------------------------------------------------------------

/** SecViT's 2-D RoPE (SPEC 3.3) on x [B, heads, L, d], L = height * width; angle [d/2]. */
export function rope2d(x: Tensor, angle: Tensor, options: { height: number; width: number }): Tensor {
  const o = optionsOf('rope2d', options, true);
  return rope2dOp.run1([x, angle], [num('rope2d', 'height', o.height), num('rope2d', 'width', o.width)]);
}

/** Mean over H and W: [B, C, H, W] -> [B, C, 1, 1] (F.adaptive_avg_pool2d(x, 1)). */
export function globalAvgPool2d(x: Tensor): Tensor {
  return poolOp.run1([x]);
}

/** x.reshape(shape): a view when x is contiguous, else a copy. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  return x.reshape(shape);
}

/** x.permute(dims): a view. */
export function permute(x: Tensor, dims: readonly number[]): Tensor {
  return x.permute(dims);
}

/** x packed row-major (or channels-last); x itself (as a new view) when already so. */
export function contiguous(x: Tensor, format: MemoryFormat = 'rowMajor'): Tensor {
  return x.contiguous(format);
}
