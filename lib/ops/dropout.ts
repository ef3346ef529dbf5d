// Training-time randomness: dropout and drop path (stochastic depth), from a counter-based
// generator (Philox, native/core/philox.h) so that every backend draws the same numbers for the
// same seed and the mask is recomputed, not stored, in the backward.
import { registerGradient } from '../autograd/graph.js';
import type { Tensor } from '../tensor.js';
import { defineOp } from './run.js';

const dropoutOp = defineOp('dropout');

// The generator's state: a seed, and the next unused counter.
let seed = 0x5ec17;
let counter = 0;

/** Seeds dropout and drop path (torch.manual_seed's role for them): the same seed, the same masks. */
export function manualSeed(s: number): void {
  if (!Number.isInteger(s) || s < 0 || s > Number.MAX_SAFE_INTEGER) throw new RangeError(`manualSeed: expected an integer in [0, 2^53), got ${s}`);
  seed = s;
  counter = 0;
}

/** The dropout/drop-path generator's state (a checkpoint's; restore with setRandomState). */
export function getRandomState(): { seed: number; counter: number } {
  return { seed, counter };
}

/** Restores a state from getRandomState: the masks continue exactly where they left off. */
export function setRandomState(state: { seed: number; counter: number }): void {
  const ok = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= Number.MAX_SAFE_INTEGER;
  if (typeof state !== 'object' || state === null || !ok(state.seed) || !ok(state.counter))
    throw new RangeError(`setRandomState: expected { seed, counter } of integers in [0, 2^53), got ${JSON.stringify(state)}`);
  seed = state.seed;
  counter = state.counter;
}

function draw(op: string, x: Tensor, p: number, perSample: boolean): Tensor {
  if (typeof p !== 'number' || !(p >= 0 && p < 1)) throw new RangeError(`${op}: p must be in [0, 1), got ${p}`);
  const n = perSample ? x.shape[0] ?? 0 : x.size;
  const offset = counter;
  counter += n;
  return dropoutOp.run1({ x }, { p, seed, offset, perSample });
}

/** F.dropout in training mode: each element zeroed with probability p, the rest scaled by 1 / (1 - p). */
export function dropout(x: Tensor, p: number): Tensor {
  return draw('dropout', x, p, false);
}

/**
 * Drop path (timm's stochastic depth) in training mode: each sample of the batch (dim 0) zeroed
 * with probability p, the rest scaled by 1 / (1 - p).
 */
export function dropPath(x: Tensor, p: number): Tensor {
  return draw('dropPath', x, p, true);
}

// A linear map: its gradient is the same mask applied to dy (same seed and counters).
registerGradient('dropout', {
  backward: ([dy], { attrs }) => ({
    x: dropoutOp.run1({ x: dy! }, { p: attrs.p, seed: attrs.seed, offset: attrs.offset, perSample: attrs.perSample }),
  }),
});
