// The autograd engine's contract (lib/autograd): which tensors require grad, what backward()
// accepts and refuses, how gradients accumulate, how the graph's memory is released (by
// backward, by disposing outputs, with tidy), and the errors for misuse. Gradients of the ops
// themselves are checked in test/grads.test.ts.
import { describe, expect, it } from 'vitest';
import {
  add, clipGradNorm, foldBatchNorm, gelu, matmul, memory, mul, noGrad, enableGrad, isGradEnabled, sum, tensor, tidy, zeros, DisposedError, type Tensor,
} from '../lib/index.js';

const data = (t: Tensor) => Array.from(t.dataSync() as Float32Array);

describe('requiresGrad', () => {
  it('is a leaf flag, set by option or assignment; computed tensors require grad when an input does', () => {
    const a = tensor([1, 2, 3], [3], { requiresGrad: true });
    const b = tensor([4, 5, 6]);
    const z = zeros([3], { requiresGrad: true });
    expect(a.requiresGrad).toBe(true);
    expect(a.isLeaf).toBe(true);
    expect(b.requiresGrad).toBe(false);
    expect(z.requiresGrad).toBe(true);
    b.requiresGrad = true;
    expect(b.requiresGrad).toBe(true);
    const c = mul(a, b);
    expect(c.requiresGrad).toBe(true);
    expect(c.isLeaf).toBe(false);
    expect(c.gradFn?.name).toBe('mul');
    expect(() => (c.requiresGrad = false)).toThrow(/only leaf tensors/);
    const i = tensor(new Int32Array([1, 2]));
    expect(() => (i.requiresGrad = true)).toThrow(TypeError);
    expect(() => tensor(new Int32Array([1]), [1], { requiresGrad: true })).toThrow(TypeError);
    expect(() => tensor([1], [1], { requiresGrad: 1 as never })).toThrow(TypeError);
    for (const t of [a, b, z, c, i]) t.dispose();
  });

  it('noGrad records nothing, also across awaits; enableGrad turns it back on; detach cuts the graph', async () => {
    const a = tensor([1, 2], [2], { requiresGrad: true });
    const y = noGrad(() => mul(a, 2));
    expect(y.requiresGrad).toBe(false);
    expect(y.gradFn).toBeNull();
    const y2 = await noGrad(async () => {
      await new Promise((r) => setTimeout(r, 1));
      expect(isGradEnabled()).toBe(false);
      return enableGrad(() => mul(a, 3));
    });
    expect(y2.requiresGrad).toBe(true);
    expect(isGradEnabled()).toBe(true);
    const d = a.detach();
    expect(d.requiresGrad).toBe(false);
    expect(data(d)).toEqual([1, 2]);
    for (const t of [a, y, y2, d]) t.dispose();
  });
});

describe('backward', () => {
  it('a leaf used through a transposing view gets a contiguous gradient (clipping and optimizers update it in place)', async () => {
    // Swin's bias table enters its gather as table^T: the gradient arrives transposed.
    const table = tensor([1, 2, 3, 4, 5, 6], [3, 2], { requiresGrad: true });
    const onehot = tensor([1, 0, 0, 1, 0, 1, 0, 0, 1, 1, 0, 0], [3, 4]);  // rows: t; columns: e
    const y = tidy(() => sum(mul(matmul(table.permute([1, 0]), onehot), tensor([1, 2, 3, 4, 5, 6, 7, 8], [2, 4]))));
    await y.backward();
    const g = table.grad!;
    expect(g.shape).toEqual([3, 2]);
    expect(g.isContiguous()).toBe(true);
    // d/dtable[t, h] = sum_e onehot[t, e] * w[h, e]: row t picks the columns e it is 1 in.
    expect(data(g)).toEqual([1 + 4, 5 + 8, 2, 6, 1 + 2, 5 + 6]);
    const norm = await clipGradNorm([table], 1);
    expect(norm).toBeCloseTo(Math.hypot(5, 13, 2, 6, 3, 11), 4);
    for (const t of [table, onehot, y]) t.dispose();
  });

  it('accumulates into .grad over calls; retainGraph allows a second pass; a freed graph says so', async () => {
    const x = tensor([1, 2, 3], [3], { requiresGrad: true });
    const y = tidy(() => sum(mul(x, x)));
    await y.backward(null, { retainGraph: true });
    expect(data(x.grad!)).toEqual([2, 4, 6]);
    await y.backward();
    expect(data(x.grad!)).toEqual([4, 8, 12]);
    await expect(async () => y.backward()).rejects.toThrow(/freed by an earlier backward\(\).*retainGraph/);
    x.grad = null;
    expect(x.grad).toBeNull();
    y.dispose();
    x.dispose();
  });

  it('refuses: a non-scalar without a gradient, a tensor that needs no grad, a wrong gradOutput, disposed tensors', async () => {
    const x = tensor([1, 2, 3, 4], [2, 2], { requiresGrad: true });
    const y = mul(x, 2);
    await expect(async () => y.backward()).rejects.toThrow(RangeError);
    await expect(async () => y.backward()).rejects.toThrow(/needs a gradient/);
    const c = tensor([1, 2]);
    const sc = sum(c);
    await expect(async () => sc.backward()).rejects.toThrow(/does not require grad/);
    sc.dispose();
    const wrong = tensor([1, 2, 3], [3]);
    await expect(async () => y.backward(wrong)).rejects.toThrow(/gradOutput must be a float32 \[2, 2\]/);
    const g = tensor([1, 1, 1, 1], [2, 2]);
    g.dispose();
    await expect(async () => y.backward(g)).rejects.toThrow(DisposedError);
    y.dispose();
    await expect(async () => y.backward()).rejects.toThrow(DisposedError);
    // The leaf itself disposed before backward: named as such.
    const l = tensor([1, 2], [2], { requiresGrad: true });
    const s = tidy(() => sum(mul(l, 3)));
    l.dispose();
    await expect(async () => s.backward()).rejects.toThrow(/leaf tensor that requires grad was disposed/);
    for (const t of [x, c, wrong, s]) t.dispose();
  });

  it('keeps what it needs: inputs and intermediates may be disposed (or scoped away) before backward', async () => {
    const x = tensor([0.5, -1, 2], [3], { requiresGrad: true });
    const w = tensor([3, 4, 5], [3]);
    const y = tidy(() => sum(gelu(mul(x, w))));
    w.dispose();
    await y.backward();
    const gw = [3, 4, 5];
    const want = [0.5, -1, 2].map((v, i) => {
      const u = v * gw[i];
      const cdf = 0.5 * (1 + erfApprox(u / Math.SQRT2));
      return gw[i] * (cdf + (u * Math.exp(-u * u / 2)) / Math.sqrt(2 * Math.PI));
    });
    data(x.grad!).forEach((g, i) => expect(g).toBeCloseTo(want[i], 5));
    y.dispose();
    x.dispose();
  });

  it('frees the graph when its outputs are disposed without backward', () => {
    const before = memory();
    const x = tensor(new Float32Array(1000).fill(1), [1000], { requiresGrad: true });
    const mid = memory();
    const y = tidy(() => gelu(mul(gelu(x), 2)));
    expect(memory().tensors).toBeGreaterThan(mid.tensors + 1);  // saved inputs of the graph
    y.dispose();
    expect(memory().tensors).toBe(mid.tensors);
    expect(memory().hostBytes).toBe(mid.hostBytes);
    x.dispose();
    expect(memory().tensors).toBe(before.tensors);
  });

  it('gives each leaf its own gradient memory when one gradient reaches two leaves', async () => {
    const a = tensor([1, 2], [2], { requiresGrad: true });
    const b = tensor([3, 4], [2], { requiresGrad: true });
    const s = tidy(() => sum(add(a, b)));
    await s.backward();
    s.dispose();
    expect(a.grad).not.toBe(b.grad);
    expect(a.grad!.handle('t').info().storage).not.toBe(b.grad!.handle('t').info().storage);
    a.grad = null;
    expect(data(b.grad!)).toEqual([1, 1]);
    a.dispose();
    b.dispose();
  });

  it('rejects with the op that has no gradient; the forward still runs', async () => {
    const w = tensor([1, 2, 3, 4], [2, 2], { requiresGrad: true });
    const m = tensor([0, 0]);
    const v = tensor([1, 1]);
    const f = foldBatchNorm(w, null, { runningMean: m, runningVar: v });
    expect(f.weight.requiresGrad).toBe(true);
    const s = sum(f.weight);
    await expect(async () => s.backward()).rejects.toThrow(/op 'foldBatchNorm' has no gradient/);
    for (const t of [w, m, v, f.weight, f.bias, s]) t.dispose();
  });

  it('grad assignment checks shape, dtype and device; the tensor owns it', () => {
    const x = tensor([1, 2], [2], { requiresGrad: true });
    const three = tensor([1, 2, 3]);
    expect(() => (x.grad = three)).toThrow(RangeError);
    three.dispose();
    expect(() => (x.grad = 3 as never)).toThrow(TypeError);
    const g = tidy(() => tensor([5, 6]));
    x.grad = tidy(() => {
      const h = tensor([7, 8]);
      return h;
    });
    expect(data(x.grad!)).toEqual([7, 8]);
    g.dispose();
    x.dispose();
    expect(x.grad).toBeNull();
  });
});

/** erf to ~1e-7 (Abramowitz & Stegun 7.1.26 is 1.5e-7: enough for toBeCloseTo(_, 5)). */
function erfApprox(x: number): number {
  const t = 1 / (1 + 0.3275911 * Math.abs(x));
  const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-x * x);
  return x >= 0 ? y : -y;
}
