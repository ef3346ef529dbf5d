// Numerics the other tests do not reach:
//   - logits that span more than ~88 (the fp32 exp range) across key tiles: an online softmax
//     whose running maximum is not carried right underflows or overflows here;
//   - GELU's erf at every float32 step of a dense grid (the op tables check norms and specials);
//   - the rounding of 16-bit outputs: round-to-nearest-even has no sign bias, truncation (round
//     towards zero) shrinks every value by half an ulp on average, which the relative-error
//     tolerances alone would let pass;
// (NaN and infinity through every op, reducing ones included, are cases of the op tables:
// test/ops/*.cases.ts, checked element by element against the reference.)
import { describe, expect, it } from 'vitest';
import {
  decodeHalf, gelu, globalAttentionSync, linear, secAttentionSync,
  backends, tensor, type Device, type Tensor,
} from '../lib/index.js';
import { globalAttentionRef, secAttentionRef } from './reference/attention.js';
import { relError, Rng } from './helpers/random.js';
import { SIMD_PATHS, testDevices } from './helpers/backends.js';
import { native } from '../lib/native.js';
import { roundTo } from './helpers/op-cases.js';
import { geluRef, linearRef } from './reference/layers.js';

const DEVICES: Device[] = testDevices();

/** sum((out - ref) sign(ref)) / sum |ref|: the mean error along the values' direction, relative. */
function signedBias(out: ArrayLike<number>, ref: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.length; i++) {
    num += (out[i] - ref[i]) * Math.sign(ref[i]);
    den += Math.abs(ref[i]);
  }
  return num / den;
}

// ulp at 1 relative to the value: bfloat16 has 8 significant bits, float16 11.
const ULP = { bfloat16: 2 ** -7, float16: 2 ** -10 } as const;

// GELU = x/2 (1 + erf(x / sqrt 2)). The AVX2 erf is a table of 8 degree-6 polynomials (abs.
// error <= 7.5e-8, see native/cpu/vec_math_avx2.h); the scalar path and CUDA use the C library's
// erff. On 400,001 points of [-10, 10] (every interval and its edges, and the saturation past
// |x| / sqrt 2 = 4): |gelu(x) - ref| <= 1.2e-7 |x| (the erf error times |x| / 2, plus float
// rounding; seen 1.086e-7 on the AVX2 path, 1.026e-7 with erff on the scalar path and
// cuda-emu: the bound was 2e-7, which a constant coefficient 3 ulp off still passed; this one
// fails it, checked by planting that change), and exactly 0 at 0, x at +inf, NaN at -inf
// (-inf * 0) and NaN.
describe('GELU accuracy on a dense grid', () => {
  const n = 400_001;
  const x = Float32Array.from({ length: n }, (_, i) => -10 + (20 * i) / (n - 1));
  const check = (out: Float32Array) => {
    let worst = 0;
    let at = 0;
    for (let i = 0; i < n; i++) {
      const e = Math.abs(out[i] - geluRef(x[i])) / Math.max(Math.abs(x[i]), 1e-30);
      if (!(e <= worst)) {
        worst = e;
        at = x[i];
      }
    }
    expect(worst, `worst at x = ${at}`).toBeLessThanOrEqual(1.2e-7);
  };
  const specials = (device: Device) => {
    const t = tensor(Float32Array.from([0, Infinity, -Infinity, NaN, 1e30, -1e30]), [6], { device });
    const g = gelu(t);
    const v = g.dataSync() as Float32Array;
    expect(Array.from(v.subarray(0, 2))).toEqual([0, Infinity]);
    expect(Number.isNaN(v[2]) && Number.isNaN(v[3])).toBe(true);
    expect(v[4]).toBe(Math.fround(1e30));
    expect(Object.is(v[5], -0) || v[5] === 0).toBe(true);
    t.dispose();
    g.dispose();
  };
  const cpu = () => backends().find((b) => b.name === 'cpu')!;
  it.each(SIMD_PATHS)('cpu, %s', (simd) => {
    const was = cpu().simd!;
    native.setCpuSimd(simd);
    try {
      const t = tensor(x, [n], { device: 'cpu' });
      const g = gelu(t);
      check(g.dataSync() as Float32Array);
      t.dispose();
      g.dispose();
      specials('cpu');
    } finally {
      native.setCpuSimd(was);
    }
  });
  it.each(DEVICES.filter((d) => d !== 'cpu'))('%s', (device) => {
    const t = tensor(x, [n], { device });
    const g = gelu(t);
    check(g.dataSync() as Float32Array);
    t.dispose();
    g.dispose();
    specials(device);
  });
});

describe.each(DEVICES)('softmax range on %s', (device) => {
  // One head, D = 32, q = (s, 0, ...), keys (+-1, noise...): logits +-s. With s = 60 the first
  // key tiles hold logits near -60 and the last ones near +60 (or the reverse): a span of 120.
  function build(l: number, firstSign: number, s: number) {
    const d = 32;
    const rng = new Rng(l + firstSign);
    const q = new Float32Array(l * d);
    const k = new Float32Array(l * d);
    const v = rng.normals(l * d);
    for (let i = 0; i < l; i++) {
      q[i * d] = s;
      k[i * d] = i < l / 2 ? firstSign : -firstSign;
      for (let c = 1; c < d; c++) k[i * d + c] = rng.normal() * 0.01;
    }
    return { q, k, v, s: { b: 1, h: 1, l, d } };
  }

  it.each([1, -1])('global attention, logits from %i * 60 to the opposite over 600 keys', (first) => {
    const x = build(600, first, 60);
    const shape = [1, 1, 600, 32];
    using q = tensor(x.q, shape, { device });
    using k = tensor(x.k, shape, { device });
    using v = tensor(x.v, shape, { device });
    using out = globalAttentionSync(q, k, v);
    expect(relError(out.dataSync(), globalAttentionRef(x.q, x.k, x.v, x.s))).toBeLessThan(1e-5);
  });

  it('SEC attention with one cluster of 300 keys spanning 200', () => {
    const x = build(300, 1, 100);
    const shape = [1, 1, 300, 32];
    using q = tensor(x.q, shape, { device });
    using k = tensor(x.k, shape, { device });
    using v = tensor(x.v, shape, { device });
    using out = secAttentionSync(q, k, v, { clusters: 1 });
    expect(relError(out.dataSync(), secAttentionRef(x.q, x.k, x.v, x.s, 1).out)).toBeLessThan(1e-5);
  });

  it.each(['bfloat16', 'float16'] as const)('the same span in %s', (dtype) => {
    const x = build(600, -1, 60);
    const shape = [1, 1, 600, 32];
    const r = (a: Float32Array) => roundTo(a, dtype);
    using q = tensor(x.q, shape, { device, dtype });
    using k = tensor(x.k, shape, { device, dtype });
    using v = tensor(x.v, shape, { device, dtype });
    using out = globalAttentionSync(q, k, v);
    const ref = globalAttentionRef(r(x.q), r(x.k), r(x.v), x.s);
    expect(relError(decodeHalf(out.dataSync() as Uint16Array, dtype), ref)).toBeLessThan(dtype === 'bfloat16' ? 1e-2 : 2e-3);
  });
});

describe.each(DEVICES)('16-bit rounding on %s', (device) => {
  // 96 x 40 outputs of a GEMM, and 2 x 4 x 300 x 32 of SEC attention: enough values that the
  // mean error of round-to-nearest-even is a few hundredths of an ulp; truncation gives ~0.5.
  it.each(['bfloat16', 'float16'] as const)('%s: linear and SEC attention round to nearest, unbiased', (dtype) => {
    const rng = new Rng(77);
    const r = (a: Float32Array) => roundTo(a, dtype);
    const xa = r(rng.normals(96 * 64));
    const wa = r(rng.normals(40 * 64, 0.2));
    using x = tensor(xa, [96, 64], { device, dtype });
    using w = tensor(wa, [40, 64], { device, dtype });
    using y = linear(x, w);
    const yd = decodeHalf(y.dataSync() as Uint16Array, dtype);
    const yref = linearRef(xa, wa, 96, 64, 40);
    expect(Math.abs(signedBias(yd, yref))).toBeLessThan(0.1 * ULP[dtype]);

    const s = { b: 2, h: 4, l: 300, d: 32 };
    const n = s.b * s.h * s.l * s.d;
    const qa = r(rng.normals(n, 0.5));
    const ka = r(rng.normals(n, 0.5));
    const va = r(rng.normals(n).map((t) => t + 2)); // outputs away from 0: relative bias is clean
    const shape = [s.b, s.h, s.l, s.d];
    using q = tensor(qa, shape, { device, dtype });
    using k = tensor(ka, shape, { device, dtype });
    using v = tensor(va, shape, { device, dtype });
    using o = secAttentionSync(q, k, v, { clusters: 3 });
    const od = decodeHalf(o.dataSync() as Uint16Array, dtype);
    expect(Math.abs(signedBias(od, secAttentionRef(qa, ka, va, s, 3).out))).toBeLessThan(0.1 * ULP[dtype]);
  });
});

// Where the backend has several paths: the CPU's AVX2 and scalar kernels, CUDA's fp32 SIMT and
// 16-bit tensor-core (MMA) kernels.
type Target = { device: Device; simd?: 'scalar' | 'avx2-fma' };
const NONFINITE_TARGETS: Target[] = DEVICES.flatMap((device): Target[] =>
  device === 'cpu' ? SIMD_PATHS.map((simd) => ({ device, simd })) : [{ device }]);

describe.each(NONFINITE_TARGETS)('non-finite keys on $device $simd', ({ device, simd }) => {
  // One bad key element: the rows whose max logit is +inf, or that hold a NaN logit, are NaN;
  // a -inf logit weighs 0. As the float64 max-subtracted softmax of the reference gives them,
  // on every backend, path and dtype (the CUDA online softmax gave finite rows for +-inf
  // before). Sizes: a small head, and the model's D = 32 with an odd L (a partial key tile).
  // Tolerances on the finite values: fp32 1e-5; 16-bit inputs are rounded first (the reference
  // takes the rounded values), then bf16 2e-2 and fp16 4e-3 (16-bit probabilities and outputs).
  const TOL = { float32: 1e-5, bfloat16: 2e-2, float16: 4e-3 } as const;
  const cases = (['float32', 'bfloat16', 'float16'] as const).flatMap((dtype) =>
    [[24, 8], [37, 32]].flatMap(([L, D]) =>
      ([['+Inf', Infinity], ['-Inf', -Infinity], ['NaN', NaN]] as const).map(([name, bad]) => ({ dtype, L, D, name, bad }))));
  it.each(cases)('$dtype, L $L, D $D, a $name key element: NaN exactly where the reference has NaN, the rest within tolerance', ({ dtype, L, D, bad }) => {
    if (simd !== undefined) native.setCpuSimd(simd);
    try {
      const rng = new Rng(17 + L);
      const round = (x: Float32Array) => (dtype === 'float32' ? x : roundTo(x, dtype));
      const q = round(rng.normals(L * D));
      const k = round(rng.normals(L * D));
      const v = round(rng.normals(L * D));
      k[5 * D + 3] = bad;
      const shape = { b: 1, h: 1, l: L, d: D };
      const inputs = () => [q, k, v].map((x) => tensor(x, [1, 1, L, D], { device, dtype })) as [Tensor, Tensor, Tensor];
      for (const [name, run, ref] of [
        ['global', (t: [Tensor, Tensor, Tensor]) => globalAttentionSync(...t), globalAttentionRef(q, k, v, shape)],
        ['sec, 1 cluster', (t: [Tensor, Tensor, Tensor]) => secAttentionSync(...t, { clusters: 1 }), secAttentionRef(q, k, v, shape, 1).out],
      ] as const) {
        const t = inputs();
        const out = run(t);
        const f32 = out.cast('float32');
        const got = Array.from(f32.dataSync());
        [f32, out, ...t].forEach((x) => x.dispose());
        const nanGot = got.map(Number.isNaN);
        const nanRef = Array.from(ref, Number.isNaN);
        expect(nanGot, `${name}: NaN positions`).toEqual(nanRef);
        if (bad === bad) expect(nanRef.some((x) => x), `${name}: the case makes NaN rows`).toBe(bad === Infinity || bad === -Infinity);
        const fin = got.map((x, i) => (nanRef[i] ? 0 : x));
        const finRef = Array.from(ref, (x, i) => (nanRef[i] ? 0 : x));
        if (nanRef.some((x) => !x)) expect(relError(fin, finRef), name).toBeLessThan(TOL[dtype]);
      }
    } finally {
      if (simd !== undefined) native.setCpuSimd(SIMD_PATHS[0]);
    }
  });
});
