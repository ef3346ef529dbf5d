// globalAvgPool2d against the mean in double.
import { globalAvgPool2d, type Tensor } from '../../lib/index.js';
import { withSpecials, type OpCase } from '../helpers/op-cases.js';
import { avgPoolRef } from '../reference/layers.js';

const cl = (t: Tensor) => t.contiguous('channelsLast');

export const cases: OpCase[] = [
  { name: 'NCHW [2, 5, 7, 3]', inputs: { x: { shape: [2, 5, 7, 3] } }, run: (t) => globalAvgPool2d(t.x), ref: (v) => avgPoolRef(v.x, [2, 5, 7, 3]), tol: { float32: 1e-6, bfloat16: 8e-3, float16: 1e-3 }, shapes: [[2, 5, 1, 1]] },
  { name: 'channels-last [1, 130, 4, 4] (several channel blocks)', inputs: { x: { shape: [1, 130, 4, 4], view: cl } }, run: (t) => globalAvgPool2d(t.x), ref: (v) => avgPoolRef(v.x, [1, 130, 4, 4]), tol: { float32: 1e-6, bfloat16: 8e-3, float16: 1e-3 } },
  {
    // Channel 0: NaN; channel 1: +inf; channel 2: +inf and -inf (NaN); channel 3: finite.
    name: 'NaN and infinities stay in their channel', inputs: { x: { shape: [1, 4, 3, 3], values: withSpecials({ 4: NaN, 10: Infinity, 19: Infinity, 25: -Infinity }) } },
    run: (t) => globalAvgPool2d(t.x), ref: (v) => avgPoolRef(v.x, [1, 4, 3, 3]), tol: { float32: 1e-6, bfloat16: 8e-3, float16: 1e-3 },
  },
];
