// linear / fusedLinear / matmul-shaped GEMMs against linearRef. Tolerances: fp32 accumulation
// over K <= 700 terms stays near 1e-6 relative; 1e-5 bounds it. 16-bit inputs (rounded before
// the reference sees them) keep fp32 accumulation: the output's one rounding dominates,
// bfloat16 2^-9 ~ 2e-3 relative, float16 2^-12; the bounds are 4x those.
import { fusedLinear, linear } from '../../lib/index.js';
import { constantRows, withSpecials, type OpCase } from '../helpers/op-cases.js';
import { linearRef, ropeAngles } from '../reference/layers.js';

const F32 = 1e-5;
const HALF = { float32: F32, bfloat16: 8e-3, float16: 1e-3 };

function plain(name: string, m: number, k: number, n: number, bias = true, lead: number[] = [m]): OpCase {
  return {
    name,
    inputs: { x: { shape: [...lead, k] }, w: { shape: [n, k], scale: 0.2 }, ...(bias ? { b: { shape: [n] } } : {}) },
    run: (t) => linear(t.x, t.w, t.b ?? null),
    ref: (v) => linearRef(v.x, v.w, m, k, n, { bias: v.b }),
    tol: HALF,
    shapes: [[...lead, n]],
  };
}

const ropeAngle = (d: number) => () => ropeAngles(d);

export const cases: OpCase[] = [
  plain('1 row (the GEMV path)', 1, 37, 29),
  plain('3 rows, no bias', 3, 64, 16, false),
  plain('odd sizes: 7 x 13 -> 5', 7, 13, 5),
  plain('M=97, K=67, N=33 (edge tiles)', 97, 67, 33),
  plain('K=700 (several K blocks), N=19', 23, 700, 19),
  plain('[B, L, K] input', 2 * 11, 24, 40, true, [2, 11]),
  plain('M=200 rows, N=48 (parallel row blocks)', 200, 32, 48),
  plain('K=0 gives the bias', 4, 0, 6),
  {
    // M > 64: the packed 6 x 16 micro-kernel path (small M reads the weight in place). A NaN in
    // a row of x makes that output row NaN; an infinity makes its row infinite.
    name: 'M=100: NaN and an infinity in x (packed path)',
    inputs: { x: { shape: [100, 24], values: withSpecials({ [7 * 24 + 3]: NaN, [70 * 24 + 20]: Infinity }) }, w: { shape: [20, 24], scale: 0.2 }, b: { shape: [20] } },
    run: (t) => linear(t.x, t.w, t.b),
    ref: (v) => linearRef(v.x, v.w, 100, 24, 20, { bias: v.b }),
    tol: HALF,
  },
  {
    name: 'M=9: NaN and an infinity in x (small-M path)',
    inputs: { x: { shape: [9, 40], values: withSpecials({ [2 * 40 + 3]: NaN, [6 * 40 + 39]: -Infinity }) }, w: { shape: [11, 40], scale: 0.2 } },
    run: (t) => linear(t.x, t.w),
    ref: (v) => linearRef(v.x, v.w, 9, 40, 11),
    tol: HALF,
  },
  {
    name: 'a strided x (rows of a wider tensor)',
    inputs: { x: { shape: [9, 40], view: (t) => t.narrow(1, 5, 30) }, w: { shape: [17, 30] }, b: { shape: [17] } },
    run: (t) => linear(t.x, t.w, t.b),
    ref: (v) => {
      const x = new Float32Array(9 * 30);
      for (let i = 0; i < 9; i++) for (let j = 0; j < 30; j++) x[i * 30 + j] = v.x[i * 40 + 5 + j];
      return linearRef(x, v.w, 9, 30, 17, { bias: v.b });
    },
    tol: { float32: F32 },
  },
  {
    name: 'a transposed x (packed by the dispatcher)',
    inputs: { x: { shape: [12, 8], view: (t) => t.transpose(0, 1) }, w: { shape: [5, 12] } },
    run: (t) => linear(t.x, t.w),
    ref: (v) => {
      const x = new Float32Array(8 * 12);
      for (let i = 0; i < 8; i++) for (let j = 0; j < 12; j++) x[i * 12 + j] = v.x[j * 8 + i];
      return linearRef(x, v.w, 8, 12, 5);
    },
    tol: { float32: F32 },
  },
  {
    name: 'fused: LN prologue, GELU, layer scale, residual (FFN-like)',
    inputs: {
      x: { shape: [2, 31, 20] }, w: { shape: [36, 20], scale: 0.3 }, b: { shape: [36] },
      lw: { shape: [20] }, lb: { shape: [20] }, g: { shape: [36] }, r: { shape: [2, 31, 36] },
    },
    run: (t) => fusedLinear(t.x, t.w, t.b, { norm: { weight: t.lw, bias: t.lb, eps: 1e-6 }, activation: 'gelu', scale: t.g, residual: t.r }),
    ref: (v) => linearRef(v.x, v.w, 62, 20, 36, { bias: v.b, norm: { weight: v.lw, bias: v.lb, eps: 1e-6 }, activation: 'gelu', scale: v.g, residual: v.r }),
    tol: HALF,
  },
  {
    name: 'fused: add prologue, SiLU, residual in a strided layout',
    inputs: {
      x: { shape: [50, 24] }, a: { shape: [50, 24] }, w: { shape: [24, 24], scale: 0.3 },
      r: { shape: [24, 50], view: (t) => t.transpose(0, 1) },
    },
    run: (t) => fusedLinear(t.x, t.w, null, { add: t.a, activation: 'silu', residual: t.r }),
    ref: (v) => {
      const r = new Float32Array(50 * 24);
      for (let i = 0; i < 50; i++) for (let j = 0; j < 24; j++) r[i * 24 + j] = v.r[j * 50 + i];
      return linearRef(v.x, v.w, 50, 24, 24, { add: v.a, activation: 'silu', residual: r });
    },
    tol: { float32: F32 },
  },
  {
    name: 'fused: qkv projection with RoPE and the key scale (2 images of 5 x 7 tokens, 3 heads of 8)',
    inputs: {
      x: { shape: [2, 35, 24] }, w: { shape: [72, 24], scale: 0.3 }, b: { shape: [72] },
      lw: { shape: [24] }, angle: { shape: [4], values: ropeAngle(8) },
    },
    run: (t) => fusedLinear(t.x, t.w, t.b, { norm: { weight: t.lw, eps: 1e-6 }, rope: { angle: t.angle, heads: 3, height: 5, width: 7, kScale: 8 ** -0.5 } }),
    ref: (v) => linearRef(v.x, v.w, 70, 24, 72, { bias: v.b, norm: { weight: v.lw, eps: 1e-6 }, rope: { angle: v.angle, heads: 3, height: 5, width: 7, kScale: 8 ** -0.5 } }),
    tol: HALF,
  },
  {
    // Heads of 32 (SecViT's): whole 16-column tiles get RoPE in the micro-kernel's registers;
    // 90 rows (not a multiple of 6: the last tile goes through the row-by-row epilogue), q, k
    // (scaled) and v tiles, and a residual.
    name: 'fused: qkv with RoPE in registers (2 images of 5 x 9 tokens, 2 heads of 32)',
    inputs: {
      x: { shape: [2, 45, 40] }, w: { shape: [192, 40], scale: 0.3 }, b: { shape: [192] },
      lw: { shape: [40] }, lb: { shape: [40] }, angle: { shape: [16], values: ropeAngle(32) }, r: { shape: [2, 45, 192] },
    },
    run: (t) => fusedLinear(t.x, t.w, t.b, { norm: { weight: t.lw, bias: t.lb, eps: 1e-6 }, rope: { angle: t.angle, heads: 2, height: 5, width: 9, kScale: 32 ** -0.5 }, residual: t.r }),
    ref: (v) => linearRef(v.x, v.w, 90, 40, 192, { bias: v.b, norm: { weight: v.lw, bias: v.lb, eps: 1e-6 }, rope: { angle: v.angle, heads: 2, height: 5, width: 9, kScale: 32 ** -0.5 }, residual: v.r }),
    tol: HALF,
  },
  {
    // K = 700: three K blocks, each packed row-major with the LayerNorm of the whole row applied.
    name: 'fused: LN prologue over K blocks (K = 700), 70 rows',
    inputs: { x: { shape: [70, 700], scale: 2 }, w: { shape: [37, 700], scale: 0.1 }, lw: { shape: [700] }, lb: { shape: [700] } },
    run: (t) => fusedLinear(t.x, t.w, null, { norm: { weight: t.lw, bias: t.lb, eps: 1e-5 } }),
    ref: (v) => linearRef(v.x, v.w, 70, 700, 37, { norm: { weight: v.lw, bias: v.lb, eps: 1e-5 } }),
    tol: HALF,
  },
  {
    // M * K <= 2^18 with a prologue: A' is formed once for all rows (with the row statistics)
    // and read in place by every task; here with an add, a transposed (strided) x and M < N.
    name: "fused: A' formed once (add + LN, strided x), 130 rows < 200 columns",
    inputs: {
      x: { shape: [48, 130], view: (t) => t.transpose(0, 1) }, a: { shape: [130, 48] },
      w: { shape: [200, 48], scale: 0.2 }, b: { shape: [200] }, lw: { shape: [48] }, lb: { shape: [48] },
    },
    run: (t) => fusedLinear(t.x, t.w, t.b, { add: t.a, norm: { weight: t.lw, bias: t.lb, eps: 1e-6 }, activation: 'gelu' }),
    ref: (v) => {
      const x = new Float32Array(130 * 48);
      for (let i = 0; i < 130; i++) for (let j = 0; j < 48; j++) x[i * 48 + j] = v.x[j * 130 + i];
      return linearRef(x, v.w, 130, 48, 200, { bias: v.b, add: v.a, norm: { weight: v.lw, bias: v.lb, eps: 1e-6 }, activation: 'gelu' });
    },
    tol: HALF,
  },
  // LayerNorm's eps where it matters (issue 23): rows of variance ~eps (scale 1e-3 with eps 1e-6),
  // constant rows (variance 0: the row becomes the LN bias) and a large eps, on both A' paths.
  {
    name: "fused: A' formed once, eps matters (rows of variance ~eps, every third row constant)",
    inputs: { x: { shape: [60, 48], values: constantRows(48) }, w: { shape: [40, 48], scale: 0.2 }, b: { shape: [40] }, lw: { shape: [48] }, lb: { shape: [48] } },
    run: (t) => fusedLinear(t.x, t.w, t.b, { norm: { weight: t.lw, bias: t.lb, eps: 1e-6 } }),
    ref: (v) => linearRef(v.x, v.w, 60, 48, 40, { bias: v.b, norm: { weight: v.lw, bias: v.lb, eps: 1e-6 } }),
    tol: HALF,
  },
  {
    name: "fused: A' formed once, a large eps (0.25)",
    inputs: { x: { shape: [33, 64] }, w: { shape: [20, 64], scale: 0.2 }, lw: { shape: [64] } },
    run: (t) => fusedLinear(t.x, t.w, null, { norm: { weight: t.lw, eps: 0.25 } }),
    ref: (v) => linearRef(v.x, v.w, 33, 64, 20, { norm: { weight: v.lw, eps: 0.25 } }),
    tol: HALF,
  },
  {
    name: "fused: A' formed per task (M * K = 530 * 500), eps matters (rows of variance ~eps, constant rows)",
    inputs: { x: { shape: [530, 500], values: constantRows(500) }, w: { shape: [24, 500], scale: 0.1 }, lw: { shape: [500] }, lb: { shape: [500] } },
    run: (t) => fusedLinear(t.x, t.w, null, { norm: { weight: t.lw, bias: t.lb, eps: 1e-6 } }),
    ref: (v) => linearRef(v.x, v.w, 530, 500, 24, { norm: { weight: v.lw, bias: v.lb, eps: 1e-6 } }),
    tol: HALF,
  },
  {
    // M * K > 2^18: each task forms its own rows of A' (LN applied per K block), two K blocks.
    name: "fused: A' formed per task (M * K = 530 * 500 > 2^18), add + LN",
    inputs: { x: { shape: [530, 500] }, a: { shape: [530, 500] }, w: { shape: [24, 500], scale: 0.1 }, lw: { shape: [500] }, lb: { shape: [500] } },
    run: (t) => fusedLinear(t.x, t.w, null, { add: t.a, norm: { weight: t.lw, bias: t.lb, eps: 1e-5 } }),
    ref: (v) => linearRef(v.x, v.w, 530, 500, 24, { add: v.a, norm: { weight: v.lw, bias: v.lb, eps: 1e-5 } }),
    tol: HALF,
  },
  {
    name: 'RoPE on a GEMV-sized input (1 token)',
    inputs: { x: { shape: [1, 16] }, w: { shape: [48, 16] }, angle: { shape: [4], values: ropeAngle(8) } },
    run: (t) => fusedLinear(t.x, t.w, null, { rope: { angle: t.angle, heads: 2, height: 1, width: 1, kScale: 0.5 } }),
    ref: (v) => linearRef(v.x, v.w, 1, 16, 48, { rope: { angle: v.angle, heads: 2, height: 1, width: 1, kScale: 0.5 } }),
    tol: { float32: F32 },
  },
];

