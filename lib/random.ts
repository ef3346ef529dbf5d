// Seeded random tensors for tests, examples and benchmarks: the same seed gives the same values
// on every machine and device (drawn on the host by secvit's Rng, then placed), never all zeros.
import { Rng } from './nn/random.js';
import { encodeHalf } from './half.js';
import { tensor, type Tensor, type TensorOptions } from './tensor.js';

export interface RandomOptions extends Omit<TensorOptions, 'copy' | 'dtype'> {
  /** The values' seed. Without one: the next values of one process-wide generator (seeded 0 at load). */
  seed?: number;
  dtype?: 'float32' | 'bfloat16' | 'float16';
}

let shared = new Rng(0);

function draw(op: string, shape: readonly number[], options: RandomOptions, fill: (rng: Rng, out: Float32Array) => void): Tensor {
  if (typeof options !== 'object' || options === null) throw new TypeError(`${op}: options must be an object`);
  if (!Array.isArray(shape)) throw new TypeError(`${op}: shape must be an array of sizes, got ${typeof shape}`);
  const n = shape.reduce((a: number, d: unknown) => {
    if (typeof d !== 'number' || !Number.isInteger(d) || d < 0) throw new RangeError(`${op}: shape must hold non-negative integers, got [${shape.join(', ')}]`);
    return a * d;
  }, 1);
  if (!Number.isSafeInteger(n) || n > 2 ** 31) throw new RangeError(`${op}: shape [${shape.join(', ')}] has too many elements for a host-drawn tensor`);
  const { seed, dtype = 'float32', ...rest } = options;
  if (seed !== undefined && (typeof seed !== 'number' || !Number.isInteger(seed))) throw new TypeError(`${op}: seed must be an integer, got ${JSON.stringify(seed)}`);
  if (dtype !== 'float32' && dtype !== 'bfloat16' && dtype !== 'float16')
    throw new TypeError(`${op}: dtype must be 'float32', 'bfloat16' or 'float16', got ${JSON.stringify(dtype)}`);
  const values = new Float32Array(n);
  fill(seed === undefined ? shared : new Rng(seed), values);
  return tensor(dtype === 'float32' ? values : encodeHalf(values, dtype), shape, { ...rest, dtype });
}

/** A tensor of normal values, mean 0 and std 1 unless given (torch.randn with a seed). */
export function randn(shape: readonly number[], options: RandomOptions & { mean?: number; std?: number } = {}): Tensor {
  const { mean = 0, std = 1, ...rest } = options ?? {};
  if (typeof mean !== 'number' || !Number.isFinite(mean) || typeof std !== 'number' || !(std >= 0) || !Number.isFinite(std))
    throw new RangeError(`randn: mean must be finite and std finite and >= 0, got ${mean} and ${std}`);
  return draw('randn', shape, rest, (rng, out) => {
    for (let i = 0; i < out.length; i++) out[i] = mean + std * rng.normal();
  });
}

/** A tensor of uniform values in [low, high), default [0, 1) (torch.rand with a seed). */
export function rand(shape: readonly number[], options: RandomOptions & { low?: number; high?: number } = {}): Tensor {
  const { low = 0, high = 1, ...rest } = options ?? {};
  if (typeof low !== 'number' || typeof high !== 'number' || !Number.isFinite(low) || !Number.isFinite(high) || !(high > low))
    throw new RangeError(`rand: low and high must be finite with low < high, got ${low} and ${high}`);
  return draw('rand', shape, rest, (rng, out) => {
    for (let i = 0; i < out.length; i++) out[i] = low + (high - low) * rng.next();
  });
}

/** @internal Restarts the process-wide generator (tests). */
export function resetRandom(seed = 0): void {
  shared = new Rng(seed);
}
