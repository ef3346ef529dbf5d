// Reductions (rules: native/ops/reduce.h) and zero padding, as torch.sum / torch.mean / F.pad.
import { registerGradient } from '../autograd/graph.js';
import type { Tensor } from '../tensor.js';
import { optionsOf } from './options.js';
import { defineOp } from './run.js';

const sumOp = defineOp('sum');
const mulOp = defineOp('mul');
const padOp = defineOp('pad');

/** The bit mask of `dims` (negative dims count from the end; none: every dim). */
function dimMask(op: string, x: Tensor, dims: number | readonly number[] | undefined): number {
  if (dims === undefined) return 0;
  const list = typeof dims === 'number' ? [dims] : dims;
  if (!Array.isArray(list)) throw new TypeError(`${op}: dim must be a number or an array of numbers`);
  const rank = x.shape.length;
  let mask = 0;
  for (const d of list) {
    if (!Number.isInteger(d) || d < -rank || d >= rank) throw new RangeError(`${op}: dim ${d} is out of range for rank ${rank}`);
    const n = d < 0 ? d + rank : d;
    if (mask & (1 << n)) throw new RangeError(`${op}: dim ${d} is named twice`);
    mask |= 1 << n;
  }
  return mask;
}

function keepOption(op: string, options: unknown): boolean {
  const o = optionsOf(op, options);
  if (o.keepDim !== undefined && typeof o.keepDim !== 'boolean') throw new TypeError(`${op}: keepDim must be a boolean`);
  return o.keepDim === true;
}

/** Sum over `dim` (a dim, a list, or every dim when absent), as torch.sum(x, dim, keepdim). */
export function sum(x: Tensor, dim?: number | readonly number[], options: { keepDim?: boolean } = {}): Tensor {
  return sumOp.run1({ x }, { dims: dimMask('sum', x, dim), keepDim: keepOption('sum', options) });
}

/** Mean over `dim` (every dim when absent), as torch.mean. */
export function mean(x: Tensor, dim?: number | readonly number[], options: { keepDim?: boolean } = {}): Tensor {
  const mask = dimMask('mean', x, dim);
  let n = 1;
  x.shape.forEach((s, i) => {
    if (mask === 0 || mask & (1 << i)) n *= s;
  });
  const s = sumOp.run1({ x }, { dims: mask, keepDim: keepOption('mean', options) });
  const m = mulOp.run1({ a: s }, { scalar: 1 / n });
  s.dispose();
  return m;
}

registerGradient('sum', {
  backward: ([dy], { attrs, shapes }) => {
    const shape = shapes.x!;
    const mask = attrs.dims === 0 ? (1 << shape.length) - 1 : attrs.dims;
    // dy with the reduced dims as size 1, then expanded (a free view) to x's shape.
    const kept = shape.map((s, i) => (mask & (1 << i) ? 1 : s));
    const r = dy!.reshape(kept);
    const e = r.expand(shape);
    r.dispose();
    return { x: e };
  },
});

/** x with `before` zeros in front and `after` behind along `dim` (F.pad on one dim). */
export function pad(x: Tensor, dim: number, before: number, after = 0): Tensor {
  return padOp.run1({ x }, { dim, before, after });
}

registerGradient('pad', {
  backward: ([dy], { attrs, shapes }) => {
    const rank = shapes.x!.length;
    const d = attrs.dim < 0 ? attrs.dim + rank : attrs.dim;
    return { x: dy!.narrow(d, attrs.before, shapes.x![d]) };
  },
});
