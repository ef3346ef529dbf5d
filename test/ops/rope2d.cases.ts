// rope2d against SPEC 3.3 in double. fp32: one rotation, ~1e-7 relative.
import { rope2d, type Tensor } from '../../lib/index.js';
import { withSpecials, type OpCase } from '../helpers/op-cases.js';
import { rope2dRef, ropeAngles } from '../reference/layers.js';

const angles = (d: number) => () => ropeAngles(d);

export const cases: OpCase[] = [
  {
    name: '2 images, 3 heads, 4 x 6 grid, d = 16',
    inputs: { x: { shape: [2, 3, 24, 16] }, a: { shape: [8], values: angles(16) } },
    run: (t) => rope2d(t.x, t.a, { height: 4, width: 6 }),
    ref: (v) => rope2dRef(v.x, [2, 3, 24, 16], v.a, 6),
    tol: { float32: 1e-5, bfloat16: 8e-3, float16: 1e-3 },
  },
  {
    name: 'a strided view (q of a token-major qkv), 7 x 5 grid, d = 8',
    inputs: { x: { shape: [1, 35, 6, 8], view: (t: Tensor) => t.narrow(2, 0, 2).permute([0, 2, 1, 3]) }, a: { shape: [4], values: angles(8) } },
    run: (t) => rope2d(t.x, t.a, { height: 7, width: 5 }),
    ref: (v) => {
      const q = new Float32Array(2 * 35 * 8);
      for (let h = 0; h < 2; h++) for (let l = 0; l < 35; l++) for (let j = 0; j < 8; j++) q[(h * 35 + l) * 8 + j] = v.x[(l * 6 + h) * 8 + j];
      return rope2dRef(q, [1, 2, 35, 8], v.a, 5);
    },
    tol: { float32: 1e-5 },
  },
  {
    // A NaN spreads to its rotation partner; an infinity gives infinities, and NaN where it
    // meets sin(0) = 0 (the first row and column of the grid), as the definition does.
    name: 'NaN and infinities, 3 x 3 grid, d = 8',
    inputs: { x: { shape: [1, 2, 9, 8], values: withSpecials({ 5: NaN, 12: Infinity, 40: -Infinity, 70: 1e4 }) }, a: { shape: [4], values: angles(8) } },
    run: (t) => rope2d(t.x, t.a, { height: 3, width: 3 }),
    ref: (v) => rope2dRef(v.x, [1, 2, 9, 8], v.a, 3),
    tol: { float32: 1e-5, bfloat16: 8e-3, float16: 1e-3 },
  },
];
