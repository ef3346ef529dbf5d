// Training's memory contract (issue 18): after backward() and zeroGrad() memory() holds the
// parameters, gradients and optimizer state only; backward frees each node's saved activations as
// it passes (its peak stays near the forward's); a long run of steps does not grow; tidy and the
// graph work together (intermediates scoped away, the graph kept by the loss).
import { describe, expect, it } from 'vitest';
import {
  AdamW, crossEntropy, fusedLinear, memory, resetPeakMemory, SecViT, sum, tensor, tidy, type Tensor,
} from '../lib/index.js';
import { Rng } from './helpers/random.js';

const bytesOf = (ts: Tensor[]) => ts.reduce((s, t) => s + t.size * 4, 0);

describe('training memory', () => {
  it('after backward and zeroGrad only parameters, gradients and optimizer state remain; a long run does not grow', async () => {
    const base = memory();
    const model = SecViT.create({
      embed_dims: [8, 16, 16, 32], depths: [1, 1, 1, 1], num_heads: [2, 2, 2, 4], num_clusterss: [4, 2, 2, -1],
      projection: 16, num_classes: 5, drop_path_rate: 0.2,
    }, { seed: 3 });
    model.train();
    const params = model.parameters();
    const buffers = model.namedBuffers().map(([, t]) => t);
    const rng = new Rng(5);
    const x = tensor(rng.normals(2 * 3 * 32 * 32), [2, 3, 32, 32]);
    const y = [1, 4];
    const opt = new AdamW(model, { lr: 1e-3 });
    const step = async () => {
      const loss = tidy(() => crossEntropy(model.forward(x), y));
      await loss.backward();
      loss.dispose();
      await opt.step();
    };
    await step();
    // Gradients present: parameters + buffers + the input + gradients + AdamW's two moments.
    const held = bytesOf(params) + bytesOf(buffers) + x.size * 4;
    expect(memory().hostBytes - base.hostBytes).toBe(held + 3 * bytesOf(params));
    opt.zeroGrad();
    expect(memory().hostBytes - base.hostBytes).toBe(held + 2 * bytesOf(params));
    const settled = memory();
    // 1,000 steps: the same tensors and bytes after every one.
    for (let i = 0; i < 999; i++) {
      await step();
      opt.zeroGrad();
      const now = memory();
      if (now.tensors !== settled.tensors || now.hostBytes !== settled.hostBytes)
        throw new Error(`step ${i + 2}: memory() ${now.tensors} tensors, ${now.hostBytes} bytes; after the first step ${settled.tensors}, ${settled.hostBytes}`);
    }
    opt.dispose();
    model.dispose();
    x.dispose();
    expect(memory().tensors).toBe(base.tensors);
  }, 300_000);

  it('backward releases each node\'s saved activations as it passes: its peak stays near the forward\'s', async () => {
    // A chain of 12 linear layers over 4096 rows of 64: the saved activations (1 MiB each)
    // dwarf the weights (16 KiB each). Without release backward would hold every activation
    // and every gradient at once (about twice the forward's memory).
    const rng = new Rng(9);
    const ws = Array.from({ length: 12 }, () => tensor(rng.normals(64 * 64, 0.1), [64, 64], { requiresGrad: true }));
    const x = tensor(rng.normals(4096 * 64), [4096, 64]);
    resetPeakMemory();
    const before = memory();
    const loss = tidy(() => {
      let h = x;
      for (const w of ws) h = fusedLinear(h, w, null, { activation: 'gelu' });
      return sum(h);
    });
    loss.waitSync();
    const forwardEnd = memory().hostBytes;
    const activations = forwardEnd - before.hostBytes;
    expect(activations).toBeGreaterThan(12 * 2 * 4096 * 64 * 4 * 0.9);  // inputs and pre-activations
    resetPeakMemory();
    await loss.backward();
    const peak = memory().peakHostBytes;
    // The peak is the forward's memory plus a few gradients in flight, far from twice it.
    expect(peak - forwardEnd).toBeLessThan(6 * 4096 * 64 * 4);
    // After backward: the graph's saved tensors are gone; the loss and the weights' gradients remain.
    expect(memory().hostBytes - before.hostBytes).toBeLessThan(bytesOf(ws) + 1024);
    loss.dispose();
    for (const w of ws) w.dispose();
    x.dispose();
  });
});
