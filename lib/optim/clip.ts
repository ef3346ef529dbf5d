// torch.nn.utils.clip_grad_norm_: the total 2-norm of the gradients, and every gradient scaled by
// maxNorm / (norm + 1e-6) when that is below 1 (in place: the gradients belong to their tensors).
import { defineOp } from '../ops/run.js';
import { Module } from '../nn/module.js';
import { Tensor } from '../tensor.js';

const sumSquaresOp = defineOp('sumSquares');
const addOp = defineOp('add');
const scaleOp = defineOp('scaleInPlace');

/**
 * Clips the gradients of `params` (a model's parameters, or tensors) to a total 2-norm of at
 * most `maxNorm`; resolves to the norm before clipping (NaN/Infinity when a gradient is not
 * finite, which then makes every gradient NaN, as PyTorch's default does).
 */
export async function clipGradNorm(params: Module | Tensor[], maxNorm: number): Promise<number> {
  if (typeof maxNorm !== 'number' || !(maxNorm > 0)) throw new RangeError(`clipGradNorm: maxNorm must be a positive number, got ${maxNorm}`);
  const list = params instanceof Module ? params.namedParameters().map(([, t]) => t) : params;
  if (!Array.isArray(list) || list.some((t) => !(t instanceof Tensor))) throw new TypeError('clipGradNorm: params must be a model or an array of Tensors');
  const grads = list.map((t) => t.grad).filter((g): g is Tensor => g !== null);
  if (grads.length === 0) return 0;
  // Per device: the sum of squares on the device, one read each.
  let total = 0;
  for (const device of new Set(grads.map((g) => g.device))) {
    let acc: Tensor | null = null;
    for (const g of grads.filter((x) => x.device === device)) {
      const s = sumSquaresOp.run1({ x: g });
      if (acc === null) acc = s;
      else {
        const next = addOp.run1({ a: acc, b: s });
        acc.dispose();
        s.dispose();
        acc = next;
      }
    }
    const v = (await acc!.data())[0];
    acc!.dispose();
    total += v;
  }
  const norm = Math.sqrt(total);
  const coef = maxNorm / (norm + 1e-6);
  if (!(coef >= 1)) for (const g of grads) for (const t of scaleOp.run({ x: g }, { scale: coef })) t.dispose();
  return norm;
}
