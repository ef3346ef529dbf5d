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
import { isGradEnabled, registerGradient } from '../autograd/graph.js';
import { sumTo, type MemoryFormat, type Tensor } from '../tensor.js';
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
const activationBackwardOp = defineOp('activationBackward');
const linearBackwardOp = defineOp('linearEpilogueBackward');
const matmulOp = defineOp('matmul');
const sumOp = defineOp('sum');
const layerNormBackwardOp = defineOp('layerNormBackward');
const batchNormTrainOp = defineOp('batchNormTrain');
const batchNormBackwardOp = defineOp('batchNormBackward');
const im2colOp = defineOp('im2col');
const col2imOp = defineOp('col2im');
const depthwiseBackwardOp = defineOp('depthwiseConv2dBackward');
const transposeWeightOp = defineOp('conv2dTransposeWeight');
const padOp = defineOp('pad');

export type Activation = 'none' | 'gelu' | 'silu';
const ACT: Record<Activation, number> = { none: 0, gelu: 1, silu: 2 };

function activation(op: string, v: unknown): number {
  if (v === undefined) return 0;
  // Own keys only: `in` also finds the prototype's ('toString' passed and failed later).
  if (typeof v !== 'string' || !Object.hasOwn(ACT, v)) throw new TypeError(`${op}: activation must be 'none', 'gelu' or 'silu', got ${JSON.stringify(v)}`);
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

function convAttrs(op: string, opts: Record<string, unknown>, act: number): Record<string, number> {
  const [strideH, strideW] = pair(op, 'stride', opts.stride, 1);
  const [padH, padW] = pair(op, 'padding', opts.padding, 0);
  const [dilationH, dilationW] = pair(op, 'dilation', opts.dilation, 1);
  return { strideH, strideW, padH, padW, dilationH, dilationW, groups: num(op, 'groups', opts.groups, 1), act };
}

/**
 * 2-D convolution, F.conv2d: x [B, C, H, W], weight [O, C/groups, kh, kw], bias [O] or null.
 * Returns [B, O, OH, OW] (channels-last in memory).
 */
export function conv2d(x: Tensor, weight: Tensor, bias: Tensor | null = null, options: Conv2dOptions = {}): Tensor {
  const opts = optionsOf('conv2d', options);
  return conv2dOp.run1({ x, weight, bias: tensorOrNull(bias) }, convAttrs('conv2d', opts, 0));
}

/**
 * conv2d with a per-channel scale, the activation and the residual add fused into the same pass.
 * While gradients are recorded a convolution with an activation runs as the convolution, the
 * activation and the add (the activation's gradient needs its input, which the fused pass does
 * not keep).
 */
export function fusedConv2d(x: Tensor, weight: Tensor, bias: Tensor | null, options: FusedConv2dOptions = {}): Tensor {
  const opts = optionsOf('fusedConv2d', options);
  const act = activation('fusedConv2d', opts.activation);
  const residual = tensorOrNull(opts.residual);
  const attrs = convAttrs('fusedConv2d', opts, act);
  const inputs = { x, weight, bias: tensorOrNull(bias), scale: tensorOrNull(opts.scale) };
  if (act !== 0 && isGradEnabled() && [x, weight, bias, opts.scale, residual].some((t) => (t as Tensor | null)?.requiresGrad)) {
    const z = conv2dOp.run1(inputs, { ...attrs, act: 0 });
    const h = (act === 1 ? geluOp : siluOp).run1({ x: z });
    z.dispose();
    if (residual === null) return h;
    const y = addOp.run1({ a: h, b: residual });
    h.dispose();
    return y;
  }
  return conv2dOp.run1({ ...inputs, residual }, attrs);
}

/** acc + t with both consumed (t itself when acc is null): a running sum of fresh tensors. */
function addConsuming(acc: Tensor | null, t: Tensor): Tensor {
  if (acc === null) return t;
  const sum = addOp.run1({ a: acc, b: t });
  acc.dispose();
  t.dispose();
  return sum;
}

/** Pieces of `size` along `dim`, side by side (a piece alone is returned as it is); the pieces are consumed. */
function stack(parts: Tensor[], dim: number, size: number): Tensor {
  if (parts.length === 1) return parts[0];
  const total = size * parts.length;
  let acc: Tensor | null = null;
  parts.forEach((pt, i) => {
    const padded = padOp.run1({ x: pt }, { dim, before: i * size, after: total - (i + 1) * size });
    pt.dispose();
    acc = addConsuming(acc, padded);
  });
  return acc!;
}

// Batches of images whose im2col rows stay under this many floats (32 MiB) per step.
const IM2COL_CHUNK = 1 << 23;

// The gradient of conv2d: y = residual + scale * conv(x, W) + bias (the activation is recorded
// separately, see fusedConv2d). dbias, dscale: sums over the pixels; dconv = scale * dy; then by
// kind: depthwise: one op for both gradients; 1x1: two GEMMs over pixel rows; dense stride 1
// (groups 1): dx is the convolution of dconv with the transposed, reversed weight (the forward
// kernels, Winograd included), dW = dconv_rows^T im2col(x); otherwise dx = col2im(dconv_rows W)
// per group. im2col rows are made a batch of images at a time (IM2COL_CHUNK).
registerGradient('conv2d', {
  save: (attrs, needs) => ({ inputs: [...(needs.weight || needs.scale ? ['x'] : []), 'weight', 'scale'] }),
  backward: ([dy], { inputs, needs, attrs, shapes }) => {
    if (attrs.act !== 0) throw new Error('backward: conv2d with a fused activation has no gradient of its own; fusedConv2d records the activation separately');
    const g = dy!;
    const [b, c, h, w] = shapes.x!;
    const [o, cg, kh, kw] = shapes.weight!;
    const [, , oh, ow] = g.shape;
    const groups = attrs.groups;
    const geo = {
      strideH: attrs.strideH, strideW: attrs.strideW, padH: attrs.padH, padW: attrs.padW,
      dilationH: attrs.dilationH, dilationW: attrs.dilationW,
    };
    const made: Tensor[] = [];
    const own = <T extends Tensor>(t: T): T => (made.push(t), t);
    const channelSum = (t: Tensor) => sumOp.run1({ x: t }, { dims: 0b1101 });
    const dbias = needs.bias ? channelSum(g) : null;
    let dscale: Tensor | null = null;
    let gs = g;
    if (inputs.scale) {
      if (needs.scale) {
        const raw = own(conv2dOp.run1({ x: inputs.x!, weight: inputs.weight! }, { ...geo, groups }));
        dscale = channelSum(own(mulOp.run1({ a: g, b: raw })));
      }
      gs = own(mulOp.run1({ a: g, b: own(inputs.scale.reshape([1, o, 1, 1])) }));
    }
    const depthwise = groups === c && o === c && cg === 1;
    let dx: Tensor | null = null;
    let dw: Tensor | null = null;
    if (depthwise) {
      const [ddx, ddw] = depthwiseBackwardOp.run({ dy: gs, x: inputs.x ?? gs, weight: inputs.weight! },
        { ...geo, needInput: needs.x, needWeight: needs.weight });
      if (needs.x) dx = ddx;
      else made.push(ddx);
      if (needs.weight) dw = ddw;
      else made.push(ddw);
    } else {
      const m = b * oh * ow;
      const rows = own(gs.permute([0, 2, 3, 1]).reshape([m, o]));  // dconv as pixel rows [M, O]
      const pointwise = kh === 1 && kw === 1 && groups === 1 && attrs.strideH === 1 && attrs.strideW === 1 && attrs.padH === 0 && attrs.padW === 0;
      if (pointwise) {
        const w2 = own(inputs.weight!.reshape([o, c]));
        if (needs.x) dx = own(own(matmulOp.run1({ a: rows, b: w2 })).reshape([b, h, w, c])).permute([0, 3, 1, 2]);
        if (needs.weight) {
          const xr = own(inputs.x!.permute([0, 2, 3, 1]).reshape([m, c]));
          dw = own(matmulOp.run1({ a: own(rows.transpose(0, 1)), b: xr })).reshape([o, c, 1, 1]);
        }
      } else {
        const og = o / groups;
        const kk = kh * kw * cg;
        if (needs.x) {
          if (groups === 1 && attrs.strideH === 1 && attrs.strideW === 1 &&
            attrs.dilationH * (kh - 1) >= attrs.padH && attrs.dilationW * (kw - 1) >= attrs.padW) {
            dx = conv2dOp.run1({ x: gs, weight: own(transposeWeightOp.run1({ weight: inputs.weight! })) }, {
              padH: attrs.dilationH * (kh - 1) - attrs.padH, padW: attrs.dilationW * (kw - 1) - attrs.padW,
              dilationH: attrs.dilationH, dilationW: attrs.dilationW,
            });
          } else {
            const parts: Tensor[] = [];
            for (let gi = 0; gi < groups; gi++) {
              const rg = groups === 1 ? rows : own(rows.narrow(1, gi * og, og));
              // W as [og, kk] in (ky, kx, c) order: the weight [og, cg, kh, kw] permuted.
              const wg = own(own(own(inputs.weight!.narrow(0, gi * og, og)).permute([0, 2, 3, 1])).reshape([og, kk]));
              const cols = own(matmulOp.run1({ a: rg, b: wg }));
              parts.push(col2imOp.run1({ cols }, { ...geo, batch: b, channels: cg, height: h, width: w, kh, kw }));
            }
            dx = stack(parts, 1, cg);
          }
        }
        if (needs.weight) {
          const per = Math.max(1, Math.floor(IM2COL_CHUNK / Math.max(1, oh * ow * kk)));
          const parts: Tensor[] = [];
          for (let gi = 0; gi < groups; gi++) {
            let acc: Tensor | null = null;
            for (let b0 = 0; b0 < b; b0 += per) {
              const nb = Math.min(per, b - b0);
              let xs = own(inputs.x!.narrow(0, b0, nb));
              if (groups > 1) xs = own(xs.narrow(1, gi * cg, cg));
              const cols = own(im2colOp.run1({ x: xs }, { ...geo, kh, kw }));
              let rg = own(rows.narrow(0, b0 * oh * ow, nb * oh * ow));
              if (groups > 1) rg = own(rg.narrow(1, gi * og, og));
              acc = addConsuming(acc, matmulOp.run1({ a: own(rg.transpose(0, 1)), b: cols }));  // [og, kk]
            }
            // [og, kk] in (ky, kx, c) order -> [og, cg, kh, kw].
            parts.push(own(own(own(acc!).reshape([og, kh, kw, cg])).permute([0, 3, 1, 2])).contiguous());
          }
          dw = stack(parts, 0, og);
        }
      }
    }
    for (const t of made) t.dispose();
    return { x: dx, weight: dw, bias: dbias, scale: dscale, residual: needs.residual ? g : null };
  },
});

// ---- linear ----------------------------------------------------------------------------------

/** F.linear: x [..., in] times weight [out, in]^T plus bias [out]. */
export function linear(x: Tensor, weight: Tensor, bias: Tensor | null = null): Tensor {
  return linearOp.run1({ x, weight, bias: tensorOrNull(bias) });
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
  return linearOp.run1({
    x, weight, bias: tensorOrNull(bias), residual: tensorOrNull(o.residual), scale: tensorOrNull(o.scale),
    lnWeight: norm ? tensorOrNull(norm.weight) : null, lnBias: norm ? tensorOrNull(norm.bias) : null,
    add: tensorOrNull(o.add), ropeAngle: rope ? (rope.angle as Tensor) : null,
  }, {
    act: activation(op, o.activation), layerNorm: norm !== null, lnEps: norm ? num(op, 'norm.eps', norm.eps, 1e-6) : undefined,
    ropeHeads: rope ? num(op, 'rope.heads', rope.heads, 0) : undefined, ropeHeight: rope ? num(op, 'rope.height', rope.height, 0) : undefined,
    ropeWidth: rope ? num(op, 'rope.width', rope.width, 0) : undefined, kScale: rope ? num(op, 'rope.kScale', rope.kScale, 1) : undefined,
  });
}

// The gradient of linear and fusedLinear. Forward, per row: s = x + add, A' = LN(s), z = A' W^T +
// bias, y = residual + scale * rope(act(z)). Backward: the epilogue's gradient in one pass
// (linearEpilogueBackward: dz = act'(z) rope^T(scale dy), dbias, dscale; skipped when the
// epilogue is only a bias), then dW = dz^T A' and dA' = dz W as GEMMs on transposed views, then
// LayerNorm's gradient (A' is formed again from the saved x, add and LayerNorm parameters: cheap
// next to the GEMMs, and it saves keeping a second activation). z itself is kept from the
// forward (its savePre output) when the activation or the scale's gradient needs it.
registerGradient('linear', {
  record: (attrs, needs) => ({ attrs: { savePre: attrs.act !== 0 || needs.scale }, visible: 1 }),
  save: (attrs, needs) => ({
    inputs: [
      ...(needs.weight || attrs.layerNorm ? ['x', 'add'] : []),
      ...(attrs.layerNorm ? ['lnWeight', 'lnBias'] : []),
      ...(needs.x || needs.add || needs.lnWeight || needs.lnBias ? ['weight'] : []),
      'scale', 'ropeAngle',
    ],
    outputs: attrs.savePre ? [1] : [],
  }),
  backward: ([dy], { inputs, outputs, needs, attrs, shapes }) => {
    const g = dy!;
    const n = g.shape[g.shape.length - 1];
    const m = g.size / Math.max(n, 1);
    const xs = shapes.x!;
    const k = xs[xs.length - 1];
    const trivial = attrs.act === 0 && inputs.scale === null && attrs.ropeHeads === 0;
    const made: Tensor[] = [];
    const own = (t: Tensor): Tensor => (made.push(t), t);
    let dz: Tensor;
    let dbias: Tensor | null = null;
    let dscale: Tensor | null = null;
    if (trivial) {
      dz = own(g.reshape([m, n]));
      if (needs.bias) dbias = sumOp.run1({ x: dz }, { dims: 1 });
    } else {
      const [z, db, ds] = linearBackwardOp.run({
        dy: g, pre: outputs[1] ?? null, scale: inputs.scale, ropeAngle: inputs.ropeAngle,
      }, {
        act: attrs.act, ropeHeads: attrs.ropeHeads, ropeHeight: attrs.ropeHeight, ropeWidth: attrs.ropeWidth,
        kScale: attrs.kScale, needScale: needs.scale, needBias: needs.bias,
      });
      dz = own(z);
      if (needs.bias) dbias = db;
      else made.push(db);
      if (needs.scale) dscale = ds;
      else made.push(ds);
    }
    // A' = LN(x + add), or x, as [m, k].
    let s: Tensor | null = null;
    const formS = (): Tensor => {
      if (s) return s;
      const x2 = own(inputs.x!.reshape([m, k]));
      s = inputs.add ? own(addOp.run1({ a: x2, b: own(inputs.add.reshape([m, k])) })) : x2;
      return s;
    };
    let dw: Tensor | null = null;
    if (needs.weight) {
      const sx = formS();
      const ap = attrs.layerNorm
        ? own(layerNormOp.run1({ x: sx, weight: inputs.lnWeight, bias: inputs.lnBias }, { eps: attrs.lnEps }))
        : sx;
      const dzt = own(dz.transpose(0, 1));
      const w = matmulOp.run1({ a: dzt, b: ap });
      dw = shapes.weight!.length === 2 ? w : own(w).reshape(shapes.weight!);
    }
    let dx: Tensor | null = null;
    let dadd: Tensor | null = null;
    let dlnW: Tensor | null = null;
    let dlnB: Tensor | null = null;
    if (needs.x || needs.add || needs.lnWeight || needs.lnBias) {
      const w2 = own(inputs.weight!.reshape([n, k]));
      let ds = matmulOp.run1({ a: dz, b: w2 });
      if (attrs.layerNorm) {
        const [d, dwl, dbl] = layerNormBackwardOp.run({ dy: own(ds), x: formS(), weight: inputs.lnWeight }, {
          eps: attrs.lnEps, needWeight: needs.lnWeight, needBias: needs.lnBias,
        });
        ds = d;
        if (needs.lnWeight) dlnW = dwl;
        else made.push(dwl);
        if (needs.lnBias) dlnB = dbl;
        else made.push(dbl);
      }
      if (needs.x) dx = ds.reshape(xs);
      if (needs.add) dadd = ds.reshape(shapes.add!);
      made.push(ds);
    }
    for (const t of made) t.dispose();
    return { x: dx, add: dadd, weight: dw, bias: dbias, scale: dscale, lnWeight: dlnW, lnBias: dlnB, residual: needs.residual ? g : null };
  },
});

// ---- element-wise ----------------------------------------------------------------------------

/** GELU, exact erf form (F.gelu with approximate='none'). */
export function gelu(x: Tensor): Tensor {
  return geluOp.run1({ x });
}

/** SiLU / swish: x * sigmoid(x) (F.silu). */
export function silu(x: Tensor): Tensor {
  return siluOp.run1({ x });
}
/** SiLU under its other name. */
export const swish = silu;

function binary(op: typeof addOp, a: Tensor, b: Tensor | number): Tensor {
  if (typeof b === 'number') return op.run1({ a }, { scalar: b });
  return op.run1({ a, b });
}

/** dy * act'(x): the gradient of gelu (act 'gelu') and silu ('silu') at x. */
export function activationBackward(dy: Tensor, x: Tensor, act: Exclude<Activation, 'none'>): Tensor {
  return activationBackwardOp.run1({ dy, x }, { act: activation('activationBackward', act) });
}

for (const [name, act] of [['gelu', 1], ['silu', 2]] as const) {
  registerGradient(name, {
    save: { inputs: ['x'] },
    backward: ([dy], { inputs }) => ({ x: activationBackwardOp.run1({ dy: dy!, x: inputs.x! }, { act }) }),
  });
}

/** a + b with broadcasting (torch.add); b may be a number. */
export function add(a: Tensor, b: Tensor | number): Tensor {
  return binary(addOp, a, b);
}

/** a * b with broadcasting (torch.mul); b may be a number. Layer scale: mul(x, gamma [1, C, 1, 1]). */
export function mul(a: Tensor, b: Tensor | number): Tensor {
  return binary(mulOp, a, b);
}

// Broadcasting's gradient: each operand gets the output's gradient summed back to its shape.
registerGradient('add', {
  backward: ([dy], { needs, shapes }) => ({
    a: needs.a ? sumTo(dy!, shapes.a!) : null,
    b: needs.b ? sumTo(dy!, shapes.b!) : null,
  }),
});
registerGradient('mul', {
  save: { inputs: ['a', 'b'] },
  backward: ([dy], { needs, shapes, inputs, attrs }) => {
    const g = dy!;
    const part = (other: Tensor | null, shape: readonly number[]): Tensor => {
      if (other === null) return mulOp.run1({ a: g }, { scalar: attrs.scalar });
      const full = mulOp.run1({ a: g, b: other });
      const s = sumTo(full, shape);
      if (s !== full) full.dispose();
      return s;
    };
    return {
      a: needs.a ? part(inputs.b, shapes.a!) : null,
      b: needs.b ? part(inputs.a, shapes.b!) : null,
    };
  },
});

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
  return layerNormOp.run1({ x, weight: tensorOrNull(weight), bias: tensorOrNull(bias) },
    { dim: num('layerNorm', 'dim', o.dim, -1), eps: num('layerNorm', 'eps', o.eps, 1e-5) });
}

registerGradient('layerNorm', {
  save: { inputs: ['x', 'weight'] },
  backward: ([dy], { inputs, needs, attrs }) => {
    const [dx, dw, db] = layerNormBackwardOp.run({ dy: dy!, x: inputs.x!, weight: inputs.weight },
      { dim: attrs.dim, eps: attrs.eps, needWeight: needs.weight, needBias: needs.bias });
    return normGrads(needs, dx, dw, db);
  },
});

export interface BatchNormOptions {
  /** Default 1e-5. */
  eps?: number;
  /**
   * Default false: normalise with the running statistics (eval mode). True: with the batch's
   * statistics (F.batch_norm(training=True)), updating the running statistics in place when
   * they are given (float32; momentum as PyTorch's, unbiased variance for the running estimate).
   */
  training?: boolean;
  /** Default 0.1. */
  momentum?: number;
  /** Applied to the normalised output in the same pass (training only). Default 'none'. */
  activation?: Activation;
}

/**
 * Batch norm over dim 1, as F.batch_norm(x, runningMean, runningVar, weight, bias, training).
 * Eval mode needs the running statistics; training mode uses the batch's and updates the running
 * ones (when given) in place.
 */
export function batchNorm(
  x: Tensor, runningMean: Tensor | null, runningVar: Tensor | null, weight: Tensor | null = null, bias: Tensor | null = null,
  options: BatchNormOptions = {},
): Tensor {
  const op = 'batchNorm';
  const o = optionsOf(op, options);
  if (o.training !== undefined && typeof o.training !== 'boolean') throw new TypeError(`${op}: training must be a boolean`);
  const eps = num(op, 'eps', o.eps, 1e-5);
  if (o.training === true) {
    const outs = batchNormTrainOp.run({
      x, weight: tensorOrNull(weight), bias: tensorOrNull(bias), runningMean: tensorOrNull(runningMean), runningVar: tensorOrNull(runningVar),
    }, { eps, momentum: num(op, 'momentum', o.momentum, 0.1), act: activation(op, o.activation) });
    for (const t of outs.slice(1)) t.dispose();
    return outs[0];
  }
  if (o.activation !== undefined && o.activation !== 'none') throw new RangeError(`${op}: activation is for training mode only`);
  if (runningMean === null || runningVar === null) throw new TypeError(`${op}: eval mode needs runningMean and runningVar`);
  return batchNormOp.run1({ x, mean: runningMean, var: runningVar, weight: tensorOrNull(weight), bias: tensorOrNull(bias) }, { eps });
}

// Eval mode: the statistics are constants.
registerGradient('batchNorm', {
  nonDifferentiable: ['mean', 'var'],
  save: { inputs: ['x', 'mean', 'var', 'weight'] },
  backward: ([dy], { inputs, needs, attrs }) => {
    const [dx, dw, db] = batchNormBackwardOp.run({ dy: dy!, x: inputs.x!, mean: inputs.mean!, var: inputs.var!, weight: inputs.weight },
      { eps: attrs.eps, act: 0, training: false });
    return normGrads(needs, dx, dw, db);
  },
});

// Training mode: the batch statistics (hidden outputs 1, 2) are functions of x.
registerGradient('batchNormTrain', {
  nonDifferentiable: ['runningMean', 'runningVar'],
  record: () => ({ visible: 1 }),
  save: { inputs: ['x', 'weight', 'bias'], outputs: [1, 2] },
  backward: ([dy], { inputs, outputs, needs, attrs }) => {
    const [dx, dw, db] = batchNormBackwardOp.run({
      dy: dy!, x: inputs.x!, mean: outputs[1], var: outputs[2], weight: inputs.weight, bias: attrs.act !== 0 ? inputs.bias : null,
    }, { eps: attrs.eps, act: attrs.act, training: true });
    return normGrads(needs, dx, dw, db);
  },
});

/** A norm backward op's (dx, dweight, dbias): the ones not needed are disposed. */
function normGrads(needs: Readonly<Record<string, boolean>>, dx: Tensor, dw: Tensor, db: Tensor): Record<string, Tensor | null> {
  if (!needs.x) dx.dispose();
  if (!needs.weight) dw.dispose();
  if (!needs.bias) db.dispose();
  return { x: needs.x ? dx : null, weight: needs.weight ? dw : null, bias: needs.bias ? db : null };
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
  const [w, bb] = foldBatchNormOp.run({
    weight, bias: tensorOrNull(bias), mean: b.runningMean as Tensor, var: b.runningVar as Tensor,
    gamma: tensorOrNull(b.weight), beta: tensorOrNull(b.bias),
  }, { eps: num('foldBatchNorm', 'eps', b.eps, 1e-5) });
  return { weight: w, bias: bb };
}

// ---- position, pooling, layout ---------------------------------------------------------------

/** SecViT's 2-D RoPE (SPEC 3.3) on x [B, heads, L, d], L = height * width; angle [d/2]. */
export function rope2d(x: Tensor, angle: Tensor, options: { height: number; width: number }): Tensor {
  const o = optionsOf('rope2d', options, true);
  return rope2dOp.run1({ x, angle }, { height: num('rope2d', 'height', o.height), width: num('rope2d', 'width', o.width) });
}

/** Mean over H and W: [B, C, H, W] -> [B, C, 1, 1] (F.adaptive_avg_pool2d(x, 1)). */
export function globalAvgPool2d(x: Tensor): Tensor {
  return poolOp.run1({ x });
}

// A rotation's transpose is the rotation by minus the angle; the angle table has no gradient.
registerGradient('rope2d', {
  nonDifferentiable: ['angle'],
  save: { inputs: ['angle'] },
  backward: ([dy], { inputs, attrs }) => {
    const neg = mulOp.run1({ a: inputs.angle! }, { scalar: -1 });
    const dx = rope2dOp.run1({ x: dy!, angle: neg }, { height: attrs.height, width: attrs.width });
    neg.dispose();
    return { x: dx };
  },
});

// Every pixel of a channel gets dy / (H W).
registerGradient('globalAvgPool2d', {
  backward: ([dy], { shapes }) => {
    const [, , h, w] = shapes.x!;
    const e = dy!.expand(shapes.x!);
    const dx = mulOp.run1({ a: e }, { scalar: 1 / (h * w) });
    e.dispose();
    return { x: dx };
  },
});

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
