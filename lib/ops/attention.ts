// SEC, window and global attention (SPEC sections 1-2).
//
// Convention: no d^-0.5 scale is applied inside these ops. Like the authors' model, pass keys
// that are already scaled (k * d^-0.5) when you want scaled dot-product attention.
import { registerGradient, type GradContext } from '../autograd/graph.js';
import type { Tensor } from '../tensor.js';
import { num, optionsOf, tensorOrNull } from './options.js';
import { defineOp, type Op } from './run.js';

const secOp = defineOp('secAttention');
const secUnfusedOp = defineOp('secAttentionUnfused');
const windowOp = defineOp('windowAttention');
const globalOp = defineOp('globalAttention');
const secBackwardOp = defineOp('secAttentionBackward');
const windowBackwardOp = defineOp('windowAttentionBackward');
const globalBackwardOp = defineOp('globalAttentionBackward');

// Gradients (FlashAttention-2 style, native/ops/attention.h): a recorded forward also returns
// each query's log-sum-exp (and SEC's order), kept with q, k, v and the output; the backward op
// recomputes the probabilities group by group. SEC's order is a constant, as in the authors'
// model (the argsort has no gradient).
function attentionGrads([dout]: readonly (Tensor | null)[], ctx: GradContext, run: (dout: Tensor) => Tensor[]): Record<string, Tensor | null> {
  if (dout === null) return { q: null, k: null, v: null };
  const [dq, dk, dv] = run(dout);
  const pick = (name: string, t: Tensor) => {
    if (ctx.needs[name]) return t;
    t.dispose();
    return null;
  };
  return { q: pick('q', dq), k: pick('k', dk), v: pick('v', dv) };
}

registerGradient('secAttention', {
  record: (attrs) => ({ attrs: { returnOrder: true, saveLse: true }, visible: attrs.returnOrder ? 2 : 1 }),
  save: { inputs: ['q', 'k', 'v'], outputs: [0, 1, 2] },
  backward: (dy, ctx) => attentionGrads(dy, ctx, (dout) => secBackwardOp.run({
    ...ctx.inputs, out: ctx.outputs[0], dout, lse: ctx.outputs[2], order: ctx.outputs[1],
  }, { clusters: ctx.attrs.clusters })),
});
registerGradient('windowAttention', {
  record: () => ({ attrs: { saveLse: true }, visible: 1 }),
  save: { inputs: ['q', 'k', 'v', 'bias'], outputs: [0, 1] },
  backward: ([dout], ctx) => {
    if (dout === null) return { q: null, k: null, v: null, bias: null };
    const bias = ctx.inputs.bias ?? null;
    const r = windowBackwardOp.run({
      q: ctx.inputs.q, k: ctx.inputs.k, v: ctx.inputs.v, out: ctx.outputs[0], dout, lse: ctx.outputs[1], bias,
    }, {
      height: ctx.attrs.height, width: ctx.attrs.width, windowH: ctx.attrs.windowH, windowW: ctx.attrs.windowW,
      shiftH: ctx.attrs.shiftH, shiftW: ctx.attrs.shiftW,
    });
    const pick = (name: string, t: Tensor | undefined) => {
      if (t === undefined) return null;
      if (ctx.needs[name]) return t;
      t.dispose();
      return null;
    };
    return { q: pick('q', r[0]), k: pick('k', r[1]), v: pick('v', r[2]), bias: pick('bias', r[3]) };
  },
});
registerGradient('globalAttention', {
  record: () => ({ attrs: { saveLse: true }, visible: 1 }),
  save: { inputs: ['q', 'k', 'v'], outputs: [0, 1] },
  backward: (dy, ctx) => attentionGrads(dy, ctx, (dout) => globalBackwardOp.run({
    ...ctx.inputs, out: ctx.outputs[0], dout, lse: ctx.outputs[1],
  })),
});

export interface SecAttentionOptions {
  /**
   * Number of clusters C. Each (image, head) sorts its tokens by cosine similarity to the mean
   * key and cuts the sorted list into C clusters of floor/ceil(L/C) tokens. C <= 1: one cluster
   * (global attention). C > L is a RangeError.
   */
  clusters: number;
  /** Also return the sorted token order, int32 [B, H, L]. */
  returnOrder?: boolean;
}

export interface SecAttentionResult {
  out: Tensor;
  order: Tensor;
}

export interface WindowAttentionOptions {
  /** Token grid: L = height * width, row-major. */
  height: number;
  width: number;
  /** Window size [wh, ww]; each at most the grid's size. The grid is padded to a multiple (padded keys masked). */
  window: readonly [number, number];
  /** Cyclic shift: true for half a window (Swin's shifted windows), or [sh, sw] smaller than the window. */
  shift?: boolean | readonly [number, number];
  /**
   * Swin's relative position bias, float32 [H, wh*ww, wh*ww] whatever q's dtype: added to
   * every window's logits, bias[h, i, j] for the query in window slot i and the key in slot j
   * (slot = row * ww + column inside the window). Differentiable (its gradient is float32).
   */
  bias?: Tensor | null;
}

function secArgs(op: string, options: SecAttentionOptions): [number, boolean] {
  const o = optionsOf(op, options, true);
  const clusters = num(op, 'clusters', o.clusters);
  if (!Number.isInteger(clusters)) throw new RangeError(`${op}: clusters must be an integer, got ${clusters}`);
  if (o.returnOrder !== undefined && typeof o.returnOrder !== 'boolean')
    throw new TypeError(`${op}: returnOrder must be a boolean, got ${typeof o.returnOrder}`);
  return [clusters, o.returnOrder === true];
}

type SecReturn<O> = O extends { returnOrder: true } ? SecAttentionResult : Tensor;

function sec(op: Op, q: Tensor, k: Tensor, v: Tensor, options: SecAttentionOptions, sync: boolean): Tensor | SecAttentionResult {
  const [clusters, returnOrder] = secArgs(op.name, options);
  const r = op.run({ q, k, v }, { clusters, returnOrder }, sync);
  return returnOrder ? { out: r[0], order: r[1] } : r[0];
}

/**
 * SEC attention: q, k, v [B, H, L, D] on one device, float32 or bfloat16/float16. Returns
 * [B, H, L, D] in the original token order, or `{ out, order }` with `returnOrder`. Queued on
 * the device; returns at once (reading the result waits for it).
 */
export function secAttention<O extends SecAttentionOptions>(q: Tensor, k: Tensor, v: Tensor, options: O): SecReturn<O> {
  return sec(secOp, q, k, v, options, false) as SecReturn<O>;
}

/** `secAttention`, run and waited for (errors of the kernel throw here). */
export function secAttentionSync<O extends SecAttentionOptions>(q: Tensor, k: Tensor, v: Tensor, options: O): SecReturn<O> {
  return sec(secOp, q, k, v, options, true) as SecReturn<O>;
}

/**
 * The unfused SEC sequence (scores, sort, gather, attention, scatter as separate passes with
 * materialized intermediates). Same result as `secAttention`; exists as a benchmark baseline.
 */
export function secAttentionUnfusedSync<O extends SecAttentionOptions>(q: Tensor, k: Tensor, v: Tensor, options: O): SecReturn<O> {
  return sec(secUnfusedOp, q, k, v, options, true) as SecReturn<O>;
}

function windowArgs(op: string, options: WindowAttentionOptions): Record<string, number> {
  const o = optionsOf(op, options, true);
  const height = num(op, 'height', o.height);
  const width = num(op, 'width', o.width);
  const win = o.window;
  if (!Array.isArray(win) || win.length !== 2 || win.some((x) => typeof x !== 'number'))
    throw new TypeError(`${op}: window must be [wh, ww], got ${JSON.stringify(win)}`);
  let shift: [number, number] = [0, 0];
  if (o.shift === true) shift = [Math.floor(win[0] / 2), Math.floor(win[1] / 2)];
  else if (Array.isArray(o.shift) && o.shift.length === 2) shift = [o.shift[0], o.shift[1]];
  else if (o.shift !== undefined && o.shift !== false)
    throw new TypeError(`${op}: shift must be a boolean or [sh, sw], got ${JSON.stringify(o.shift)}`);
  return { height, width, windowH: win[0], windowW: win[1], shiftH: shift[0], shiftW: shift[1] };
}

/** Swin-style window attention over a height x width token grid. q, k, v [B, H, L, D]. Queued. */
export function windowAttention(q: Tensor, k: Tensor, v: Tensor, options: WindowAttentionOptions): Tensor {
  return windowOp.run1({ q, k, v, bias: tensorOrNull(options?.bias) }, windowArgs('windowAttention', options));
}

/** `windowAttention`, run and waited for. */
export function windowAttentionSync(q: Tensor, k: Tensor, v: Tensor, options: WindowAttentionOptions): Tensor {
  return windowOp.run1({ q, k, v, bias: tensorOrNull(options?.bias) }, windowArgs('windowAttention', options), true);
}

/** Plain softmax attention over all L tokens. q, k, v [B, H, L, D]. Queued. */
export function globalAttention(q: Tensor, k: Tensor, v: Tensor): Tensor {
  return globalOp.run1({ q, k, v });
}

/** `globalAttention`, run and waited for. */
export function globalAttentionSync(q: Tensor, k: Tensor, v: Tensor): Tensor {
  return globalOp.run1({ q, k, v }, {}, true);
}
