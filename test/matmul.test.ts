// The CPU matmul against a double-precision reference, on both SIMD paths and thread counts;
// queued calls off the event loop; the thread pool under concurrent calls.
import { afterAll, describe, expect, it } from 'vitest';
import { backends, fusedLinear, getNumThreads, matmul, matmulSync, memory, setNumThreads, tensor, type Device } from '../lib/index.js';
import { native } from '../lib/native.js';
import { matmulRef } from './reference/matmul.js';
import { linearRef } from './reference/layers.js';
import { relError, Rng } from './helpers/random.js';
import { SIMD_PATHS, testDevices } from './helpers/backends.js';

// fp32 accumulation over K terms: relative error grows like sqrt(K) * 6e-8; 1e-5 is ample for
// K <= 1000 and far below what a wrong index would give (~1).
const FP32_TOL = 1e-5;

const cpu = backends().find((b) => b.name === 'cpu')!;
const defaultThreads = getNumThreads();

afterAll(() => {
  setNumThreads(defaultThreads);
  if (cpu.simd) native.setCpuSimd(cpu.simd);
});

function check(batch: number, m: number, k: number, n: number, bBatched: boolean, seed: number, device: Device = 'cpu') {
  const rng = new Rng(seed);
  const a = rng.normals(batch * m * k);
  const b = rng.normals((bBatched ? batch : 1) * k * n);
  using ta = tensor(a, batch > 1 || bBatched ? [batch, m, k] : [m, k], { device });
  using tb = tensor(b, bBatched ? [batch, k, n] : [k, n], { device });
  using out = matmulSync(ta, tb);
  expect(out.shape).toEqual(batch > 1 || bBatched ? [batch, m, n] : [m, n]);
  const err = relError(out.dataSync(), matmulRef(a, b, batch, m, k, n, bBatched));
  expect(err).toBeLessThan(FP32_TOL);
}

describe.each(SIMD_PATHS)('matmul on the %s path', (simd) => {
  it.each([1, 2])('matches the reference with %i thread(s), odd sizes included', (threads) => {
    native.setCpuSimd(simd);
    setNumThreads(threads);
    check(1, 1, 1, 1, false, 10);
    check(1, 7, 13, 5, false, 11);
    check(1, 33, 17, 31, false, 12);
    check(1, 64, 96, 48, false, 13);
    check(3, 9, 21, 35, true, 14);
    check(4, 5, 16, 17, false, 15);
    check(1, 129, 257, 67, false, 16);
  });
});

// Long K and a small C (weight gradients, K = every token of a batch) take the K-split path:
// tasks over ranges of K with partial C's summed at the end. A transposed A (a dY^T view) is
// packed k-major; another strided A through the prologue; the epilogue after the sum. K from
// 2053 to 6151 (not multiples of the 256-wide K blocks or of the task ranges): fp32 error grows
// like sqrt(K) * 6e-8 ~ 5e-6, so 2e-5; a lost or doubled K range gives ~1e-1 or more.
const LONG_K_TOL = 2e-5;
describe.each(SIMD_PATHS)('long-K matmul (the K-split path) on the %s path', (simd) => {
  it.each([1, 2])('plain, transposed and strided A, and an epilogue, with %i thread(s)', (threads) => {
    native.setCpuSimd(simd);
    setNumThreads(threads);
    const rng = new Rng(40 + threads);
    for (const [m, k, n] of [[13, 4099, 37], [7, 2053, 5], [150, 6151, 40]]) {
      const a = rng.normals(m * k);
      const b = rng.normals(k * n);
      const ref = matmulRef(a, b, 1, m, k, n, false);
      // A plain; A as the transposed view of a [K, M] tensor; A as every other column of [M, 2K].
      const at = new Float32Array(k * m);
      for (let i = 0; i < m; i++) for (let j = 0; j < k; j++) at[j * m + i] = a[i * k + j];
      const a2 = new Float32Array(m * 2 * k).fill(Number.NaN);
      for (let i = 0; i < m; i++) for (let j = 0; j < k; j++) a2[i * 2 * k + 2 * j] = a[i * k + j];
      using tb = tensor(b, [k, n]);
      using plain = tensor(a, [m, k]);
      using trans = tensor(at, [k, m]);
      using wide = tensor(a2, [m, k, 2]);
      using column = wide.narrow(2, 0, 1);
      const views = { plain, transposed: trans.transpose(0, 1), strided: column.reshape([m, k]) };
      for (const [name, ta] of Object.entries(views)) {
        expect(ta.shape, name).toEqual([m, k]);
        using out = matmulSync(ta, tb);
        expect(relError(out.dataSync(), ref), `${name} ${m}x${k}x${n}`).toBeLessThan(LONG_K_TOL);
      }
      views.transposed.dispose();
      views.strided.dispose();
    }
    // linear with M > 64 (not the small-M dot path): bias and GELU applied after the partials' sum.
    const [m, k, n] = [70, 3001, 9];
    const x = rng.normals(m * k);
    const w = rng.normals(n * k);
    const bias = rng.normals(n);
    using tx = tensor(x, [m, k]);
    using tw = tensor(w, [n, k]);
    using tbias = tensor(bias, [n]);
    using y = fusedLinear(tx, tw, tbias, { activation: 'gelu' });
    expect(relError(y.dataSync(), linearRef(x, w, m, k, n, { bias, activation: 'gelu' }))).toBeLessThan(LONG_K_TOL);
  });
});

// A b shared by the batch runs as one GEMM of batch * M rows: rows of different problems then
// share tiles (M = 70 is not a multiple of 6 or of CUDA's 64-row tile).
describe.each(testDevices())('batched matmul on %s', (device) => {
  it('with a shared b and with a b per problem', () => {
    check(3, 70, 40, 33, false, 17, device);
    check(3, 70, 40, 33, true, 18, device);
  });
});

describe('matmul errors', () => {
  it('names the arguments and what was expected', () => {
    using a = tensor(new Float32Array(6).fill(1), [2, 3]);
    using b = tensor(new Float32Array(8).fill(1), [4, 2]);
    using i = tensor(new Int32Array(6), [3, 2]);
    using v = tensor(new Float32Array(3).fill(1), [3]);
    expect(() => matmulSync(a, b)).toThrow(new RangeError('matmul: inner dimensions differ: a [2,3] has K=3, b [4,2] has K=4'));
    expect(() => matmulSync(a, i)).toThrow(new TypeError("matmul: b must have a's dtype (float32), got int32"));
    expect(() => matmulSync(i, a)).toThrow(new TypeError('matmul: a must be float32, bfloat16 or float16, got int32'));
    expect(() => matmulSync(v, b)).toThrow(/matmul: a must be \[M,K\] or \[B,M,K\], got \[3\]/);
    expect(() => matmulSync(a, 'x' as never)).toThrow(new TypeError('matmul: b must be a Tensor, got string'));
  });

  it('refuses mixed devices and disposed inputs', async () => {
    using a = tensor(new Float32Array(4).fill(1), [2, 2]);
    using d = tensor(new Float32Array(4).fill(1), [2, 2], { device: 'cuda-emu' });
    expect(() => matmulSync(a, d)).toThrow(new RangeError('matmul: a and b must be on one device, got cpu and cuda-emu'));
    const gone = tensor(new Float32Array(4).fill(1), [2, 2]);
    gone.dispose();
    // Argument errors throw at the call, also for the queued variant.
    expect(() => matmul(a, gone)).toThrow('matmul: b was disposed');
  });
});

describe('queued calls', () => {
  it('do not block the event loop', async () => {
    setNumThreads(defaultThreads);
    const n = 640;
    const rng = new Rng(20);
    using a = tensor(rng.normals(n * n), [n, n]);
    // Several chained products, queued without awaiting in between; only the read waits.
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const start = performance.now();
    let acc = matmul(a, a);
    for (let i = 0; i < 5; i++) {
      const next = matmul(acc, a);
      acc.dispose();
      acc = next;
    }
    const queued = performance.now() - start;
    await acc.data();
    const elapsed = performance.now() - start;
    clearInterval(timer);
    acc.dispose();
    // Queuing took a sliver of the compute time; the timer fired while the products ran (a
    // blocked loop would give no tick at all). Require a good fraction of 1 tick per ms.
    expect(elapsed).toBeGreaterThan(20);
    expect(queued).toBeLessThan(elapsed / 4);
    expect(ticks).toBeGreaterThan(Math.min(elapsed / 4, 30));

    // The synchronous variant, by contrast, does block.
    let syncTicks = 0;
    const t2 = setInterval(() => syncTicks++, 1);
    const s = matmulSync(a, a);
    const s2 = matmulSync(s, a);
    clearInterval(t2);
    s.dispose();
    s2.dispose();
    expect(syncTicks).toBe(0);
  });

  it('share the thread pool correctly under concurrency, also while it is resized', async () => {
    const rng = new Rng(21);
    const jobs = Array.from({ length: 12 }, (_, j) => {
      const m = 20 + j * 3;
      const k = 31 + j;
      const n = 17 + 2 * j;
      return { m, k, n, a: rng.normals(m * k), b: rng.normals(k * n) };
    });
    const tensors = jobs.map((j) => [tensor(j.a, [j.m, j.k]), tensor(j.b, [j.k, j.n])] as const);
    const pending = tensors.map(([a, b], idx) => {
      if (idx === 4) setNumThreads(1);
      if (idx === 8) setNumThreads(3);
      return matmul(a, b);
    });
    const outs = await Promise.all(pending);
    outs.forEach((o, idx) => {
      const j = jobs[idx];
      expect(relError(o.dataSync(), matmulRef(j.a, j.b, 1, j.m, j.k, j.n, false))).toBeLessThan(FP32_TOL);
      o.dispose();
    });
    tensors.forEach(([a, b]) => {
      a.dispose();
      b.dispose();
    });
    setNumThreads(defaultThreads);
    expect(getNumThreads()).toBe(defaultThreads);
  });

  it('throw argument errors at the call without leaking', () => {
    const before = memory();
    using a = tensor(new Float32Array(6).fill(1), [2, 3]);
    expect(() => matmul(a, a)).toThrow(RangeError);
    expect(memory().tensors).toBe(before.tensors + 1);
  });
});

describe('threads', () => {
  it('default to the cores this process may use, and validate setNumThreads', () => {
    expect(defaultThreads).toBe(native.availableCores());
    expect(() => setNumThreads(0)).toThrow(RangeError);
    expect(() => setNumThreads(1.5)).toThrow(RangeError); // a value error, as other integer options give
    setNumThreads(2);
    expect(getNumThreads()).toBe(2);
    expect(backends().find((b) => b.name === 'cpu')!.threads).toBe(2);
    setNumThreads(defaultThreads);
  });
});
