// Seeded random inputs for tests: the same seed gives the same data on every machine.
export { Rng } from '../../lib/nn/random.js';

/** ||out - ref|| / ||ref|| in double precision. */
export function relError(out: ArrayLike<number>, ref: ArrayLike<number>): number {
  if (out.length !== ref.length) throw new Error(`relError: lengths differ (${out.length} vs ${ref.length})`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = out[i] - ref[i];
    num += d * d;
    den += ref[i] * ref[i];
  }
  if (!Number.isFinite(num)) return Number.POSITIVE_INFINITY;
  return Math.sqrt(num) / Math.sqrt(den);
}
