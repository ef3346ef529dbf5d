// pipeline('image-classification'): images -> preprocess -> forward -> softmax -> top k, checked
// against doing those steps by hand (double-precision softmax over the model's own logits).
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { IMAGENET_CLASSES, memory, pipeline, preprocess, SecViT } from '../lib/index.js';

const FIX = resolve(__dirname, 'fixtures');
const MICRO = resolve(FIX, 'micro.model.safetensors'); // 5 classes
const IMAGES = ['landscape.png', 'portrait.png', 'grey.png'].map((n) => resolve(FIX, 'images', n));

/** Softmax in double and indices sorted by logit, by hand. */
function byHand(logits: Float32Array, classes: number, row: number) {
  const r = Array.from(logits.subarray(row * classes, (row + 1) * classes));
  const m = Math.max(...r);
  const e = r.map((v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return r.map((_, i) => i).sort((a, b) => r[b] - r[a]).map((i) => ({ index: i, score: e[i] / s }));
}

describe('pipeline("image-classification")', () => {
  it('one image and a batch give the model\'s softmax top k, best first', async () => {
    const before = memory();
    const classify = await pipeline('image-classification', MICRO, { topK: 3 });
    const model = SecViT.load(MICRO);
    const x = await preprocess(IMAGES);
    const y = model.forward(x);
    const logits = (await y.data()) as Float32Array;
    [x, y].forEach((t) => t.dispose());
    model.dispose();

    const one = await classify(IMAGES[0]);
    expect(one).toHaveLength(3);
    const want = byHand(logits, 5, 0);
    one.forEach((p, i) => {
      expect(p.index).toBe(want[i].index);
      expect(p.label).toBe(`class ${want[i].index}`); // 5 classes: no ImageNet names
      expect(p.score).toBeCloseTo(want[i].score, 6);
    });
    const all = await classify(IMAGES, { topK: 5 });
    expect(all).toHaveLength(3);
    all.forEach((preds, row) => {
      const w = byHand(logits, 5, row);
      expect(preds.map((p) => p.index)).toEqual(w.map((p) => p.index));
      expect(preds.reduce((a, p) => a + p.score, 0)).toBeCloseTo(1, 6);
    });
    await classify.dispose();
    await classify.dispose();
    await expect(classify(IMAGES[0])).rejects.toThrow(/disposed/);
    const after = memory();
    expect([after.tensors, after.hostBytes]).toEqual([before.tensors, before.hostBytes]);
  });

  it('labels: ImageNet-1k for 1000 classes, the caller\'s names otherwise; options checked', async () => {
    expect(IMAGENET_CLASSES).toHaveLength(1000);
    expect(IMAGENET_CLASSES[0]).toBe('tench');
    expect(IMAGENET_CLASSES[281]).toBe('tabby');
    await using named = await pipeline('image-classification', MICRO, { labels: ['a', 'b', 'c', 'd', 'e'], topK: 1 });
    const [best] = await named(IMAGES[1]);
    expect(['a', 'b', 'c', 'd', 'e'][best.index]).toBe(best.label);
    await expect(named(IMAGES[1], { topK: 0 })).rejects.toThrow(/topK must be a positive integer/);
    await expect(pipeline('image-classification', MICRO, { labels: ['x'] })).rejects.toThrow(/labels has 1 names, the model has 5 classes/);
    await expect(pipeline('text-generation' as 'image-classification', MICRO)).rejects.toThrow(RangeError);
    await expect(pipeline('image-classification', resolve(FIX, 'missing.safetensors'))).rejects.toThrow();
  });

  it('a model the caller made is used and not disposed', async () => {
    using model = SecViT.load(MICRO);
    const classify = await pipeline('image-classification', model);
    expect(classify.model).toBe(model);
    expect(await classify(IMAGES[2])).toHaveLength(5);
    await classify.dispose();
    expect(model.disposed).toBe(false);
  });

  it('warns once when the model\'s weights are random (onWarning, else a process warning); a loaded checkpoint does not', async () => {
    const { createModel } = await import('../lib/index.js');
    const m = createModel({ family: 'vit', imageSize: 32, patchSize: 8, numLayers: 1, numHeads: 1, hiddenDim: 8, mlpDim: 8, numClasses: 3 }, { seed: 1 });
    expect(m.randomWeights).toBe(true);
    const said: string[] = [];
    const c = await pipeline('image-classification', m, { onWarning: (w) => said.push(w) });
    await c.dispose();
    expect(said).toEqual(['the model holds random (untrained) weights, so its predictions mean nothing']);
    const seen: Error[] = [];
    const listener = (w: Error) => seen.push(w);
    process.on('warning', listener);
    try {
      const d = await pipeline('image-classification', m);
      await d.dispose();
      await new Promise((r) => setTimeout(r, 10));  // warnings are emitted on the next tick
    } finally {
      process.off('warning', listener);
    }
    expect(seen.map((w) => (w as Error & { code?: string }).code)).toEqual(['SECVIT_RANDOM_WEIGHTS']);
    m.dispose();
    const quiet: string[] = [];
    const e = await pipeline('image-classification', MICRO, { onWarning: (w) => quiet.push(w) });
    await e.dispose();
    expect(quiet).toEqual([]);
  });
});
