// Losses, as torch.nn.functional's: crossEntropy (one fused log-softmax pass forward and
// backward; rules: native/ops/loss.h) and mseLoss (composed of differentiable ops).
import { registerGradient } from '../autograd/graph.js';
import { tensor, Tensor } from '../tensor.js';
import { num, optionsOf } from './options.js';
import { defineOp } from './run.js';

const ceOp = defineOp('crossEntropy');
const ceBackwardOp = defineOp('crossEntropyBackward');
const addOp = defineOp('add');
const mulOp = defineOp('mul');
const sumOp = defineOp('sum');

export type Reduction = 'mean' | 'sum' | 'none';
const REDUCTION: Record<Reduction, number> = { mean: 0, sum: 1, none: 2 };

function reduction(op: string, v: unknown): number {
  if (v === undefined) return 0;
  if (typeof v !== 'string' || !(v in REDUCTION)) throw new TypeError(`${op}: reduction must be 'mean', 'sum' or 'none', got ${JSON.stringify(v)}`);
  return REDUCTION[v as Reduction];
}

export interface CrossEntropyOptions {
  /** Target smoothing e in [0, 1]: q = (1 - e) target + e / C. Default 0. */
  labelSmoothing?: number;
  /** 'mean' (default; over the rows not ignored), 'sum', or 'none' ([B]). */
  reduction?: Reduction;
  /** Class-index targets equal to this count for nothing. Default -100 (PyTorch's). */
  ignoreIndex?: number;
}

/**
 * F.cross_entropy: logits [B, C]; target class indices (an int32 Tensor [B], an Int32Array or a
 * number[] of integers, put on the logits' device) or probabilities (a float Tensor [B, C] of the
 * logits' dtype: mixup, cutmix). Returns a scalar (mean, sum) or [B] (none). A class index
 * outside [0, C) that is not ignoreIndex fails when the loss is computed (read or awaited),
 * naming the row.
 */
export function crossEntropy(logits: Tensor, target: Tensor | Int32Array | readonly number[], options: CrossEntropyOptions = {}): Tensor {
  const op = 'crossEntropy';
  const o = optionsOf(op, options);
  if (!(logits instanceof Tensor)) throw new TypeError(`${op}: logits must be a Tensor [B, C]`);
  let t = target;
  let made: Tensor | null = null;
  if (!(t instanceof Tensor)) {
    if (!(t instanceof Int32Array) && !Array.isArray(t))
      throw new TypeError(`${op}: target must be a Tensor, an Int32Array or an array of class indices`);
    made = t = tensor(t instanceof Int32Array ? t : Int32Array.from(t as number[]), undefined, { device: logits.device });
  }
  if (t.dtype !== 'int32' && t.dtype !== logits.dtype)
    throw new TypeError(`${op}: target must be int32 class indices or probabilities of the logits' dtype (${logits.dtype}), got ${t.dtype}`);
  try {
    // The second output (the rows' log-sum-exps) is for the gradient: recorded calls keep it.
    const [loss, ...rest] = ceOp.run({ logits, target: t }, {
      labelSmoothing: num(op, 'labelSmoothing', o.labelSmoothing, 0), reduction: reduction(op, o.reduction),
      ignoreIndex: num(op, 'ignoreIndex', o.ignoreIndex, -100),
    });
    for (const r of rest) r.dispose();
    return loss;
  } finally {
    made?.dispose();
  }
}

registerGradient('crossEntropy', {
  nonDifferentiable: ['target'],
  record: () => ({ visible: 1 }),
  save: { inputs: ['logits', 'target'], outputs: [1] },
  backward: ([dy], { inputs, outputs, attrs }) => ({
    logits: ceBackwardOp.run1({ dloss: dy!, logits: inputs.logits!, target: inputs.target!, lse: outputs[1] }, {
      labelSmoothing: attrs.labelSmoothing, reduction: attrs.reduction, ignoreIndex: attrs.ignoreIndex,
    }),
  }),
});

/** F.mse_loss: (input - target)^2, reduced by 'mean' (default), 'sum' or 'none' (the elements). */
export function mseLoss(input: Tensor, target: Tensor, options: { reduction?: Reduction } = {}): Tensor {
  const op = 'mseLoss';
  const r = reduction(op, optionsOf(op, options).reduction);
  if (!(input instanceof Tensor) || !(target instanceof Tensor)) throw new TypeError(`${op}: input and target must be Tensors`);
  if (input.shape.length !== target.shape.length || input.shape.some((s, i) => s !== target.shape[i]))
    throw new RangeError(`${op}: target must have input's shape [${input.shape.join(', ')}], got [${target.shape.join(', ')}]`);
  const negated = mulOp.run1({ a: target }, { scalar: -1 });
  const diff = addOp.run1({ a: input, b: negated });
  negated.dispose();
  const sq = mulOp.run1({ a: diff, b: diff });
  diff.dispose();
  if (r === 2) return sq;
  const s = sumOp.run1({ x: sq });
  sq.dispose();
  if (r === 1) return s;
  const m = mulOp.run1({ a: s }, { scalar: 1 / Math.max(input.size, 1) });
  s.dispose();
  return m;
}
