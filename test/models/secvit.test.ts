// The whole model: the authors' golden outputs (SPEC 4) on cpu and cuda-emu, the double-precision
// model reference at odd sizes, cluster orders, 16-bit dtypes against float32, bad input, and
// lifetimes (dispose frees every weight; a forward in flight survives its model's disposal).
import { resolve } from 'node:path';
import { describe, expect, test } from 'vitest';
import { backends, memory, normalize, PRETRAINED_CFG, SecViT, tensor, type Device, type Tensor } from '../../lib/index.js';
import { readAll, sharedFile } from '../helpers/shared.js';
import { relError, Rng } from '../helpers/random.js';
import { testDevices } from '../helpers/backends.js';
import { secvitRef } from '../reference/secvit.js';

const FIX = resolve(__dirname, '../fixtures');
const goldenIo = sharedFile('golden/tiny.io.safetensors');
const goldenWeights = sharedFile('golden/tiny.weights.safetensors');
const f32 = (a: Float64Array): Float32Array => Float32Array.from(a);

/**
 * Orders equal up to near-tie swaps: every position that differs holds a token that the
 * reference has within `reach` positions (neighbours swapped by scores equal to ~1e-7), and
 * fewer than 1% of positions differ.
 */
function expectOrdersClose(got: ArrayLike<number>, want: ArrayLike<number>, rowLen: number, reach = 2): void {
  let differ = 0;
  for (let r = 0; r < want.length / rowLen; r++) {
    const base = r * rowLen;
    const pos = new Map<number, number>();
    for (let p = 0; p < rowLen; p++) pos.set(want[base + p], p);
    for (let p = 0; p < rowLen; p++) {
      if (got[base + p] === want[base + p]) continue;
      differ++;
      const at = pos.get(got[base + p]);
      expect(at !== undefined && Math.abs(at - p) <= reach, `row ${r} position ${p}: token ${got[base + p]} is at ${at} in the reference`).toBe(true);
    }
  }
  expect(differ / want.length).toBeLessThan(0.01);
}

describe.skipIf(!goldenIo || !goldenWeights)('golden: the authors\' model (tiny config, 2 x 224 x 224)', () => {
  const io = goldenIo ? readAll(goldenIo) : new Map();
  // cuda-emu runs the same kernels one emulated thread at a time: one forward at batch 2 takes
  // about 14 s there, so every result is awaited (off the event loop) before it is read: a
  // worker blocked for over a minute misses vitest's RPC deadline even when the test passes.
  test.each(testDevices())('%s: logits and features.0..3 within 1e-4, the stage-0 block-0 attention and its order', async (device) => {
    using model = SecViT.load(goldenWeights!, { device });
    expect(model.config.embedDims).toEqual([32, 64, 128, 256]);
    const inp = io.get('input')!;
    const x = tensor(f32(inp.data), inp.shape);
    const { logits, blocks } = model.clusters(x);
    await logits.ready();
    const feats = model.features(x);
    await feats[3].ready();
    // Relative errors seen: 2e-7 (logits) to 1e-6 (features.3) on cpu and cuda-emu.
    expect(relError(logits.dataSync(), io.get('logits')!.data)).toBeLessThan(1e-4);
    feats.forEach((f, i) => {
      const ref = io.get(`features.${i}`)!;
      expect(f.shape).toEqual(ref.shape);
      expect(relError(f.dataSync(), ref.data), `features.${i}`).toBeLessThan(1e-4);
    });
    const ai = io.get('stage0.block0.attn.input')!;
    const ain = tensor(f32(ai.data), ai.shape);
    const a = model.layers.items[0].blocks.items[0].attn.forward(ain);
    expect(relError(await a.data(), io.get('stage0.block0.attn.output')!.data)).toBeLessThan(1e-4);
    const order = blocks[0];
    expect([order.stage, order.block, order.clusters, order.height, order.width]).toEqual([0, 0, 32, 56, 56]);
    expect(order.order.shape).toEqual([2, 2, 3136]);
    expectOrdersClose(order.order.dataSync(), io.get('stage0.block0.attn.order')!.data, 3136);
    expect(blocks.map((b) => `${b.stage}.${b.block}`)).toEqual(['0.0', '1.0', '2.0', '2.1', '3.0']);
    [x, logits, ...feats, ain, a, ...blocks.map((b) => b.order)].forEach((t) => t.dispose());
  });

  // Issue 21, item 2: what 16 bits cost on the CPU, against the float64 golden. Seen: bfloat16
  // logits 1.24e-2, features 3.4e-2..3.8e-2; float16 logits 3.3e-3, features 1.3e-2..1.6e-2 (the
  // tensor-core paths on cuda-emu give the same on SecViT-T). Bounds 2.5x the seen values.
  test.each([['bfloat16', 3e-2, 1e-1], ['float16', 1e-2, 4e-2]] as const)('cpu, %s: logits and features against the golden', (dtype, logitBound, featureBound) => {
    using model = SecViT.load(goldenWeights!, { device: 'cpu', dtype });
    const inp = io.get('input')!;
    using x = tensor(f32(inp.data), inp.shape);
    using logits = model.forward(x);
    const err = relError(logits.dataSync(), io.get('logits')!.data);
    expect(err).toBeLessThan(logitBound);
    expect(err).toBeGreaterThan(1e-4); // 16-bit rounding is there: not a float32 model in disguise
    const feats = model.features(x);
    feats.forEach((f, i) => expect(relError(f.dataSync(), io.get(`features.${i}`)!.data), `features.${i}`).toBeLessThan(featureBound));
    feats.forEach((f) => f.dispose());
  });
});

describe('the model against its double-precision reference (micro config, odd sizes)', () => {
  const w = readAll(resolve(FIX, 'micro.model.safetensors'));
  const cfg = {
    embed_dims: [8, 16, 16, 32], depths: [1, 1, 1, 1], num_heads: [2, 2, 2, 4],
    num_clusterss: [[32], [8], [2], [-1]], layerscales: [false, false, true, true],
  };
  // 37 x 45: stage-0 grid 10 x 12 = 120 tokens in 32 clusters (sizes 3 and 4: the reference model
  // refuses this; SPEC 1 step 4 defines it), stage 1 5 x 6 = 30 in 8, stage 2 3 x 3 = 9 in 2.
  const sizes: [number, number, number][] = [[2, 37, 45], [1, 32, 32], [3, 50, 33]];
  const devices: Device[] = testDevices();
  const cases = devices.flatMap((d) => sizes.map((s) => [d, ...s] as const));
  test.each(cases)('%s: batch %i, %i x %i', (device, b, h, wd) => {
    const rng = new Rng(b * 1000 + h * wd);
    const xs = [b, 3, h, wd];
    const xv = rng.normals(b * 3 * h * wd);
    const ref = secvitRef(w, cfg, { data: Float64Array.from(xv), shape: xs });
    using model = SecViT.load(resolve(FIX, 'micro.model.safetensors'), { device });
    const x = tensor(xv, xs);
    const feats = model.features(x);
    const logits = model.forwardHead(feats[3]);
    const sizesSeen = SecViT.stageSizes(h, wd);
    feats.forEach((f, i) => {
      expect(f.shape).toEqual(ref.features[i].shape);
      expect(f.shape.slice(2)).toEqual(sizesSeen[i]);
      // float32 through ~25 layers: seen 1e-7 to 1e-6.
      expect(relError(f.dataSync(), ref.features[i].data), `features.${i}`).toBeLessThan(1e-5);
    });
    expect(logits.shape).toEqual([b, 5]);
    expect(relError(logits.dataSync(), ref.logits)).toBeLessThan(1e-5);
    const { logits: l2, blocks } = model.clusters(x);
    blocks.forEach((blk, i) => {
      const L = blk.height * blk.width;
      expectOrdersClose(blk.order.dataSync(), ref.orders[i], L);
    });
    [x, logits, l2, ...feats, ...blocks.map((bk) => bk.order)].forEach((t) => t.dispose());
  });
});

describe('model API', () => {
  test('seeded random init: the same seed gives the same logits; timm conventions', () => {
    const x = tensor(new Rng(5).normals(3 * 64 * 48), [1, 3, 64, 48]);
    using a = SecViT.create('secvit-t', { seed: 7 });
    using b = SecViT.create('secvit-t', { seed: 7 });
    using c = SecViT.create('secvit-t', { seed: 8 });
    const [la, lb, lc] = [a, b, c].map((m) => m.forward(x));
    expect(la.shape).toEqual([1, 1000]);
    expect(lb.dataSync()).toEqual(la.dataSync());
    expect(relError(lc.dataSync(), la.dataSync())).toBeGreaterThan(1e-3);
    const f = a.forwardFeatures(x);
    expect(f.shape).toEqual([1, 512, 2, 2]);
    const pre = a.forwardHead(f, { preLogits: true });
    expect(pre.shape).toEqual([1, 1024]);
    const lh = a.forwardHead(f);
    expect(lh.dataSync()).toEqual(la.dataSync());
    expect(PRETRAINED_CFG.inputSize).toEqual([3, 224, 224]);
    expect(PRETRAINED_CFG.cropPct).toBe(0.875);
    [x, la, lb, lc, f, pre, lh].forEach((t) => t.dispose());
  });

  test('normalize: (x - mean) / std per channel, ImageNet defaults', () => {
    const v = new Rng(1).normals(2 * 3 * 5 * 4).map((z) => Math.abs(z) % 1);
    const x = tensor(v, [2, 3, 5, 4]);
    const y = normalize(x);
    const out = y.dataSync();
    for (let i = 0; i < v.length; i++) {
      const c = Math.floor(i / 20) % 3;
      expect(out[i]).toBeCloseTo((v[i] - PRETRAINED_CFG.mean[c]) / PRETRAINED_CFG.std[c], 5);
    }
    const two = tensor(new Float32Array(8), [1, 2, 2, 2]);
    expect(() => normalize(two)).toThrow(/\[B, 3, H, W\]/);
    two.dispose();
    x.dispose();
    y.dispose();
  });

  test('bad input: wrong channels, too small, wrong dtype, not a tensor, disposed, disposed model', () => {
    using model = SecViT.load(resolve(FIX, 'micro.model.safetensors'));
    const four = tensor(new Float32Array(4 * 32 * 32), [1, 4, 32, 32]);
    const small = tensor(new Float32Array(3 * 31 * 40), [1, 3, 31, 40]);
    const ints = tensor(new Int32Array(3 * 32 * 32), [1, 3, 32, 32]);
    const flat = tensor(new Float32Array(3 * 32 * 32), [3, 32, 32]);
    expect(() => model.forward(four)).toThrow(/pixels must be \[B, 3, H, W\] \(RGB, NCHW\), got \[1, 4, 32, 32\]/);
    expect(() => model.forward(small)).toThrow(/at least 32x32, got 31x40/);
    expect(() => model.forward(ints)).toThrow(TypeError);
    expect(() => model.forward(flat)).toThrow(RangeError);
    expect(() => model.forward(new Float32Array(10) as never)).toThrow(TypeError);
    const gone = tensor(new Float32Array(3 * 32 * 32), [1, 3, 32, 32]);
    gone.dispose();
    expect(() => model.forward(gone)).toThrow(/disposed/);
    [four, small, ints, flat].forEach((t) => t.dispose());
    model.dispose();
    const ok = tensor(new Float32Array(3 * 32 * 32), [1, 3, 32, 32]);
    expect(() => model.forward(ok)).toThrow(/the model has been disposed/);
    ok.dispose();
  });

  test('a custom config whose clusters outnumber a stage\'s tokens: an error naming the block', () => {
    using model = SecViT.create({ embedDims: [8, 16, 16, 32], depths: [1, 1, 1, 1], numHeads: [2, 2, 2, 4], numClusters: [100, 8, 2, -1], projection: 8, numClasses: 3 });
    const x = tensor(new Float32Array(3 * 32 * 32).fill(0.5), [1, 3, 32, 32]);
    expect(() => model.forward(x)).toThrow(/stage 0 block 0 has 100 clusters but its 8x8 grid has only 64 tokens/);
    x.dispose();
  });

  test('dispose frees every weight: memory() returns to its baseline; a forward in flight completes', async () => {
    const before = memory();
    const model = SecViT.load(resolve(FIX, 'micro.model.safetensors'));
    expect(memory().hostBytes - before.hostBytes).toBeGreaterThanOrEqual(4 * model.stateNumel);
    const x = tensor(new Rng(2).normals(2 * 3 * 64 * 64), [2, 3, 64, 64]);
    const ref = model.forward(x);
    const refData = ref.dataSync();
    const inFlight = model.forward(x);   // queued
    model.dispose();                     // weights released while the forward may still run
    expect(await inFlight.data()).toEqual(refData);
    [x, ref, inFlight].forEach((t) => t.dispose());
    expect(model.disposed).toBe(true);
    model.dispose();
    const after = memory();
    expect([after.tensors, after.hostBytes]).toEqual([before.tensors, before.hostBytes]);
  });

  test('500 forwards, awaited one by one as a server would: memory() exact, RSS flat', async () => {
    using model = SecViT.load(resolve(FIX, 'micro.model.safetensors'));
    using x = tensor(new Rng(3).normals(3 * 64 * 64), [1, 3, 64, 64]);
    const run = async (n: number) => {
      for (let i = 0; i < n; i++) {
        using y = model.forward(x);
        await y.data();
      }
    };
    await run(200);
    const reservedBytes = () => backends().find((b) => b.name === 'cpu')!.reservedBytes!;
    const [m0, u0, reserved0] = [memory(), process.memoryUsage(), reservedBytes()];
    await run(500);
    const [m1, u1, reserved1] = [memory(), process.memoryUsage(), reservedBytes()];
    expect([m1.tensors, m1.hostBytes]).toEqual([m0.tensors, m0.hostBytes]);
    // RSS as the OS counts it, V8's heap included. Seen -1.0 to +2.1 MB run alone, +6.9 MB once
    // with the suite's other test process running beside it (malloc's arenas). A leaked tensor
    // shows in memory() above; the CPU block cache must not grow at all (checked exactly); what
    // RSS adds is native memory outside both: a leak of the queued tasks (4 KB each, ~40 per
    // forward) would add 80 MB. Before the GC backstop moved off FinalizationRegistry (whose
    // registrations V8 keeps alive until a full collection, promoting every tensor of a forward),
    // this grew 17 MB of V8 heap and 8-13 MB of deferred native handles. SecViT-T's figures
    // (bench/memory.mjs) are in the README. Not measured under AddressSanitizer (its quarantine).
    const growth = (u1.rss - u0.rss) / 2 ** 20;
    console.log(`500 forwards: RSS ${growth.toFixed(1)} MB, V8 heapTotal ${((u1.heapTotal - u0.heapTotal) / 2 ** 20).toFixed(1)} MB`);
    if (!process.env.SECVIT_ADDON_PATH?.includes('asan')) expect(growth).toBeLessThan(16);
    expect(reserved1).toBe(reserved0);
  });
});

// The CPU runs 16-bit models by widening each op's inputs to float32 and rounding its output: the
// same precision as the tensor-core paths on CUDA (measured on the golden below and here).
describe.each(testDevices())('16-bit models on %s', (device) => {
  const micro = {
    embed_dims: [8, 16, 16, 32], depths: [1, 1, 1, 1], num_heads: [2, 2, 2, 4],
    layerscales: [false, false, true, true], projection: 16, num_classes: 5,
  };
  // SEC sorts tokens by a cosine score, so 16-bit rounding can move a token across a cluster
  // boundary: with the micro fixture's 3-4 token clusters that alone changes logits by 0.1 (seen
  // 0.15 bf16, 0.11 fp16). The precision of the tensor-core paths is measured where the order
  // cannot matter (one cluster per stage: attention is then permutation-invariant), and the
  // clustered model with clusters of 15-30 tokens under a looser bound.
  test.each([
    ['bfloat16', 'one cluster', [[1], [1], [1], [-1]], 3e-2], // seen 9.5e-3 (8 mantissa bits)
    ['float16', 'one cluster', [[1], [1], [1], [-1]], 4e-3], //  seen 1.1e-3 (11 mantissa bits)
    ['bfloat16', '15-30 token clusters', [[4], [2], [1], [-1]], 5e-2], // seen 1.05e-2
    ['float16', '15-30 token clusters', [[4], [2], [1], [-1]], 5e-2], //  seen 1.17e-2 (order moves)
  ] as const)('%s, %s: logits against float32', (dtype, _what, clusters, bound) => {
    const config = { ...micro, num_clusterss: clusters.map((c) => [...c]) };
    using x = tensor(new Rng(11).normals(2 * 3 * 40 * 48), [2, 3, 40, 48]);
    using m32 = SecViT.load(resolve(FIX, 'micro.model.safetensors'), { device, config });
    using m16 = SecViT.load(resolve(FIX, 'micro.model.safetensors'), { device, dtype, config });
    expect(m16.stateDict().get('head.weight')!.dtype).toBe(dtype);
    using l32 = m32.forward(x);
    using l16 = m16.forward(x);
    expect(l16.dtype).toBe('float32');
    const got = l16.dataSync();
    expect(got.every(Number.isFinite)).toBe(true);
    const err = relError(got, l32.dataSync());
    expect(err).toBeLessThan(bound);
    expect(err).toBeGreaterThan(0);
  });

  // Issue 21, item 2: the classifier ran in 16 bits, so logits were rounded to bfloat16 (spacing
  // 2 at 400, where a random SecViT-T's logits sit: its top score moved from 86% to 99.75%).
  // Now it is float32: logits equal a float32 linear of the 16-bit pooled features.
  test.each(['bfloat16', 'float16'] as const)('%s: the classifier computes in float32 (logits are not rounded to 16 bits)', (dtype) => {
    const config = { ...micro, num_clusterss: [[4], [2], [1], [-1]] };
    using m16 = SecViT.load(resolve(FIX, 'micro.model.safetensors'), { device, dtype, config });
    // Large logits, as a random model's: the head's weights scaled by 300 (in the 16-bit copy).
    const sd = m16.stateDict();
    using w32 = sd.get('head.weight')!.cast('float32');
    using b32 = sd.get('head.bias')!.cast('float32');
    using big = tensor(Float32Array.from(w32.dataSync() as Float32Array, (v) => v * 300), w32.shape);
    using big16 = big.cast(dtype);
    m16.loadStateDict(new Map([['head.weight', big16]]), { strict: false });
    using x = tensor(new Rng(5).normals(2 * 3 * 40 * 48), [2, 3, 40, 48]);
    using feats = m16.forwardFeatures(x);
    using pooled = m16.forwardHead(feats, { preLogits: true });
    using logits = m16.forwardHead(feats);
    using wNow = m16.stateDict().get('head.weight')!.cast('float32');
    const p = pooled.dataSync() as Float32Array, w = wNow.dataSync() as Float32Array, b = b32.dataSync() as Float32Array;
    const [n, k] = [pooled.shape[0], pooled.shape[1]], c = b.length;
    const want = new Float64Array(n * c);
    for (let i = 0; i < n; i++)
      for (let j = 0; j < c; j++) {
        let acc = b[j];
        for (let t = 0; t < k; t++) acc += p[i * k + t] * w[j * k + t];
        want[i * c + j] = acc;
      }
    // fp32 accumulation: ~1e-7 of the logits; rounded to 16 bits they were 1e-3 (fp16) to 4e-3 (bf16) off.
    expect(relError(logits.dataSync(), want)).toBeLessThan(1e-5);
    expect(Math.max(...Array.from(want, Math.abs))).toBeGreaterThan(10);
  });
});
