// Gradients of the element-wise ops (add/mul with broadcasting, gelu, silu), the reductions
// (sum, mean), pad, and the views and copies (reshape, permute, narrow, expand, contiguous,
// cast), against test/reference/grad.ts. fp32: the kernels' sums are in double (CPU) or fp32
// trees (CUDA): ~1e-7, bound 1e-5 (GELU/SiLU derivatives: erf/exp polynomials, ~2e-7). 16-bit:
// the input and output rounding (bf16 8e-3 of relative step, fp16 1e-3).
import { add, gelu, globalAvgPool2d, mean, mul, pad, rope2d, silu, sum, type Tensor } from '../../lib/index.js';
import type { GradCase } from '../helpers/grad-cases.js';
import { actGradRef, broadcastGradRef, narrowGradRef, narrowRef, permuteRef, sumGradRef, sumRef } from '../reference/grad.js';
import { act, avgPoolRef, broadcastRef, rope2dRef, ropeAngles } from '../reference/layers.js';

const HALF = { float32: 1e-5, bfloat16: 1.5e-2, float16: 3e-3 };
const cl = (t: Tensor) => t.contiguous('channelsLast');

function unary(kind: 'gelu' | 'silu', shape: number[], view?: (t: Tensor) => Tensor): GradCase {
  return {
    name: `${kind} [${shape.join(', ')}]${view ? ' (channels-last view)' : ''}`,
    inputs: { x: { shape, scale: 2, view } },
    run: (t) => (kind === 'gelu' ? gelu(t.x) : silu(t.x)),
    forward: (v) => v.x.map((x) => act(kind, x)),
    backward: (v, dy) => ({ x: v.x.map((x, i) => dy[i] * actGradRef(kind, x)) }),
    tol: HALF,
  };
}

function binary(kind: 'add' | 'mul', as: number[], bs: number[]): GradCase {
  const f = kind === 'add' ? (x: number, y: number) => x + y : (x: number, y: number) => x * y;
  return {
    name: `${kind} [${as.join(', ')}] and [${bs.join(', ')}] (broadcast)`,
    inputs: { a: { shape: as }, b: { shape: bs } },
    run: (t) => (kind === 'add' ? add(t.a, t.b) : mul(t.a, t.b)),
    forward: (v) => broadcastRef(v.a, as, v.b, bs, f).y,
    backward: (v, dy) => {
      const r = kind === 'add'
        ? broadcastGradRef(v.a, as, v.b, bs, dy, () => 1, () => 1)
        : broadcastGradRef(v.a, as, v.b, bs, dy, (_x, y) => y, (x) => x);
      return { a: r.da, b: r.db };
    },
    tol: HALF,
  };
}

export const cases: GradCase[] = [
  unary('gelu', [7, 13]),
  unary('silu', [5, 11]),
  unary('gelu', [2, 5, 3, 3], cl),
  binary('add', [3, 1, 5], [4, 5]),
  binary('mul', [2, 3, 4], [3, 1]),
  binary('mul', [6, 7], [6, 7]),
  {
    name: 'add and mul with a scalar', inputs: { a: { shape: [4, 9] } },
    run: (t) => mul(add(t.a, 1.5), -0.25),
    forward: (v) => v.a.map((x) => (x + 1.5) * -0.25),
    backward: (_v, dy) => ({ a: dy.map((g) => g * -0.25) }),
    tol: HALF,
  },
  {
    name: 'an input used twice: x * x + x (gradients accumulate)', inputs: { x: { shape: [5, 6] } },
    run: (t) => add(mul(t.x, t.x), t.x),
    forward: (v) => v.x.map((x) => x * x + x),
    backward: (v, dy) => ({ x: v.x.map((x, i) => dy[i] * (2 * x + 1)) }),
    tol: HALF,
  },
  {
    name: 'a constant operand (requiresGrad false) gets no gradient', inputs: { a: { shape: [3, 4] }, b: { shape: [4], grad: false } },
    run: (t) => mul(t.a, t.b),
    forward: (v) => broadcastRef(v.a, [3, 4], v.b, [4], (x, y) => x * y).y,
    backward: (v, dy) => ({ a: broadcastGradRef(v.a, [3, 4], v.b, [4], dy, (_x, y) => y, (x) => x).da }),
    tol: HALF,
  },
  ...[[[1], false], [[0, 2], true], [[], false]].map(([dims, keepDim]): GradCase => ({
    name: `sum over [${(dims as number[]).join(', ')}] of [3, 4, 5], keepDim ${keepDim}`,
    inputs: { x: { shape: [3, 4, 5] } },
    run: (t) => sum(t.x, (dims as number[]).length ? (dims as number[]) : undefined, { keepDim: keepDim as boolean }),
    forward: (v) => sumRef(v.x, [3, 4, 5], dims as number[]),
    backward: (_v, dy) => ({ x: sumGradRef([3, 4, 5], dims as number[], dy) }),
    tol: { float32: 1e-6, bfloat16: 1.5e-2, float16: 3e-3 },
  })),
  // Outputs adjacent in memory (bias gradients: CPU's chunked schedule with a contiguous loop),
  // past the 64-per-thread count where outputs used to be summed one by one.
  ...([[[37, 150], [0], undefined], [[9, 10, 15], [0], undefined], [[3, 131, 5, 7], [0, 2, 3], cl]] as const).map(([shape, dims, view]): GradCase => ({
    name: `sum over [${dims.join(', ')}] of [${shape.join(', ')}]${view ? ' (a channels-last view)' : ''}`,
    inputs: { x: { shape: [...shape], view } },
    run: (t) => sum(t.x, [...dims]),
    forward: (v) => sumRef(v.x, [...shape], [...dims]),
    backward: (_v, dy) => ({ x: sumGradRef([...shape], [...dims], dy) }),
    tol: { float32: 1e-6, bfloat16: 1.5e-2, float16: 3e-3 },
  })),
  {
    name: 'mean over the last dim of a channels-last view', inputs: { x: { shape: [2, 3, 4, 5], view: cl } },
    run: (t) => mean(t.x, -1),
    forward: (v) => sumRef(v.x, [2, 3, 4, 5], [3]).map((s) => s / 5),
    backward: (_v, dy) => ({ x: sumGradRef([2, 3, 4, 5], [3], dy).map((g) => g / 5) }),
    tol: HALF,
  },
  {
    name: 'pad dim 1 of [2, 3, 4] by (2, 1)', inputs: { x: { shape: [2, 3, 4] } },
    run: (t) => pad(t.x, 1, 2, 1),
    forward: (v) => {
      const y = new Float64Array(2 * 6 * 4);
      for (let b = 0; b < 2; b++) for (let j = 0; j < 3; j++) for (let i = 0; i < 4; i++) y[(b * 6 + j + 2) * 4 + i] = v.x[(b * 3 + j) * 4 + i];
      return y;
    },
    backward: (_v, dy) => ({ x: narrowRef(dy, [2, 6, 4], 1, 2, 3) }),
    tol: { float32: 1e-7, bfloat16: 1e-7, float16: 1e-7 },
  },
  {
    name: 'permute, reshape (a copy of the permuted view), then gelu', inputs: { x: { shape: [2, 3, 5] } },
    run: (t) => gelu(t.x.permute([2, 0, 1]).reshape([5, 6])),
    forward: (v) => permuteRef(v.x, [2, 3, 5], [2, 0, 1]).map((x) => act('gelu', x)),
    backward: (v, dy) => {
      const p = permuteRef(v.x, [2, 3, 5], [2, 0, 1]);
      const gp = p.map((x, i) => dy[i] * actGradRef('gelu', x));
      // Back through the permutation: the inverse one.
      return { x: permuteRef(gp, [5, 2, 3], [1, 2, 0]) };
    },
    tol: HALF,
  },
  {
    name: 'narrow pieces of one tensor (split), used in different ops', inputs: { x: { shape: [4, 9] } },
    run: (t) => {
      const [p, q, r] = t.x.split([2, 3, 4], 1);
      return add(mul(p.contiguous(), 2), add(sum(q, 1, { keepDim: true }), r.narrow(1, 0, 2)));
    },
    forward: (v) => {
      const y = new Float64Array(8);
      for (let i = 0; i < 4; i++) {
        const row = v.x.subarray(i * 9, i * 9 + 9);
        const s = row[2] + row[3] + row[4];
        for (let j = 0; j < 2; j++) y[i * 2 + j] = 2 * row[j] + s + row[5 + j];
      }
      return y;
    },
    backward: (_v, dy) => {
      const g = new Float64Array(36);
      for (let i = 0; i < 4; i++) {
        const d0 = dy[i * 2];
        const d1 = dy[i * 2 + 1];
        g[i * 9] = 2 * d0;
        g[i * 9 + 1] = 2 * d1;
        for (let j = 2; j < 5; j++) g[i * 9 + j] = d0 + d1;
        g[i * 9 + 5] = d0;
        g[i * 9 + 6] = d1;
      }
      return { x: g };
    },
    tol: HALF,
  },
  {
    name: 'expand a [3, 1] to [2, 3, 4], times a full tensor', inputs: { a: { shape: [3, 1] }, b: { shape: [2, 3, 4] } },
    run: (t) => mul(t.a.expand([2, 3, 4]), t.b),
    forward: (v) => broadcastRef(v.a, [3, 1], v.b, [2, 3, 4], (x, y) => x * y).y,
    backward: (v, dy) => {
      const r = broadcastGradRef(v.a, [3, 1], v.b, [2, 3, 4], dy, (_x, y) => y, (x) => x);
      return { a: r.da, b: r.db };
    },
    tol: HALF,
  },
  {
    name: 'narrow gradient lands in the window only', inputs: { x: { shape: [3, 7, 2] } },
    run: (t) => t.x.narrow(1, 2, 4).contiguous(),
    forward: (v) => narrowRef(v.x, [3, 7, 2], 1, 2, 4),
    backward: (_v, dy) => ({ x: narrowGradRef([3, 7, 2], 1, 2, 4, dy) }),
    tol: { float32: 1e-7, bfloat16: 1e-7, float16: 1e-7 },
  },
  {
    name: 'cast to bfloat16 and back (float32 leaf)', inputs: { x: { shape: [4, 4] } },
    run: (t) => mul(t.x.cast('bfloat16'), 3).cast('float32'),
    forward: (v) => v.x.map((x) => 3 * x),
    backward: (_v, dy) => ({ x: dy.map((g) => 3 * g) }),
    tol: { float32: 1e-2 },
    fd: false,
  },
];

// rope2d's gradient: the rotation transposed (each pair turned back by its angle); pooling's:
// dy spread evenly over the pixels.
cases.push(
  {
    name: 'rope2d on [2, 3, 12, 8] (grid 3 x 4), a strided view', inputs: {
      x: { shape: [2, 12, 3, 8], view: (t) => t.permute([0, 2, 1, 3]) },
      angle: { shape: [4], values: () => ropeAngles(8), grad: false },
    },
    run: (t) => rope2d(t.x, t.angle, { height: 3, width: 4 }),
    forward: (v) => rope2dRef(permute0213(v.x, 2, 12, 3, 8), [2, 3, 12, 8], v.angle, 4),
    backward: (v, dy) => {
      // Rotation by minus the angles, back to the x layout [2, 12, 3, 8].
      const neg = v.angle.map((a) => -a);
      return { x: permute0213(rope2dRef(dy, [2, 3, 12, 8], neg, 4), 2, 3, 12, 8) };
    },
    tol: HALF,
  },
  {
    name: 'globalAvgPool2d of a channels-last [2, 5, 3, 4]', inputs: { x: { shape: [2, 5, 3, 4], view: cl } },
    run: (t) => globalAvgPool2d(t.x),
    forward: (v) => avgPoolRef(v.x, [2, 5, 3, 4]),
    backward: (_v, dy) => ({ x: Float64Array.from({ length: 120 }, (_, e) => dy[Math.floor(e / 12)] / 12) }),
    tol: HALF,
  },
);

/** [a, b, c, d] row-major -> [a, c, b, d]. */
function permute0213(x: ArrayLike<number>, a: number, b: number, c: number, d: number): Float64Array {
  const y = new Float64Array(x.length);
  for (let i = 0; i < a; i++) for (let j = 0; j < b; j++) for (let k = 0; k < c; k++) for (let l = 0; l < d; l++)
    y[((i * c + k) * b + j) * d + l] = x[((i * b + j) * c + k) * d + l];
  return y;
}
