// Optimizers (AdamW, SGD), clipGradNorm, the losses' argument errors and dropout's masks, on
// every device: each update checked against a float64 reference written from PyTorch's
// documented algorithm (torch.optim.AdamW / SGD), over several steps with fresh gradients.
// Tolerance: float32 arithmetic per element, relative 2e-6 of the parameters after 4 steps.
import { describe, expect, it } from 'vitest';
import {
  AdamW, SGD, clipGradNorm, crossEntropy, dropout, dropPath, manualSeed, memory, tensor, tidy, type Tensor,
} from '../lib/index.js';
import { testDevices } from './helpers/backends.js';
import { Rng, relError } from './helpers/random.js';

const f32 = (t: Tensor) => Float64Array.from(t.dataSync() as Float32Array);

function adamwRef(w: Float64Array, grads: Float64Array[], lr: number, b1: number, b2: number, eps: number, wd: number): Float64Array {
  const p = Float64Array.from(w);
  const m = new Float64Array(w.length);
  const v = new Float64Array(w.length);
  grads.forEach((g, s) => {
    const t = s + 1;
    for (let i = 0; i < p.length; i++) {
      p[i] *= 1 - lr * wd;
      m[i] = b1 * m[i] + (1 - b1) * g[i];
      v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
      const mh = m[i] / (1 - b1 ** t);
      const vh = v[i] / (1 - b2 ** t);
      p[i] -= (lr * mh) / (Math.sqrt(vh) + eps);
    }
  });
  return p;
}

function sgdRef(w: Float64Array, grads: Float64Array[], lr: number, mom: number, damp: number, wd: number, nesterov: boolean): Float64Array {
  const p = Float64Array.from(w);
  const buf = new Float64Array(w.length);
  grads.forEach((g, s) => {
    for (let i = 0; i < p.length; i++) {
      let d = g[i] + wd * p[i];
      if (mom !== 0) {
        buf[i] = s === 0 ? d : mom * buf[i] + (1 - damp) * d;
        d = nesterov ? d + mom * buf[i] : buf[i];
      }
      p[i] -= lr * d;
    }
  });
  return p;
}

for (const device of testDevices()) {
  describe(`optimizers on ${device}`, () => {
    const run = async (make: (p: Tensor[]) => AdamW | SGD, ref: (w: Float64Array, g: Float64Array[]) => Float64Array) => {
      const rng = new Rng(11);
      const shapes = [[7, 5], [13]];
      const params = shapes.map((s) => tensor(rng.normals(s.reduce((a, b) => a * b, 1)), s, { device, requiresGrad: true }));
      const start = params.map(f32);
      const grads: Float64Array[][] = params.map(() => []);
      const opt = make(params);
      for (let step = 0; step < 4; step++) {
        params.forEach((p, i) => {
          const g = rng.normals(p.size);
          grads[i].push(Float64Array.from(g));
          p.grad = tensor(g, p.shape, { device });
        });
        await opt.step();
        opt.zeroGrad();
        expect(params.every((p) => p.grad === null)).toBe(true);
      }
      params.forEach((p, i) => expect(relError(f32(p), ref(start[i], grads[i])), `param ${i}`).toBeLessThan(2e-6));
      opt.dispose();
      for (const p of params) p.dispose();
    };

    it('AdamW matches torch.optim.AdamW over 4 steps (weight decay decoupled, bias correction)', async () => {
      await run((p) => new AdamW(p, { lr: 1e-2, betas: [0.8, 0.95], eps: 1e-6, weightDecay: 0.05 }),
        (w, g) => adamwRef(w, g, 1e-2, 0.8, 0.95, 1e-6, 0.05));
    });
    it('SGD with momentum, dampening and weight decay', async () => {
      await run((p) => new SGD(p, { lr: 0.05, momentum: 0.9, dampening: 0.1, weightDecay: 1e-3 }), (w, g) => sgdRef(w, g, 0.05, 0.9, 0.1, 1e-3, false));
    });
    it('SGD with Nesterov momentum, and plain SGD', async () => {
      await run((p) => new SGD(p, { lr: 0.02, momentum: 0.7, nesterov: true }), (w, g) => sgdRef(w, g, 0.02, 0.7, 0, 0, true));
      await run((p) => new SGD(p, { lr: 0.1 }), (w, g) => sgdRef(w, g, 0.1, 0, 0, 0, false));
    });

    it('clipGradNorm returns the norm and scales gradients above maxNorm', async () => {
      const a = tensor([3, 0, 0], [3], { device, requiresGrad: true });
      const b = tensor([0, 4], [2], { device, requiresGrad: true });
      a.grad = tensor([3, 0, 0], [3], { device });
      b.grad = tensor([0, 4], [2], { device });
      expect(await clipGradNorm([a, b], 10)).toBeCloseTo(5, 5);
      expect(f32(a.grad!)).toEqual(Float64Array.from([3, 0, 0]));
      expect(await clipGradNorm([a, b], 1)).toBeCloseTo(5, 5);
      const scaled = [...f32(a.grad!), ...f32(b.grad!)];
      expect(Math.hypot(...scaled)).toBeCloseTo(1, 4);
      a.dispose();
      b.dispose();
    });
  });
}

describe('optimizer state and errors', () => {
  it('stateDict/loadStateDict resume exactly; dispose frees the state', async () => {
    const before = memory();
    const make = () => tensor([0.5, -1, 2], [3], { requiresGrad: true });
    const p1 = make();
    const p2 = make();
    const o1 = new AdamW([p1], { lr: 0.1 });
    const o2 = new AdamW([p2], { lr: 0.5 });
    for (const [o, p] of [[o1, p1], [o2, p2]] as const) {
      p.grad = tensor([1, 2, 3]);
      await o.step();
    }
    const sd = o1.stateDict();
    expect(sd.paramGroups[0].lr).toBe(0.1);
    expect(sd.state[0].step).toBe(1);
    o2.loadStateDict(sd);
    p2.grad = null;
    // Same state, same parameter values from here: the same next step.
    p2.dispose();
    const p3 = tensor(p1.dataSync() as Float32Array, [3], { requiresGrad: true, copy: true });
    const o3 = new AdamW([p3], { lr: 0.3 });
    o3.loadStateDict(o1.stateDict());
    for (const [o, p] of [[o1, p1], [o3, p3]] as const) {
      p.grad = tensor([-1, 0.5, 4]);
      await o.step();
    }
    expect(Array.from(p3.dataSync())).toEqual(Array.from(p1.dataSync()));
    for (const o of [o1, o2, o3]) o.dispose();
    for (const p of [p1, p3]) p.dispose();
    expect(memory().tensors).toBe(before.tensors);
    expect(() => o1.zeroGrad()).toThrow(/disposed/);
  });

  it('rejects bad parameters, settings and groups', () => {
    const p = tensor([1, 2], [2], { requiresGrad: true });
    const frozen = tensor([1, 2], [2]);
    expect(() => new AdamW([frozen])).toThrow(/leaf tensor that requires grad/);
    expect(() => new AdamW([p, p])).toThrow(/appears twice/);
    expect(() => new AdamW([p], { betas: [1, 0.9] })).toThrow(RangeError);
    expect(() => new AdamW([{ params: [p], momentum: 0.9 }])).toThrow(/unknown setting 'momentum'/);
    expect(() => new SGD([p], { lr: 0.1, nesterov: true })).toThrow(/Nesterov/);
    expect(() => new SGD([p], {} as never)).toThrow(TypeError);
    const half = tensor([1, 2], [2], { dtype: 'bfloat16', requiresGrad: true });
    expect(() => new AdamW([half])).toThrow(/float32/);
    const o = new AdamW([p]);
    expect(() => (o.lr = -1)).toThrow(RangeError);
    o.lr = 0.5;
    expect(o.paramGroups[0].settings.lr).toBe(0.5);
    o.dispose();
    for (const t of [p, frozen, half]) t.dispose();
  });
});

describe('losses and randomness: arguments', () => {
  it('crossEntropy: target dtype, shape and range errors name what is wrong', async () => {
    const z = tensor(new Float32Array(12), [3, 4]);
    const floats = tensor([1, 2, 3]);
    expect(() => crossEntropy(z, floats)).toThrow(/probability target must have logits' shape \[3,4\]/);
    const halves = tensor([1, 2, 3], [3], { dtype: 'float16' });
    expect(() => crossEntropy(z, halves)).toThrow(/int32 class indices or probabilities of the logits' dtype/);
    floats.dispose();
    halves.dispose();
    expect(() => tidy(() => crossEntropy(z, [1, 2]))).toThrow(/must be \[3\]/);
    expect(() => crossEntropy(z, [0, 1, 2], { labelSmoothing: 2 })).toThrow(RangeError);
    expect(() => crossEntropy(z, [0, 1, 2], { reduction: 'avg' as never })).toThrow(TypeError);
    const bad = crossEntropy(z, [0, 9, 2]);
    await expect(bad.data()).rejects.toThrow(/target\[1\] = 9 is outside the classes \[0, 4\)/);
    bad.dispose();
    z.dispose();
  });

  it('dropout and dropPath: values 0 or 1/(1-p), about p dropped, per sample for dropPath, seeded', () => {
    const one = tensor(new Float32Array(64 * 50).fill(1), [64, 50]);
    manualSeed(3);
    const d1 = dropout(one, 0.25);
    manualSeed(3);
    const d2 = dropout(one, 0.25);
    const a = d1.dataSync() as Float32Array;
    expect(Array.from(d2.dataSync())).toEqual(Array.from(a));
    const kept = a.filter((v) => v !== 0);
    expect(kept.every((v) => Math.abs(v - 1 / 0.75) < 1e-6)).toBe(true);
    expect(Math.abs(1 - kept.length / a.length - 0.25)).toBeLessThan(0.03);
    const dp = dropPath(one, 0.5);
    const rows = dp.dataSync() as Float32Array;
    for (let r = 0; r < 64; r++) {
      const row = rows.subarray(r * 50, (r + 1) * 50);
      expect(row.every((v) => v === row[0]), `sample ${r} is all kept or all dropped`).toBe(true);
    }
    expect(() => dropout(one, 1)).toThrow(RangeError);
    for (const t of [one, d1, d2, dp]) t.dispose();
  });
});

