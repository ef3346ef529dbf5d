// Training the whole model against ../shared/golden/tiny.train.safetensors: the authors' SecViT
// in train mode, differentiated in float64 by torch.autograd (its README says how). One step:
// train-mode logits, cross-entropy with label smoothing 0.1, backward; then two AdamW steps on
// two batches (timm's weight-decay grouping). Targets (issue 18): every parameter's gradient
// within 1e-3 relative (norm), measured against a floor for gradients that are zero in exact
// arithmetic (a conv bias before a batch norm in train mode: its golden value is float64
// rounding noise); the running statistics after the forward within 1e-4; the parameters after
// two AdamW steps within 2% of their update. PyTorch in float32 on these goldens: worst
// gradient 2.7e-4 against the floor, running statistics 3e-7, parameters 0.6%.
import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { AdamW, crossEntropy, memory, noGrad, SecViT, tensor, tidy, type Device } from '../../lib/index.js';
import { readAll, sharedFile } from '../helpers/shared.js';
import { relError } from '../helpers/random.js';
import { testDevices } from '../helpers/backends.js';

const goldenTrain = sharedFile('golden/tiny.train.safetensors');
const goldenWeights = sharedFile('golden/tiny.weights.safetensors');

const f32 = (a: Float64Array): Float32Array => Float32Array.from(a);
const norm = (a: ArrayLike<number>): number => Math.sqrt(Array.from(a).reduce((s, v) => s + v * v, 0));

describe.skipIf(!goldenTrain || !goldenWeights)('golden: training the authors\' model (tiny config, 4 x 96 x 128)', () => {
  const g = goldenTrain ? readAll(goldenTrain) : new Map<string, { shape: number[]; data: Float64Array }>();
  const input = (step: number) => {
    const i = g.get(`step${step}.input`)!;
    return { x: tensor(f32(i.data), i.shape), labels: Int32Array.from(g.get(`step${step}.labels`)!.data) };
  };

  // cuda-emu runs every kernel emulated: the forward and backward of this batch take ~30 s there.
  const devices = testDevices();
  test.each(devices)('%s: train-mode logits, every gradient, running statistics, two AdamW steps', async (device: Device) => {
    const before = memory();
    using model = SecViT.load(goldenWeights!, { device, config: { ...JSON.parse(readConfig()), drop_path_rate: 0 } });
    model.train();
    const initial = new Map([...model.namedParameters()].map(([n, t]) => [n, Float64Array.from(t.dataSync() as Float32Array)]));

    // Step 0: forward in train mode, the loss, backward.
    const s0 = input(0);
    const x0 = await s0.x.to(device);
    // Results are awaited (off the event loop) before they are read: on cuda-emu a synchronous
    // read would block the test worker for longer than vitest's RPC deadline.
    const logits0 = model.forward(x0);
    expect(relError(await logits0.data(), g.get('step0.logits')!.data), 'train-mode logits').toBeLessThan(1e-4);
    const loss0 = crossEntropy(logits0, s0.labels, { labelSmoothing: 0.1 });
    logits0.dispose();
    const losses = JSON.parse(readMeta('losses')) as number[];
    expect((loss0.dataSync() as Float32Array)[0]).toBeCloseTo(losses[0], 4);
    await loss0.backward();
    await Promise.all(model.parameters().map((p) => p.grad!.ready()));

    // Gradients: each against max(its own norm, a floor of 1e-3 x the RMS of all gradient norms).
    const names = [...model.namedParameters()].map(([n]) => n);
    const refNorms = names.map((n) => norm(g.get(`grad.${n}`)!.data));
    const floor = Math.sqrt(refNorms.reduce((s, v) => s + v * v, 0) / refNorms.length) * 1e-3;
    for (const [name, p] of model.namedParameters()) {
      const ref = g.get(`grad.${name}`)!;
      expect(p.grad, `${name}.grad`).not.toBeNull();
      expect(p.grad!.shape).toEqual(ref.shape);
      const got = p.grad!.dataSync() as Float32Array;
      const diff = norm(Array.from(got, (v, i) => v - ref.data[i]));
      const err = diff / Math.max(norm(ref.data), floor);
      expect(err, `grad.${name}`).toBeLessThan(1e-3);
    }
    // Running statistics after the forward (momentum 0.1, unbiased variance), and the counters.
    for (const [name, t] of model.namedBuffers()) {
      const ref = g.get(`after_forward.${name}`);
      if (!ref) continue;
      expect(relError(t.dataSync(), ref.data), `after_forward.${name}`).toBeLessThan(1e-4);
    }
    for (const [name, c] of model.namedCounters()) expect(c.value, name).toBe(1n);

    // Two AdamW steps on two batches (the golden's optimizer: lr 1e-3, weight decay 0.05 with
    // timm's grouping). Not on cuda-emu: a second forward and backward there cost ~30 s, and its
    // AdamW kernel has its own test (test/optim.test.ts).
    if (device === 'cuda-emu') {
      for (const t of [s0.x, x0, loss0]) t.dispose();
      model.dispose();
      expect(memory().tensors).toBe(before.tensors);
      return;
    }
    const opt = new AdamW(model, { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.05 });
    expect(opt.paramGroups.map((pg) => pg.settings.weightDecay)).toEqual([0.05, 0]);
    await opt.step();
    opt.zeroGrad();
    const s1 = input(1);
    const x1 = await s1.x.to(device);
    const loss1 = tidy(() => crossEntropy(model.forward(x1), s1.labels, { labelSmoothing: 0.1 }));
    expect((loss1.dataSync() as Float32Array)[0]).toBeCloseTo(losses[1], 3);
    await loss1.backward();
    await opt.step();
    opt.zeroGrad();
    // A parameter whose gradient is zero in exact arithmetic (below the floor above) has no
    // update in the golden; in float32 its gradient is rounding noise (~1e-8 here, in any float32
    // implementation), which Adam normalises into steps of up to ~lr: it may move by at most
    // that, twice. Every other parameter lands within 2% of its update.
    for (const [name, p] of model.namedParameters()) {
      const ref = g.get(`after_step2.${name}`)!.data;
      const start = initial.get(name)!;
      const got = p.dataSync() as Float32Array;
      if (norm(g.get(`grad.${name}`)!.data) < floor) {
        const moved = Math.max(...Array.from(got, (v, i) => Math.abs(v - ref[i])));
        expect(moved, `after_step2.${name} (a zero-gradient parameter)`).toBeLessThan(2 * 1.5e-3);
        continue;
      }
      const update = norm(Array.from(ref, (v, i) => v - start[i]));
      const off = norm(Array.from(got, (v, i) => v - ref[i]));
      expect(off / update, `after_step2.${name}: off by ${off} of an update of ${update}`).toBeLessThan(0.02);
    }
    opt.dispose();
    for (const t of [s0.x, x0, loss0, s1.x, x1, loss1]) t.dispose();
    model.dispose();
    expect(memory().tensors, 'only what the test made is gone').toBe(before.tensors);
  });

  test('parameters require grad after loading; noGrad forwards record nothing; requiresGrad(false) freezes a subtree', () => {
    using model = SecViT.load(goldenWeights!);
    expect(model.namedParameters().every(([, t]) => t.requiresGrad)).toBe(true);
    expect(model.namedBuffers().every(([, t]) => !t.requiresGrad)).toBe(true);
    const x = tensor(new Float32Array(1 * 3 * 64 * 64).fill(0.5), [1, 3, 64, 64]);
    const a = noGrad(() => model.forward(x));
    expect(a.requiresGrad).toBe(false);
    const b = model.forward(x);
    expect(b.requiresGrad).toBe(true);
    expect(b.gradFn).not.toBeNull();
    model.requiresGrad(false);
    model.head.requiresGrad(true);
    expect(model.namedParameters().filter(([, t]) => t.requiresGrad).map(([n]) => n)).toEqual(['head.weight', 'head.bias']);
    const c = model.forward(x);
    expect(c.requiresGrad).toBe(true);
    for (const t of [x, a, b, c]) t.dispose();
  });
});

function readConfig(): string {
  return readMeta('config');
}

function readMeta(key: string): string {
  // The metadata of a safetensors file: its JSON header's __metadata__.
  const buf = readFileSync(goldenTrain!);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as { __metadata__: Record<string, string> };
  return header.__metadata__[key];
}

