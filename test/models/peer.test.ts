// secvit against the yardstick users compare it with: the authors' SecViT-T exported to ONNX and
// run by onnxruntime-node (../shared/peers; see its README). Same weights (the safetensors file
// holds the float16-exact values the ONNX file was made from), same random input.
// onnxruntime-node is a devDependency whose download of CUDA providers package.json denies (its CPU
// build ships in the npm package; allowScripts: { "onnxruntime-node": false }).
import { createRequire } from 'node:module';
import { describe, expect, test } from 'vitest';
import { SecViT, tensor } from '../../lib/index.js';
import { sharedFile } from '../helpers/shared.js';
import { relError, Rng } from '../helpers/random.js';

type Ort = typeof import('onnxruntime-node');
const onnx = sharedFile('peers/secvit_t.onnx');
const weights = sharedFile('peers/secvit_t.weights.safetensors');
const ort: Ort = createRequire(import.meta.url)('onnxruntime-node');

describe.skipIf(!onnx || !weights)('onnxruntime-node peer: SecViT-T (secvit_t.onnx)', () => {
  test('cpu, batch 2, 224 x 224: logits agree with onnxruntime-node within 1e-4; same top-1', async () => {
    const session = await ort.InferenceSession.create(onnx!, { intraOpNumThreads: 2 });
    try {
      const dims = [2, 3, 224, 224];
      const x = new Rng(21).normals(2 * 3 * 224 * 224);
      const feeds = { pixels: new ort.Tensor('float32', x, dims) };
      const { logits: want } = await session.run(feeds);
      // The config comes from the file's metadata (projection and classes at their defaults).
      using model = SecViT.load(weights!);
      expect(model.config.embedDims).toEqual([64, 128, 256, 512]);
      // An onnxruntime tensor goes in as it is.
      using xt = tensor(feeds.pixels);
      using got = model.forward(xt);
      expect(got.shape).toEqual(want.dims);
      const g = await got.data();
      const w = want.data as Float32Array;
      // float32 on both sides, different summation orders through ~40 layers: seen 3.5e-7.
      const err = relError(g, w);
      expect(err).toBeLessThan(1e-4);
      console.log(`secvit vs onnxruntime-node, SecViT-T logits: relative error ${err.toExponential(2)}`);
      for (let b = 0; b < 2; b++) {
        const row = (a: ArrayLike<number>) => Array.from({ length: 1000 }, (_, i) => a[b * 1000 + i]);
        const argmax = (r: number[]) => r.indexOf(Math.max(...r));
        expect(argmax(row(g))).toBe(argmax(row(w)));
      }
    } finally {
      await session.release();
    }
  });
});
