// SEC, window and global attention against the double-precision references of SPEC 1-2, on
// every backend that has the kernels. Fresh seeded inputs; outputs are poisoned (SECVIT_POISON)
// so an unwritten element fails.
import { afterAll, describe, expect, it } from 'vitest';
import {
  backends, decodeHalf, encodeHalf, getNumThreads, profileOps, setNumThreads,
  globalAttention, globalAttentionSync, secAttention, secAttentionSync, secAttentionUnfusedSync,
  tensor, windowAttention, windowAttentionSync, type Device, type Tensor,
} from '../lib/index.js';
import { globalAttentionRef, secAttentionRef, secScoresRef, windowAttentionRef, type AttnShape } from './reference/attention.js';
import { relError, Rng } from './helpers/random.js';
import { SIMD_PATHS, testDevices } from './helpers/backends.js';
import { native } from '../lib/native.js';

// fp32 kernels accumulate in fp32 over at most a few thousand terms: ||out-ref||/||ref|| stays
// around 1e-7..1e-6. 1e-5 is the bound the issue sets for fp32.
const FP32_TOL = 1e-5;

// cpu and cuda-emu always (cuda-emu runs the .cu kernels through the emulator), cuda with a GPU.
const DEVICES: Device[] = testDevices();

interface Inputs {
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  s: AttnShape;
}

function inputs(seed: number, b: number, h: number, l: number, d: number): Inputs {
  const rng = new Rng(seed);
  const n = b * h * l * d;
  return { q: rng.normals(n, 0.5), k: rng.normals(n, 0.5), v: rng.normals(n), s: { b, h, l, d } };
}

function upload(x: Inputs, device: Device): [Tensor, Tensor, Tensor] {
  const shape = [x.s.b, x.s.h, x.s.l, x.s.d];
  return [tensor(x.q, shape, { device }), tensor(x.k, shape, { device }), tensor(x.v, shape, { device })];
}

function disposeAll(...ts: Tensor[]) {
  ts.forEach((t) => t.dispose());
}

describe.each(DEVICES)('secAttention on %s', (device) => {
  const cases: Array<[string, number, number, number, number, number]> = [
    // name, B, H, L, D, C
    ['L prime, C not dividing L', 2, 3, 97, 32, 7],
    ['L not divisible by C', 1, 2, 100, 16, 7],
    ['C = 1 (global), several key tiles', 1, 2, 600, 32, 1],
    ['C = L (each token alone)', 1, 1, 64, 64, 64],
    ['C = 2', 2, 2, 150, 32, 2],
    ['C = 13, odd D-sized heads', 1, 4, 333, 16, 13],
    ['C = 32', 1, 2, 320, 32, 32],
    ['C = 64, D = 64', 1, 1, 448, 64, 64],
    ['B*H = 32', 4, 8, 49, 16, 3],
    ['C = 0 means one cluster', 1, 1, 50, 16, 0],
    ['D = 24 (not a template size)', 1, 2, 130, 24, 5],
    ['D = 100 (several lanes per query)', 1, 1, 77, 100, 3],
    ['D = 256', 1, 1, 40, 256, 2],
  ];
  it.each(cases)('%s (B=%i H=%i L=%i D=%i C=%i)', (_name, b, h, l, d, c) => {
    const x = inputs(1000 + l + c, b, h, l, d);
    const [q, k, v] = upload(x, device);
    const { out, order } = secAttentionSync(q, k, v, { clusters: c, returnOrder: true });
    const ref = secAttentionRef(x.q, x.k, x.v, x.s, c);
    expect(out.shape).toEqual([b, h, l, d]);
    expect(order.shape).toEqual([b, h, l]);
    expect(order.dtype).toBe('int32');
    expect(relError(out.dataSync(), ref.out)).toBeLessThan(FP32_TOL);
    expect(Array.from(order.dataSync())).toEqual(Array.from(ref.order));
    // Without the order the same output comes back.
    const plain = secAttentionSync(q, k, v, { clusters: c });
    expect(relError(plain.dataSync(), ref.out)).toBeLessThan(FP32_TOL);
    disposeAll(q, k, v, out, order, plain);
  });

  it('handles L = 4096 (C = 32)', () => {
    const x = inputs(7, 1, 1, 4096, 32);
    const [q, k, v] = upload(x, device);
    const out = secAttentionSync(q, k, v, { clusters: 32 });
    expect(relError(out.dataSync(), secAttentionRef(x.q, x.k, x.v, x.s, 32).out)).toBeLessThan(FP32_TOL);
    disposeAll(q, k, v, out);
  });

  it('sorts long sequences (L = 9000: the multi-block sort path on CUDA)', () => {
    const x = inputs(70, 1, 2, 9000, 16);
    const [q, k, v] = upload(x, device);
    const { out, order } = secAttentionSync(q, k, v, { clusters: 64, returnOrder: true });
    const ref = secAttentionRef(x.q, x.k, x.v, x.s, 64);
    expect(Array.from(order.dataSync())).toEqual(Array.from(ref.order));
    expect(relError(out.dataSync(), ref.out)).toBeLessThan(FP32_TOL);
    disposeAll(q, k, v, out, order);
  });

  it('orders exact ties by token index and resolves near-ties like the reference', () => {
    const x = inputs(8, 1, 2, 120, 16);
    const { d, l } = x.s;
    // Head 0: groups of identical keys (exact ties). Head 1: keys differing by 1e-6 (near-ties).
    for (let i = 0; i < l; i++) {
      const src = (i % 10) * d;
      for (let c = 0; c < d; c++) x.k[i * d + c] = x.k[src + c];
    }
    for (let i = 0; i < l; i++) {
      const src = l * d + (i % 7) * d;
      for (let c = 0; c < d; c++) x.k[l * d + i * d + c] = x.k[src + c] * (1 + (c === 0 ? 1e-6 * (i % 5) : 0));
    }
    const [q, k, v] = upload(x, device);
    const { out, order } = secAttentionSync(q, k, v, { clusters: 6, returnOrder: true });
    const ref = secAttentionRef(x.q, x.k, x.v, x.s, 6);
    expect(Array.from(order.dataSync())).toEqual(Array.from(ref.order));
    expect(relError(out.dataSync(), ref.out)).toBeLessThan(FP32_TOL);
    disposeAll(q, k, v, out, order);
  });

  it('keeps token order when every key is the same (all scores tie)', () => {
    const x = inputs(13, 1, 2, 50, 16);
    const { d, l } = x.s;
    for (let i = 0; i < 2 * l; i++) for (let c = 0; c < d; c++) x.k[i * d + c] = x.k[c];
    const [q, k, v] = upload(x, device);
    const { out, order } = secAttentionSync(q, k, v, { clusters: 4, returnOrder: true });
    const ref = secAttentionRef(x.q, x.k, x.v, x.s, 4);
    expect(Array.from(ref.order)).toEqual([...Array(l).keys(), ...Array(l).keys()]);
    expect(Array.from(order.dataSync())).toEqual(Array.from(ref.order));
    expect(relError(out.dataSync(), ref.out)).toBeLessThan(FP32_TOL);
    disposeAll(q, k, v, out, order);
  });

  it('orders keys whose scores differ below float resolution exactly like the double reference', () => {
    // In each head, rows 40..99 are row 0's key with one component (j % d) moved by 1-3 ulps,
    // up in head 0 and down in head 1. Their cosines differ by ~1e-9: many pairs round to the
    // same float, so only the double scores order them (a sort on float scores would keep
    // index order there). The premise is checked on the reference's own scores.
    const x = inputs(12, 1, 2, 160, 16);
    const { d, l } = x.s;
    const bits = new Uint32Array(1);
    const f = new Float32Array(bits.buffer);
    const nudge = (v: number, ulps: number) => {
      f[0] = v;
      bits[0] += ulps; // same sign: |v| grows for ulps > 0
      return f[0];
    };
    for (let h = 0; h < 2; h++) {
      for (let j = 0; j < 60; j++) {
        for (let c = 0; c < d; c++) {
          const base = x.k[h * l * d + c];
          x.k[h * l * d + (40 + j) * d + c] = c === j % d ? nudge(base, (h === 0 ? 1 : -1) * (1 + (j % 3))) : base;
        }
      }
    }
    let misordered = 0;
    for (let h = 0; h < 2; h++) {
      const s = secScoresRef(x.k, h * l * d, l, d);
      for (let a = 40; a < 100; a++)
        for (let b = a + 1; b < 100; b++) if (Math.fround(s[a]) === Math.fround(s[b]) && s[a] > s[b]) misordered++;
    }
    expect(misordered, 'pairs equal in float whose double order is against index order').toBeGreaterThan(20);
    const [q, k, v] = upload(x, device);
    const { out, order } = secAttentionSync(q, k, v, { clusters: 5, returnOrder: true });
    const ref = secAttentionRef(x.q, x.k, x.v, x.s, 5);
    expect(Array.from(order.dataSync())).toEqual(Array.from(ref.order));
    expect(relError(out.dataSync(), ref.out)).toBeLessThan(FP32_TOL);
    disposeAll(q, k, v, out, order);
  });

  it('gives the same result asynchronously, and the unfused sequence agrees', async () => {
    const x = inputs(9, 2, 2, 98, 32);
    const [q, k, v] = upload(x, device);
    const a = await secAttention(q, k, v, { clusters: 4 });
    const s = secAttentionSync(q, k, v, { clusters: 4 });
    expect(Array.from(await a.data())).toEqual(Array.from(s.dataSync()));
    const u = secAttentionUnfusedSync(q, k, v, { clusters: 4, returnOrder: true });
    expect(relError(u.out.dataSync(), s.dataSync())).toBeLessThan(FP32_TOL);
    expect(relError(u.out.dataSync(), secAttentionRef(x.q, x.k, x.v, x.s, 4).out)).toBeLessThan(FP32_TOL);
    expect(Array.from(u.order.dataSync())).toEqual(Array.from(secAttentionRef(x.q, x.k, x.v, x.s, 4).order));
    disposeAll(u.out, u.order);
    disposeAll(q, k, v, a, s);
  });
});

describe.each(DEVICES)('windowAttention on %s', (device) => {
  const cases: Array<[string, number, number, number, number, number, number, number, number]> = [
    // name, H, height, width, wh, ww, sh, sw, D
    ['exact tiling', 2, 8, 8, 4, 4, 0, 0, 16],
    ['padding on both axes', 2, 7, 9, 3, 4, 0, 0, 32],
    ['shifted, exact tiling', 1, 8, 12, 4, 6, 2, 3, 16],
    ['shifted with padding', 3, 7, 9, 3, 4, 1, 2, 16],
    ['7x14 windows on 14x14 (98-token groups)', 2, 14, 14, 7, 14, 0, 0, 32],
    ['Swin 7x7, shifted', 1, 14, 14, 7, 7, 3, 3, 32],
  ];
  it.each(cases)('%s', (_name, h, height, width, wh, ww, sh, sw, d) => {
    const x = inputs(2000 + height * width + sh, 2, h, height * width, d);
    const [q, k, v] = upload(x, device);
    const out = windowAttentionSync(q, k, v, { height, width, window: [wh, ww], shift: [sh, sw] });
    const ref = windowAttentionRef(x.q, x.k, x.v, x.s, height, width, wh, ww, sh, sw);
    expect(relError(out.dataSync(), ref)).toBeLessThan(FP32_TOL);
    disposeAll(q, k, v, out);
  });

  it('runs off the JS thread with the same result', async () => {
    const x = inputs(32, 1, 2, 63, 16);
    const [q, k, v] = upload(x, device);
    const opts = { height: 7, width: 9, window: [3, 4] as const, shift: true };
    const a = await windowAttention(q, k, v, opts);
    const s = windowAttentionSync(q, k, v, opts);
    expect(Array.from(await a.data())).toEqual(Array.from(s.dataSync()));
    expect(relError(s.dataSync(), windowAttentionRef(x.q, x.k, x.v, x.s, 7, 9, 3, 4, 1, 2))).toBeLessThan(FP32_TOL);
    disposeAll(q, k, v, a, s);
  });

  // Swin's relative position bias [H, N, N] by window slot, with padding and a shift; large
  // bias values (+-8) so that a bias read from the wrong slot moves the softmax visibly.
  it.each([
    ['padded 7x9 grid, 3x4 windows shifted by (1, 2)', 3, 7, 9, 3, 4, 1, 2, 16],
    ['Swin 7x7 windows shifted by 3 on 14x14, D = 32', 2, 14, 14, 7, 7, 3, 3, 32],
    ['unshifted, D = 24', 1, 8, 8, 4, 4, 0, 0, 24],
  ] as const)('with a relative position bias: %s', (_name, h, height, width, wh, ww, sh, sw, d) => {
    const x = inputs(4000 + height * width, 2, h, height * width, d);
    const n = wh * ww;
    const b = new Rng(77).normals(h * n * n, 8);
    const [q, k, v] = upload(x, device);
    const bias = tensor(b, [h, n, n], { device });
    const out = windowAttentionSync(q, k, v, { height, width, window: [wh, ww], shift: [sh, sw], bias });
    const ref = windowAttentionRef(x.q, x.k, x.v, x.s, height, width, wh, ww, sh, sw, b);
    expect(relError(out.dataSync(), ref)).toBeLessThan(FP32_TOL);
    // The bias matters: without it the result is far from the reference.
    const plain = windowAttentionSync(q, k, v, { height, width, window: [wh, ww], shift: [sh, sw] });
    expect(relError(plain.dataSync(), ref)).toBeGreaterThan(0.1);
    disposeAll(q, k, v, bias, out, plain);
  });

  it('a NaN in the bias poisons exactly the rows of queries that read it (their window slot), as the reference', () => {
    const x = inputs(4300, 1, 2, 8 * 8, 8);
    const b = new Rng(79).normals(2 * 16 * 16);
    b[0 * 256 + 5 * 16 + 6] = NaN;  // head 0: query slot 5, key slot 6
    const [q, k, v] = upload(x, device);
    const bias = tensor(b, [2, 16, 16], { device });
    const o = windowAttentionSync(q, k, v, { height: 8, width: 8, window: [4, 4], shift: true, bias });
    const out = o.dataSync();
    const ref = windowAttentionRef(x.q, x.k, x.v, x.s, 8, 8, 4, 4, 2, 2, b);
    const nanAt = (a: ArrayLike<number>) => Array.from(a, (y, i) => (Number.isNaN(y) ? i : -1)).filter((i) => i >= 0);
    expect(nanAt(ref).length).toBeGreaterThan(0);
    expect(nanAt(out)).toEqual(nanAt(ref));
    const finite = Array.from(ref, (y, i) => (Number.isNaN(y) ? 0 : out[i] - y));
    expect(Math.hypot(...finite)).toBeLessThan(1e-4);
    disposeAll(q, k, v, bias, o);
  });

  it('rejects a bias of the wrong shape or dtype', () => {
    const x = inputs(5, 1, 2, 16, 8);
    const [q, k, v] = upload(x, device);
    const bad = tensor(new Float32Array(2 * 4 * 5).fill(0.5), [2, 4, 5], { device });
    expect(() => windowAttentionSync(q, k, v, { height: 4, width: 4, window: [2, 2], bias: bad }))
      .toThrow(new RangeError('windowAttention: bias must be [H, wh*ww, wh*ww] = [2, 4, 4], got [2,4,5]'));
    const half = tensor(new Uint16Array(32).fill(0x3c00), [2, 4, 4], { device, dtype: 'float16' });
    expect(() => windowAttentionSync(q, k, v, { height: 4, width: 4, window: [2, 2], bias: half })).toThrow(TypeError);
    disposeAll(q, k, v, bad, half);
  });

  it('shift: true is half a window', () => {
    const x = inputs(31, 1, 1, 64, 16);
    const [q, k, v] = upload(x, device);
    const out = windowAttentionSync(q, k, v, { height: 8, width: 8, window: [4, 4], shift: true });
    expect(relError(out.dataSync(), windowAttentionRef(x.q, x.k, x.v, x.s, 8, 8, 4, 4, 2, 2))).toBeLessThan(FP32_TOL);
    disposeAll(q, k, v, out);
  });
});

describe.each(DEVICES)('globalAttention on %s', (device) => {
  it.each([
    [1, 1, 1, 16],
    [2, 3, 300, 32],
    [1, 2, 77, 64],
  ])('B=%i H=%i L=%i D=%i', async (b, h, l, d) => {
    const x = inputs(3000 + l, b, h, l, d);
    const [q, k, v] = upload(x, device);
    const out = globalAttentionSync(q, k, v);
    const ref = globalAttentionRef(x.q, x.k, x.v, x.s);
    expect(relError(out.dataSync(), ref)).toBeLessThan(FP32_TOL);
    const outAsync = await globalAttention(q, k, v);
    expect(relError(outAsync.dataSync(), ref)).toBeLessThan(FP32_TOL);
    disposeAll(q, k, v, out, outAsync);
  });
});

// 16-bit inputs run on tensor cores (CUDA) with fp32 accumulation; P and the output are rounded
// to the 16-bit type, so the error is that of one or two roundings. Measured maxima over these
// cases: bfloat16 (8 significant bits) 2.1e-3, float16 (11 bits) 2.6e-4; the bounds are about
// 2.5x and 4x that. The reference uses the rounded inputs in double.
const HALF_TOL = { bfloat16: 5e-3, float16: 1e-3 } as const;

describe.each(DEVICES.flatMap((d) => (['bfloat16', 'float16'] as const).map((t) => [d, t] as const)))('%s attention in %s', (device, dtype) => {
  function half(x: Inputs): { q: Float32Array; k: Float32Array; v: Float32Array; t: Tensor[] } {
    const shape = [x.s.b, x.s.h, x.s.l, x.s.d];
    const bits = [x.q, x.k, x.v].map((a) => encodeHalf(a, dtype));
    const [q, k, v] = bits.map((b) => decodeHalf(b, dtype));
    return { q, k, v, t: bits.map((b) => tensor(b, shape, { dtype, device })) };
  }
  const decode = (t: Tensor) => decodeHalf(t.dataSync() as Uint16Array, dtype);

  it.each([
    ['L prime, C = 7', 2, 2, 97, 32, 7],
    ['D = 64, C = 3', 1, 2, 300, 64, 3],
    ['D = 128, C = 2', 1, 1, 70, 128, 2],
    ['D = 24 (padded channels)', 1, 2, 90, 24, 4],
    ['C = 1 over several key tiles', 1, 1, 200, 16, 1],
  ])('secAttention: %s', (_n, b, h, l, d, c) => {
    const x = half(inputs(4000 + l + d, b, h, l, d));
    const { out, order } = secAttentionSync(x.t[0], x.t[1], x.t[2], { clusters: c, returnOrder: true });
    expect(out.dtype).toBe(dtype);
    const ref = secAttentionRef(x.q, x.k, x.v, { b, h, l, d }, c);
    expect(Array.from(order.dataSync())).toEqual(Array.from(ref.order));
    expect(relError(decode(out), ref.out)).toBeLessThan(HALF_TOL[dtype]);
    disposeAll(...x.t, out, order);
  });

  it('windowAttention, shifted with padding', () => {
    const s = { b: 1, h: 2, l: 63, d: 32 };
    const x = half(inputs(4100, s.b, s.h, s.l, s.d));
    const out = windowAttentionSync(x.t[0], x.t[1], x.t[2], { height: 7, width: 9, window: [3, 4], shift: [1, 2] });
    expect(relError(decode(out), windowAttentionRef(x.q, x.k, x.v, s, 7, 9, 3, 4, 1, 2))).toBeLessThan(HALF_TOL[dtype]);
    disposeAll(...x.t, out);
  });

  it('windowAttention with a float32 relative position bias, shifted with padding (the tensor-core kernels add it)', () => {
    const s = { b: 2, h: 2, l: 63, d: 32 };
    const x = half(inputs(4200, s.b, s.h, s.l, s.d));
    const b = new Rng(78).normals(2 * 12 * 12, 4);
    const bias = tensor(b, [2, 12, 12], { device });
    const out = windowAttentionSync(x.t[0], x.t[1], x.t[2], { height: 7, width: 9, window: [3, 4], shift: [1, 2], bias });
    const ref = windowAttentionRef(x.q, x.k, x.v, s, 7, 9, 3, 4, 1, 2, b);
    expect(relError(decode(out), ref)).toBeLessThan(HALF_TOL[dtype]);
    expect(relError(decode(out), windowAttentionRef(x.q, x.k, x.v, s, 7, 9, 3, 4, 1, 2))).toBeGreaterThan(0.05);
    disposeAll(...x.t, out, bias);
  });

  it('globalAttention', () => {
    const s = { b: 2, h: 1, l: 150, d: 32 };
    const x = half(inputs(4200, s.b, s.h, s.l, s.d));
    const out = globalAttentionSync(x.t[0], x.t[1], x.t[2]);
    expect(relError(decode(out), globalAttentionRef(x.q, x.k, x.v, s))).toBeLessThan(HALF_TOL[dtype]);
    disposeAll(...x.t, out);
  });
});

// The CPU kernels have an AVX2/FMA path and a portable one; both must agree with the reference.
describe('CPU SIMD paths', () => {
  const cpu = backends().find((b) => b.name === 'cpu')!;
  afterAll(() => native.setCpuSimd(cpu.simd!));
  it.each(SIMD_PATHS)('%s: SEC, window and global match the reference', (simd) => {
    native.setCpuSimd(simd);
    const x = inputs(5000, 2, 2, 130, 24);
    const [q, k, v] = upload(x, 'cpu');
    const { out, order } = secAttentionSync(q, k, v, { clusters: 5, returnOrder: true });
    const ref = secAttentionRef(x.q, x.k, x.v, x.s, 5);
    expect(Array.from(order.dataSync())).toEqual(Array.from(ref.order));
    expect(relError(out.dataSync(), ref.out)).toBeLessThan(FP32_TOL);
    const g = globalAttentionSync(q, k, v);
    expect(relError(g.dataSync(), globalAttentionRef(x.q, x.k, x.v, x.s))).toBeLessThan(FP32_TOL);
    const wq = upload(inputs(5001, 1, 1, 63, 16), 'cpu');
    const wx = inputs(5001, 1, 1, 63, 16);
    const w = windowAttentionSync(wq[0], wq[1], wq[2], { height: 7, width: 9, window: [3, 4], shift: [1, 2] });
    expect(relError(w.dataSync(), windowAttentionRef(wx.q, wx.k, wx.v, wx.s, 7, 9, 3, 4, 1, 2))).toBeLessThan(FP32_TOL);
    disposeAll(q, k, v, out, order, g, w, ...wq);
  });
});

// The CPU's SEC kernel has two schedules: with at least two heads per thread, one task per head
// orders it and, for heads above 512 KiB of q/k/v, copies their q and v rows into sorted order and
// attends clusters as contiguous rows (smaller heads gather); with fewer heads, all are ordered
// first and the clusters gather their rows. Both must match
// the reference, with clusters of several query blocks (128) and key tiles (256).
describe('CPU SEC schedules', () => {
  const threads = getNumThreads();
  afterAll(() => setNumThreads(threads));
  const cases: Array<[string, number, number, number, number, number, number]> = [
    // name, threads, B, H, L, D, C
    ['per head, rows copied (heads of 576 KiB), 1 thread', 1, 2, 2, 1500, 32, 3],
    ['per head, rows copied, odd D, 2 threads', 2, 2, 2, 2300, 24, 5],
    ['per head, gathered (small heads), 2 threads', 2, 2, 3, 301, 24, 3],
    ['spread, 2 threads (2 heads)', 2, 1, 2, 1100, 32, 2],
    ['spread, 1 thread (1 head)', 1, 1, 1, 777, 16, 2],
    // Cluster counts that do not divide L (issue 23): clusters of floor/ceil size on every path.
    // A boundary formula exact only when C divides L gave a relative error of 1.19 at 2300 / 7.
    ['per head, rows copied, 2300 / 7 (clusters of 328 and 329), 2 threads', 2, 2, 2, 2300, 24, 7],
    ['per head, rows copied, 1500 / 7, 1 thread', 1, 2, 2, 1500, 32, 7],
    ['per head, rows copied, 2300 / 9, 1 thread', 1, 2, 2, 2300, 24, 9],
    ['per head, gathered (small heads), 301 / 4, 1 thread', 1, 2, 3, 301, 24, 4],
    ['spread, 2 threads (2 heads), 1100 / 3', 2, 1, 2, 1100, 32, 3],
    ['spread, 1 thread (1 head), 777 / 5', 1, 1, 1, 777, 16, 5],
  ];
  it.each(cases)('%s (threads %i, B=%i H=%i L=%i D=%i C=%i)', (_name, n, b, h, l, d, c) => {
    setNumThreads(n);
    const x = inputs(6000 + l, b, h, l, d);
    const [q, k, v] = upload(x, 'cpu');
    const { out, order } = secAttentionSync(q, k, v, { clusters: c, returnOrder: true });
    const ref = secAttentionRef(x.q, x.k, x.v, x.s, c);
    expect(Array.from(order.dataSync())).toEqual(Array.from(ref.order));
    expect(relError(out.dataSync(), ref.out)).toBeLessThan(FP32_TOL);
    disposeAll(q, k, v, out, order);
  });
});

// The same uneven clusters through the CUDA kernels (every cuda device: cuda-emu here, so the
// emulator's schedules run them too: random in test:emu-schedules, lifo in the ASan run).
describe.each(DEVICES.filter((d) => d !== 'cpu'))('SEC with cluster counts that do not divide L on %s', (device) => {
  it.each([
    [1, 2, 701, 24, 7], // clusters of 100 and 101
    [2, 1, 333, 16, 5], // 66 and 67
  ])('B=%i H=%i L=%i D=%i C=%i', async (b, h, l, d, c) => {
    const x = inputs(7000 + l, b, h, l, d);
    const [q, k, v] = upload(x, device);
    const { out, order } = secAttention(q, k, v, { clusters: c, returnOrder: true });
    const ref = secAttentionRef(x.q, x.k, x.v, x.s, c);
    expect(Array.from(await order.data())).toEqual(Array.from(ref.order));
    expect(relError(await out.data(), ref.out)).toBeLessThan(FP32_TOL);
    disposeAll(q, k, v, out, order);
  });
});

// The model's q, k, v are views [B, H, L, D] of its qkv projection's [B, L, 3H, D] output. The
// CPU kernels read them through their strides (no copy op runs) and write a token-major output
// ([B, L, H, D] in memory, so that out_proj reads tokens without a copy); other backends get
// contiguous copies. A view whose head dim is not contiguous is copied first on every backend.
describe.each(DEVICES)('attention on views of a qkv projection on %s', (device) => {
  const B = 2, H = 3, side = 7, L = side * side, D = 24;
  const shape: AttnShape = { b: B, h: H, l: L, d: D };
  const data = new Rng(7100).normals(B * L * 3 * H * D, 0.5);
  const part = (which: number) => {
    const out = new Float32Array(B * H * L * D);
    for (let b = 0; b < B; b++)
      for (let h = 0; h < H; h++)
        for (let l = 0; l < L; l++)
          for (let d = 0; d < D; d++) out[((b * H + h) * L + l) * D + d] = data[((b * L + l) * 3 * H + which * H + h) * D + d];
    return out;
  };
  const [rq, rk, rv] = [part(0), part(1), part(2)];
  const kinds: Array<[string, (q: Tensor, k: Tensor, v: Tensor) => Tensor, () => ArrayLike<number>]> = [
    ['secAttention', (q, k, v) => secAttentionSync(q, k, v, { clusters: 5 }), () => secAttentionRef(rq, rk, rv, shape, 5).out],
    ['secAttentionUnfused', (q, k, v) => secAttentionUnfusedSync(q, k, v, { clusters: 5 }), () => secAttentionRef(rq, rk, rv, shape, 5).out],
    ['windowAttention (shifted)', (q, k, v) => windowAttentionSync(q, k, v, { height: side, width: side, window: [3, 4], shift: [1, 2] }),
      () => windowAttentionRef(rq, rk, rv, shape, side, side, 3, 4, 1, 2)],
    ['globalAttention', (q, k, v) => globalAttentionSync(q, k, v), () => globalAttentionRef(rq, rk, rv, shape)],
  ];
  it.each(kinds)('%s', async (_name, run, ref) => {
    const qkv = tensor(data, [B, L, 3 * H, D], { device });
    const split = qkv.permute([0, 2, 1, 3]);
    const [q, k, v] = [split.narrow(1, 0, H), split.narrow(1, H, H), split.narrow(1, 2 * H, H)];
    expect(q.strides).toEqual([L * 3 * H * D, D, 3 * H * D, 1]);
    const { result: out, ops } = await profileOps(() => run(q, k, v));
    expect(relError(out.dataSync(), ref())).toBeLessThan(FP32_TOL);
    if (device === 'cpu') {
      expect(ops.map((o) => o.label)).not.toContain('copy');
      expect(out.strides).toEqual([L * H * D, D, H * D, 1]);
    }
    // Head dim not contiguous: q as the transpose of a [B, H, D, L] tensor.
    const qt = tensor(rq, [B, H, L, D], { device });
    const t1 = qt.transpose(2, 3);
    const t2 = t1.contiguous();
    const qT = t2.transpose(2, 3);
    expect(qT.strides[3]).toBe(L);
    const out2 = run(qT, k, v);
    expect(relError(out2.dataSync(), ref())).toBeLessThan(FP32_TOL);
    for (const t of [qkv, split, q, k, v, out, qt, t1, t2, qT, out2]) t.dispose();
  });
});

describe('attention errors', () => {
  const x = inputs(50, 1, 2, 12, 16);
  it('name the argument, what was expected and what arrived', () => {
    const [q, k, v] = upload(x, 'cpu');
    const k2 = tensor(new Float32Array(2 * 13 * 16).fill(0.5), [1, 2, 13, 16]);
    const qi = tensor(new Int32Array(2 * 12 * 16), [1, 2, 12, 16]);
    const q3 = tensor(new Float32Array(24 * 16).fill(1), [2, 12, 16]);
    const big = tensor(new Float32Array(2 * 12 * 300).fill(1), [1, 2, 12, 300]);
    const qe = tensor(x.q, [1, 2, 12, 16], { device: 'cuda-emu' });
    expect(() => secAttentionSync(q, k2, v, { clusters: 2 })).toThrow(new RangeError('secAttention: q, k and v must have one shape, got [1,2,12,16], [1,2,13,16] and [1,2,12,16]'));
    expect(() => secAttentionSync(qi, k, v, { clusters: 2 })).toThrow(new TypeError('secAttention: q must be float32, bfloat16 or float16, got int32'));
    const kb = tensor(x.k, [1, 2, 12, 16], { dtype: 'bfloat16' });
    expect(() => secAttentionSync(q, kb, v, { clusters: 2 })).toThrow(new TypeError('secAttention: q, k and v must have one dtype, got float32, bfloat16 and float32'));
    const hb = tensor(new Float32Array(2 * 12 * 200).fill(0.5), [1, 2, 12, 200], { dtype: 'bfloat16', device: 'cuda-emu' });
    expect(() => globalAttentionSync(hb, hb, hb)).toThrow(new RangeError('globalAttention: the bfloat16 tensor-core kernels support head dim D <= 128, got 200'));
    const many = tensor(new Float32Array(65536).fill(1), [65536, 1, 1, 1], { device: 'cuda-emu' });
    expect(() => secAttentionSync(many, many, many, { clusters: 1 })).toThrow(new RangeError('secAttention: B x H must be at most 65535 on cuda-emu, got 65536'));
    disposeAll(kb, hb, many);
    expect(() => secAttentionSync(q3, q3, q3, { clusters: 2 })).toThrow(/q must be \[B, H, L, D\], got \[2,12,16\]/);
    expect(() => secAttentionSync(q, k, v, { clusters: 13 })).toThrow(new RangeError('secAttention: clusters must be at most L (12), got 13'));
    expect(() => secAttentionSync(q, k, v, { clusters: 2.5 })).toThrow(new RangeError('secAttention: clusters must be an integer, got 2.5'));
    expect(() => secAttentionSync(q, k, v, { clusters: '2' as unknown as number })).toThrow(TypeError);
    expect(() => secAttentionSync(q, k, v, undefined as never)).toThrow(new TypeError('secAttention: options must be an object'));
    expect(() => secAttentionSync(big, big, big, { clusters: 2 })).toThrow(new RangeError('secAttention: head dim D must be in [1, 256], got 300'));
    expect(() => secAttentionSync(qe, k, v, { clusters: 2 })).toThrow(new RangeError('secAttention: q and k must be on one device, got cuda-emu and cpu'));
    expect(() => windowAttentionSync(q, k, v, { height: 3, width: 4, window: [4, 4] })).toThrow(new RangeError('windowAttention: window [4, 4] is larger than the grid [3, 4]'));
    expect(() => windowAttentionSync(q, k, v, { height: 3, width: 5, window: [2, 2] })).toThrow(/height x width \(3 x 5 = 15\) must equal L \(12\)/);
    expect(() => windowAttentionSync(q, k, v, { height: 3, width: 4, window: [2, 2], shift: [2, 0] })).toThrow(/shift \[2, 0\] must be smaller than the window/);
    expect(() => windowAttentionSync(q, k, v, { height: 3, width: 4, window: 2 as never })).toThrow(TypeError);
    expect(() => globalAttentionSync(q, k, 'v' as never)).toThrow(new TypeError('globalAttention: v must be a Tensor, got string'));
    disposeAll(q, k, v, k2, qi, q3, big, qe);
  });

  it('reject disposed inputs with DisposedError', async () => {
    const [q, k, v] = upload(x, 'cpu');
    v.dispose();
    expect(() => secAttentionSync(q, k, v, { clusters: 2 })).toThrow('secAttention: v was disposed');
    expect(() => globalAttention(q, k, v)).toThrow('globalAttention: v was disposed');
    disposeAll(q, k);
  });
});
