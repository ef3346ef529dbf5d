// The in-order device queues: ops return at once and run in order; reading waits; kernel
// failures reach every read that depends on them, named by the op; disposing under queued work
// is safe; memory stays bounded in program order (stream-ordered reuse); worker threads.
// `_debug` is the registry's test op: it holds its queue for `sleepMs`, then copies its input
// or fails.
import { Worker } from 'node:worker_threads';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { add, backends, matmul, matmulSync, memory, resetPeakMemory, secAttention, secAttentionUnfusedSync, tensor, zeros, type Device, type Tensor } from '../lib/index.js';
import { runOp1 } from '../lib/ops/run.js';
import { matmulRef } from './reference/matmul.js';
import { secAttentionRef } from './reference/attention.js';
import { relError, Rng } from './helpers/random.js';
import { testDevices } from './helpers/backends.js';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const hold = (x: Tensor, ms: number) => runOp1('_debug', { x }, { sleepMs: ms });
const failing = (x: Tensor, ms = 0) => runOp1('_debug', { x }, { fail: 1, sleepMs: ms });
const hostReserved = () => backends().find((b) => b.name === 'cpu')!.reservedBytes!;

describe.each(['cpu', 'cuda-emu'] as Device[])('queues on %s', (device) => {
  it('ops return before their kernels have run; reading waits for them', async () => {
    const rng = new Rng(1);
    const a = rng.normals(32 * 32);
    using x = tensor(a, [32, 32], { device });
    const t0 = performance.now();
    using held = hold(x, 150);
    using y = matmul(held, x);
    using z = matmul(y, x);
    const queued = performance.now() - t0;
    expect(queued).toBeLessThan(100);
    // A Tensor is not thenable: awaiting an op gives the tensor itself.
    const same = await z;
    expect(same).toBe(z);
    expect('then' in z).toBe(false);
    const out = await z.data();
    expect(performance.now() - t0).toBeGreaterThanOrEqual(140);
    const xy = matmulRef(a, a, 1, 32, 32, 32, false);
    expect(relError(out, matmulRef(xy, a, 1, 32, 32, 32, false))).toBeLessThan(1e-5);
  });

  it('a kernel failure rejects the reads of its outputs and of everything computed from them', async () => {
    using x = tensor(new Float32Array(16).fill(0.5), [4, 4], { device });
    using bad = failing(x, 20);
    using derived = matmul(bad, x);
    using further = matmul(derived, derived);
    using fine = matmul(x, x);
    await expect(further.data()).rejects.toThrow('_debug: injected failure (the _debug test op)');
    await expect(derived.data()).rejects.toThrow(Error);
    expect(() => bad.dataSync()).toThrow('_debug: injected failure');
    expect(() => derived.waitSync()).toThrow('_debug: injected failure');
    await expect(further.to('cpu')).rejects.toThrow('_debug: injected failure');
    expect(() => matmulSync(bad, x)).toThrow('_debug: injected failure');
    // Unrelated work is unaffected.
    expect(Array.from(await fine.data())).toEqual(new Array(16).fill(1));
  });

  it('disposing every input while queued work still reads them is safe', async () => {
    const rng = new Rng(2);
    const a = rng.normals(64 * 64);
    const b = rng.normals(64 * 64);
    const ta = tensor(a, [64, 64], { device });
    const tb = tensor(b, [64, 64], { device });
    const held = hold(ta, 60);
    const out = matmul(held, tb);
    ta.dispose();
    tb.dispose();
    held.dispose();
    // New tensors may take the freed blocks now; they are written only after the product ran.
    const reuse = Array.from({ length: 4 }, () => tensor(rng.normals(64 * 64), [64, 64], { device }));
    expect(relError(await out.data(), matmulRef(a, b, 1, 64, 64, 64, false))).toBeLessThan(1e-5);
    out.dispose();
    reuse.forEach((t) => t.dispose());
  });

  it('scratch a kernel takes while it runs never reuses a block freed after the kernel was queued', async () => {
    // q, k, v are strided views, so the dispatcher stages packed copies, queues the attention on
    // them and drops the copies at once: their blocks are free while the attention still waits
    // behind the held queue. Scratch the kernel takes when it runs (CUDA: scores, sort workspace,
    // order; CPU, unfused: the gathered q, k, v) is of the same size class and must not be those
    // blocks. (Before the fix: relative error 5e36 on cuda-emu.)
    const [h, l, d] = [2, 120, 4];
    const rng = new Rng(8);
    const base = rng.normals(l * 3 * h * d);
    using t = tensor(base, [1, l, 3 * h, d], { device });
    using split = t.permute([0, 2, 1, 3]);
    using q = split.narrow(1, 0, h);
    using k = split.narrow(1, h, h);
    using v = split.narrow(1, 2 * h, h);
    const packed = [0, 1, 2].map((m) => {
      const out = new Float64Array(h * l * d);
      for (let hh = 0; hh < h; hh++)
        for (let i = 0; i < l; i++)
          for (let c = 0; c < d; c++) out[(hh * l + i) * d + c] = base[(i * 3 * h + m * h + hh) * d + c];
      return out;
    });
    const ref = secAttentionRef(packed[0], packed[1], packed[2], { b: 1, h, l, d }, 32).out;
    using gate = tensor(rng.normals(16), [16], { device });
    for (const run of [secAttention, secAttentionUnfusedSync]) {
      using held = hold(gate, 40);
      using out = run(q, k, v, { clusters: 32 });
      // float32, clusters of 3-4 tokens: seen 5e-8.
      expect(relError(await out.data(), ref), run.name).toBeLessThan(1e-5);
    }
  });

  it('back-pressure: past 1024 waiting tasks, submitting blocks until the queue drains', async () => {
    using x = tensor(new Float32Array(16).fill(1), [16], { device });
    const t0 = performance.now();
    let acc = hold(x, 250);
    for (let i = 0; i < 3000; i++) {
      const next = add(acc, 1);
      acc.dispose();
      acc = next;
    }
    const queued = performance.now() - t0;
    // 3000 tasks could not all wait behind the 250 ms hold: the JS thread waited for the queue.
    expect(queued).toBeGreaterThan(200);
    const out = await acc.data();
    expect(Array.from(out).every((v) => v === 3001)).toBe(true);
    acc.dispose();
  });

  it('memory stays bounded in program order while a long chain is queued', async () => {
    const n = 128;
    const bytes = n * n * 4;
    using x = tensor(new Float32Array(n * n).fill(1 / n), [n, n], { device });
    const reserved = hostReserved();
    resetPeakMemory();
    const base = memory();
    let acc = hold(x, 100);
    for (let i = 0; i < 200; i++) {
      const next = matmul(acc, x);
      acc.dispose();
      acc = next;
    }
    // 200 products are queued behind a held queue, but only the live tensors hold memory.
    const key = device === 'cpu' ? 'peakHostBytes' : 'peakDeviceBytes';
    const now = device === 'cpu' ? 'hostBytes' : 'deviceBytes';
    expect(memory()[key] - base[now]).toBeLessThanOrEqual(2 * bytes);
    if (device === 'cpu') expect(hostReserved() - reserved).toBeLessThanOrEqual(4 * bytes);
    const out = await acc.data();
    expect(Math.abs(out[0] - 1 / n)).toBeLessThan(1e-6);
    acc.dispose();
  });

  it('zeros, uploads and copies between devices keep program order', async () => {
    const rng = new Rng(3);
    const data = rng.normals(300);
    using x = tensor(data, [300], { device });
    using held = hold(x, 30);
    using z = zeros([300], { device });
    using up = tensor(data, [300], { device, copy: true });
    const there = await held.to(device === 'cpu' ? 'cuda-emu' : 'cpu');
    const back = there.toSync(device);
    expect(Array.from(back.dataSync())).toEqual(Array.from(data));
    expect(Array.from(z.dataSync()).every((v) => v === 0)).toBe(true);
    expect(Array.from(await up.data())).toEqual(Array.from(data));
    there.dispose();
    back.dispose();
  });
});

describe('queued work and borrowed arrays', () => {
  it('keeps a zero-copy array alive after its tensor is disposed until the work has read it', async () => {
    const gc = (globalThis as { gc?: () => void }).gc!;
    const rng = new Rng(4);
    const ref = rng.normals(96 * 96);
    let out: Tensor;
    {
      const x = tensor(Float32Array.from(ref), [96, 96]); // borrows a fresh array
      const held = hold(x, 80);
      out = matmul(held, x);
      held.dispose();
      x.dispose();
    }
    // Nothing in JS refers to the array any more; collect as hard as possible meanwhile.
    for (let i = 0; i < 5; i++) {
      gc();
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(relError(await out.data(), matmulRef(ref, ref, 1, 96, 96, 96, false))).toBeLessThan(1e-5);
    out.dispose();
  });
});

describe('16-bit inputs on a device without 16-bit kernels', () => {
  it('are widened and the result narrowed back by the dispatcher', () => {
    const rng = new Rng(5);
    const a = rng.normals(12 * 20);
    const b = rng.normals(20 * 9);
    for (const dtype of ['bfloat16', 'float16'] as const) {
      using ta = tensor(a, [12, 20], { dtype });
      using tb = tensor(b, [20, 9], { dtype });
      using out = matmulSync(ta, tb);
      expect(out.dtype).toBe(dtype);
      using wide = out.cast('float32');
      // One rounding of inputs and output: bfloat16 ~2^-8, float16 ~2^-11 relative.
      expect(relError(wide.dataSync(), matmulRef(a, b, 1, 12, 20, 9, false))).toBeLessThan(dtype === 'bfloat16' ? 2e-2 : 3e-3);
    }
  });
});

describe('views', () => {
  const rng = new Rng(6);
  const data = rng.normals(2 * 3 * 4 * 5);
  const at = (i: number, j: number, k: number, l: number) => data[((i * 3 + j) * 4 + k) * 5 + l];

  it('reshape, permute, transpose, narrow and split share memory and read back right', () => {
    using x = tensor(data, [2, 3, 4, 5]);
    const before = memory();
    using p = x.permute([0, 2, 3, 1]);
    expect(p.shape).toEqual([2, 4, 5, 3]);
    expect(p.strides).toEqual([60, 5, 1, 20]);
    expect(p.isContiguous()).toBe(false);
    expect(memory().hostBytes).toBe(before.hostBytes);
    expect(memory().tensors).toBe(before.tensors + 1);
    const pd = p.dataSync();
    for (let i = 0; i < 2; i++) for (let k = 0; k < 4; k++) for (let l = 0; l < 5; l++) for (let j = 0; j < 3; j++)
      expect(pd[((i * 4 + k) * 5 + l) * 3 + j]).toBe(at(i, j, k, l));
    using t = x.transpose(1, -1);
    expect(t.shape).toEqual([2, 5, 4, 3]);
    using n = x.narrow(2, 1, 2);
    expect(n.shape).toEqual([2, 3, 2, 5]);
    const nd = n.dataSync();
    expect(nd[((1 * 3 + 2) * 2 + 1) * 5 + 4]).toBe(at(1, 2, 2, 4));
    const parts = x.split([1, 2], 1);
    expect(parts.map((q) => q.shape)).toEqual([[2, 1, 4, 5], [2, 2, 4, 5]]);
    expect(parts[1].dataSync()[0]).toBe(at(0, 1, 0, 0));
    parts.forEach((q) => q.dispose());
    using r = x.reshape([6, -1]);
    expect(r.shape).toEqual([6, 20]);
    expect(r.isContiguous()).toBe(true);
    // Reshaping a non-contiguous view copies.
    using rp = p.reshape([40, 3]);
    expect(Array.from(rp.dataSync())).toEqual(Array.from(pd));
  });

  it('ops take views; the dispatcher makes them contiguous where a kernel needs it', () => {
    const a = rng.normals(7 * 11);
    using x = tensor(a, [7, 11]);
    using xt = x.transpose(0, 1); // [11, 7], strided
    using out = matmulSync(xt, x); // [11, 11] = x^T x
    const at2 = new Float32Array(11 * 7);
    for (let i = 0; i < 7; i++) for (let j = 0; j < 11; j++) at2[j * 7 + i] = a[i * 11 + j];
    expect(relError(out.dataSync(), matmulRef(at2, a, 1, 11, 7, 11, false))).toBeLessThan(1e-5);
  });

  it('contiguous(channelsLast) keeps the NCHW shape with channels innermost', () => {
    using x = tensor(data, [2, 3, 4, 5]);
    using cl = x.contiguous('channelsLast');
    expect(cl.shape).toEqual([2, 3, 4, 5]);
    expect(cl.strides).toEqual([60, 1, 15, 3]);
    expect(Array.from(cl.dataSync())).toEqual(Array.from(data));
    using back = cl.contiguous();
    expect(back.strides).toEqual([60, 20, 5, 1]);
    expect(Array.from(back.dataSync())).toEqual(Array.from(data));
  });

  it('refuse views that leave the storage, with RangeErrors', () => {
    using x = tensor(data, [2, 3, 4, 5]);
    expect(() => x.narrow(0, 1, 2)).toThrow(RangeError);
    expect(() => x.permute([0, 0, 1, 2])).toThrow(RangeError);
    expect(() => x.reshape([7, -1])).toThrow(RangeError);
    expect(() => x.split([1, 1], 1)).toThrow(RangeError);
    expect(() => x.contiguous('nhwc' as never)).toThrow(RangeError);
  });
});

describe('worker threads', () => {
  const script = `
    const { parentPort, workerData } = require('node:worker_threads');
    const s = require(workerData.root + '/dist/cjs/index.js');
    const { runOp1 } = require(workerData.root + '/dist/cjs/ops/run.js');
    const x = s.tensor(new Float32Array(64 * 64).fill(0.25), [64, 64], { device: workerData.device });
    if (workerData.mode === 'compute') {
      let acc = s.matmul(x, x);
      for (let i = 0; i < 10; i++) { const n = s.matmul(acc, x); acc.dispose(); acc = n; }
      acc.data().then((d) => { acc.dispose(); x.dispose(); parentPort.postMessage(d[0]); });
    } else {
      // Queue a long op and work behind it, then end while it is queued or running.
      let acc = runOp1('_debug', { x }, { sleepMs: 300 });
      for (let i = 0; i < 50; i++) acc = s.matmul(acc, x);
      acc.data();
      parentPort.postMessage('queued');
      if (workerData.mode === 'exit') setTimeout(() => process.exit(3), 20);
    }
  `;
  const start = (mode: string, device: Device) =>
    new Worker(script, { eval: true, workerData: { root, mode, device }, env: process.env });

  it('compute in parallel with the main thread and each other', async () => {
    const results = await Promise.all(
      (['cpu', 'cuda-emu', 'cpu'] as Device[]).map(
        (device) =>
          new Promise<number>((resolve, reject) => {
            const w = start('compute', device);
            w.once('message', (v) => {
              w.terminate().then(() => resolve(v as number), reject);
            });
            w.once('error', reject);
          }),
      ),
    );
    // Each step maps the all-0.25 matrix to all 0.25 * 0.25 * 64 = 4 times itself... computed in doubles:
    let v = 0.25;
    for (let i = 0; i < 11; i++) v = v * 0.25 * 64;
    for (const r of results) expect(Math.abs(r - v) / v).toBeLessThan(1e-5);
  });

  it.each(['terminate', 'exit'])('end with queued and running work (%s) without taking the process down', async (mode) => {
    for (const device of ['cpu', 'cuda-emu'] as Device[]) {
      const w = start(mode, device);
      await new Promise((r) => w.once('message', r));
      if (mode === 'terminate') await w.terminate();
      else await new Promise((r) => w.once('exit', r));
    }
    // The main thread's queues still work.
    using x = tensor(new Float32Array([1, 2, 3, 4]), [2, 2]);
    using y = matmulSync(x, x);
    expect(Array.from(y.dataSync())).toEqual([7, 10, 15, 22]);
    using q = tensor(new Float32Array(2 * 8 * 4).fill(0.1), [1, 2, 8, 4], { device: 'cuda-emu' });
    using o = secAttention(q, q, q, { clusters: 2 });
    expect((await o.data()).length).toBe(64);
  });
});

describe.each(testDevices())('cast on %s', (device) => {
  it('float to int32 truncates toward zero, saturates at the int32 range and maps NaN to 0', () => {
    const v = [2.7, -2.7, 0.5, -0.5, 1e10, -1e10, 2147483520, -2147483648, NaN, Infinity, -Infinity, 123456.9];
    const want = [2, -2, 0, 0, 2147483647, -2147483648, 2147483520, -2147483648, 0, 2147483647, -2147483648, 123456];
    using x = tensor(Float32Array.from(v), [3, 4], { device });
    using i = x.cast('int32');
    expect(i.dtype).toBe('int32');
    expect(Array.from(i.dataSync() as Int32Array)).toEqual(want);
    // A transposed view takes the strided path.
    using t = x.transpose(0, 1);
    using it = t.cast('int32');
    const td = it.dataSync() as Int32Array;
    for (let r = 0; r < 4; r++) for (let c = 0; c < 3; c++) expect(td[r * 3 + c]).toBe(want[c * 4 + r]);
  });
});
