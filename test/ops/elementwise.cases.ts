// gelu, silu, add, mul (broadcasting) against their definitions in double. fp32: the
// vectorised erf (abs. error <= 7.5e-8) and exp (rel. ~2e-7); the grid test in numerics.test.ts bounds GELU pointwise.
// 16-bit: the output's rounding.
import { add, gelu, mul, silu, type Tensor } from '../../lib/index.js';
import { withSpecials, type OpCase } from '../helpers/op-cases.js';
import { broadcastRef, geluRef, siluRef } from '../reference/layers.js';

// Seen (cpu, both SIMD paths, and cuda-emu): fp32 <= 4.6e-8, bf16 <= 2.8e-3, fp16 <= 3.5e-4 (the
// output's rounding); the bounds sit about 2x (16-bit) and 6x (fp32) above (fp32 was 2e-6).
const HALF = { float32: 3e-7, bfloat16: 5e-3, float16: 7e-4 };
const cl = (t: Tensor) => t.contiguous('channelsLast');
// Normals times 4, then the tails: where erf and exp saturate, overflow or meet NaN/infinities.
const EXTREMES = [-90, -30, -12, -9, -5.5, 5.5, 9, 12, 30, 90, 1e4, -1e4, NaN, Infinity, -Infinity];
const wide = withSpecials(Object.fromEntries(EXTREMES.map((v, i) => [i * 17, v])), 4);

export const cases: OpCase[] = [
  { name: 'gelu: normals x 4, +-90, +-1e4, NaN, +-infinity', inputs: { x: { shape: [3, 257], values: wide } }, run: (t) => gelu(t.x), ref: (v) => Array.from(v.x, geluRef), tol: HALF },
  { name: 'gelu keeps a channels-last layout', inputs: { x: { shape: [2, 5, 3, 4], view: cl } }, run: (t) => gelu(t.x), ref: (v) => Array.from(v.x, geluRef), tol: HALF },
  { name: 'silu: normals x 4, +-90, +-1e4, NaN, +-infinity', inputs: { x: { shape: [1001], values: wide } }, run: (t) => silu(t.x), ref: (v) => Array.from(v.x, siluRef), tol: HALF },
  {
    name: 'silu of a transposed view', inputs: { x: { shape: [7, 9], view: (t) => t.transpose(0, 1) } },
    run: (t) => silu(t.x),
    ref: (v) => { const o: number[] = []; for (let j = 0; j < 9; j++) for (let i = 0; i < 7; i++) o.push(siluRef(v.x[i * 9 + j])); return o; },
    tol: HALF,
  },
  { name: 'add, same shapes', inputs: { a: { shape: [4, 33] }, b: { shape: [4, 33] } }, run: (t) => add(t.a, t.b), ref: (v) => broadcastRef(v.a, [4, 33], v.b, [4, 33], (x, y) => x + y).y, tol: HALF },
  { name: 'add, [2,3,4] + [3,1]', inputs: { a: { shape: [2, 3, 4] }, b: { shape: [3, 1] } }, run: (t) => add(t.a, t.b), ref: (v) => broadcastRef(v.a, [2, 3, 4], v.b, [3, 1], (x, y) => x + y).y, tol: HALF, shapes: [[2, 3, 4]] },
  { name: 'add, [5,1] + [1,6] (both broadcast)', inputs: { a: { shape: [5, 1] }, b: { shape: [1, 6] } }, run: (t) => add(t.a, t.b), ref: (v) => broadcastRef(v.a, [5, 1], v.b, [1, 6], (x, y) => x + y).y, tol: HALF, shapes: [[5, 6]] },
  { name: 'add a scalar', inputs: { a: { shape: [3, 7] } }, run: (t) => add(t.a, 0.75), ref: (v) => broadcastRef(v.a, [3, 7], 0.75, [], (x, y) => x + y).y, tol: HALF },
  {
    name: 'mul by a per-channel scale on a channels-last tensor (layer scale)',
    inputs: { a: { shape: [2, 6, 3, 5], view: cl }, g: { shape: [1, 6, 1, 1] } },
    run: (t) => mul(t.a, t.g), ref: (v) => broadcastRef(v.a, [2, 6, 3, 5], v.g, [1, 6, 1, 1], (x, y) => x * y).y, tol: HALF,
  },
  { name: 'mul, channels-last times NCHW', inputs: { a: { shape: [1, 4, 3, 3], view: cl }, b: { shape: [1, 4, 3, 3] } }, run: (t) => mul(t.a, t.b), ref: (v) => broadcastRef(v.a, [1, 4, 3, 3], v.b, [1, 4, 3, 3], (x, y) => x * y).y, tol: HALF },
  { name: 'mul by a scalar keeps a 1-d shape', inputs: { a: { shape: [6] } }, run: (t) => mul(t.a, -2.5), ref: (v) => Array.from(v.a, (x) => x * -2.5), tol: HALF, shapes: [[6]] },
  {
    // inf - inf and inf * 0 give NaN; NaN propagates; broadcast b spreads its infinity over a row.
    name: 'add and mul with NaN and infinities, [3, 5] op [3, 1]',
    inputs: { a: { shape: [3, 5], values: withSpecials({ 0: Infinity, 6: NaN, 12: -Infinity }) }, b: { shape: [3, 1], values: withSpecials({ 0: -Infinity, 2: 0 }) } },
    run: (t) => [add(t.a, t.b), mul(t.a, t.b)],
    ref: (v) => [broadcastRef(v.a, [3, 5], v.b, [3, 1], (x, y) => x + y).y, broadcastRef(v.a, [3, 5], v.b, [3, 1], (x, y) => x * y).y],
    tol: HALF,
  },
];
