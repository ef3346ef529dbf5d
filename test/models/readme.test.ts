// The README's model example, run as written (in a child process, importing 'secvit' as a user
// does), with only its placeholders filled: the checkpoint path (the authors'-style training
// checkpoint fixture), the image (`rgb01`) and the output path. Its results are checked here.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, test } from 'vitest';
import { normalize, SecViT, tensor } from '../../lib/index.js';

const repo = resolve(__dirname, '../..');
const checkpoint = resolve(__dirname, '../fixtures/micro_train.pth');

function readmeBlock(section: string): string {
  const md = readFileSync(join(repo, 'README.md'), 'utf8');
  const at = md.indexOf(`\n## ${section}\n`);
  expect(at, `README section "${section}"`).toBeGreaterThan(0);
  const m = /```ts\n([\s\S]*?)```/.exec(md.slice(at));
  expect(m, `a ts block in "${section}"`).not.toBeNull();
  return m![1];
}

describe('README', () => {
  test('the Models example runs as written and does what its comments say', () => {
    const dir = mkdtempSync(join(tmpdir(), 'secvit-readme-'));
    try {
      const out = join(dir, 'copy.safetensors');
      const code = readmeBlock('Models');
      expect(code).toContain("'secvit_t.pth'");
      expect(code).toContain("'copy.safetensors'");
      const script = [
        'const rgb01 = Float32Array.from({ length: 3 * 224 * 224 }, (_, i) => (i % 251) / 250);',
        code.replace("'secvit_t.pth'", JSON.stringify(checkpoint)).replace("'copy.safetensors'", JSON.stringify(out)),
        'console.log(JSON.stringify({ top, scores: Array.from(scores), feats: feats.map((f) => f.shape), blocks: blocks.length, shape: logits.shape }));',
      ].join('\n');
      const res = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: repo, encoding: 'utf8' }).trim());

      // The same steps here: the example's numbers are the model's.
      const rgb01 = Float32Array.from({ length: 3 * 224 * 224 }, (_, i) => (i % 251) / 250);
      using model = SecViT.load(checkpoint);
      using raw = tensor(rgb01, [1, 3, 224, 224]);
      using pixels = normalize(raw);
      using logits = model.forward(pixels);
      const want = logits.dataSync();
      expect(res.shape).toEqual([1, model.config.numClasses]);
      expect(res.scores).toEqual(Array.from(want));
      expect(res.top).toBe(want.indexOf(Math.max(...want)));
      expect(res.feats).toEqual(SecViT.stageSizes(224, 224).map(([h, w], i) => [1, model.config.embedDims[i], h, w]));
      expect(res.blocks).toBe(model.config.depths.reduce((a, b) => a + b, 0));
      // The saved copy loads and gives the same logits.
      using copy = SecViT.load(out);
      using again = copy.forward(pixels);
      expect(Array.from(again.dataSync())).toEqual(Array.from(want));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the Images and pipeline example runs as written: its classifications are the model\'s', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'secvit-readme-'));
    try {
      const images = resolve(__dirname, '../fixtures/images');
      const webp = join(dir, 'b.webp');
      const { default: sharp } = await import('sharp');
      await sharp(join(images, 'grey.png')).webp({ lossless: true }).toFile(webp);
      const code = readmeBlock('Images and the one-call pipeline');
      for (const p of ["'secvit_t.pth'", "'cat.jpg'", "'a.png'", "'b.webp'"]) expect(code).toContain(p);
      const script = [
        code.replace("'secvit_t.pth'", JSON.stringify(checkpoint)).replaceAll("'cat.jpg'", JSON.stringify(join(images, 'landscape.png')))
          .replace("'a.png'", JSON.stringify(join(images, 'portrait.png'))).replace("'b.webp'", JSON.stringify(webp)),
        'console.log(JSON.stringify({ top, perImage, shape: x.shape }));',
      ].join('\n');
      const res = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: repo, encoding: 'utf8' }).trim());
      expect(res.shape).toEqual([1, 3, 224, 224]);
      // The same steps by hand: preprocess, forward, the best logit.
      using model = SecViT.load(checkpoint);
      const { preprocess } = await import('../../lib/index.js');
      for (const [file, preds] of [[join(images, 'landscape.png'), res.top], [join(images, 'portrait.png'), res.perImage[0]], [webp, res.perImage[1]]] as const) {
        using x = await preprocess(file);
        using y = model.forward(x);
        const l = Array.from(y.dataSync());
        expect(preds).toHaveLength(5);
        expect(preds[0].index).toBe(l.indexOf(Math.max(...l)));
        expect(preds[0].label).toBe(`class ${preds[0].index}`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the Swin/ViT example runs as written: torchvision\'s .pth by its keys, SEC-Swin, an empty ViT-L', async () => {
    const code = readmeBlock('Swin, ViT and SEC inside them');
    for (const p of ["'swin_t-704ceda3.pth'", "'cat.jpg'"]) expect(code).toContain(p);
    const pth = resolve(__dirname, '../fixtures/swin_odd.pth');
    const img = resolve(__dirname, '../fixtures/images/landscape.png');
    const script = [
      code.replace("'swin_t-704ceda3.pth'", JSON.stringify(pth)).replace("'cat.jpg'", JSON.stringify(img)),
      'console.log(JSON.stringify({ logits: Array.from(logits.dataSync()), shape: logits.shape, stages: stages.map((f) => f.shape), sizes, x: x.shape }));',
    ].join('\n');
    const res = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: repo, encoding: 'utf8' }).trim());
    const { createModel, listModels, loadModel, noGrad, preprocess } = await import('../../lib/index.js');
    using swin = loadModel(pth);
    expect(res.x).toEqual([1, 3, 224, 224]);
    expect(res.shape).toEqual([1, 5]);
    expect(res.stages).toEqual([[1, 112, 112, 8], [1, 56, 56, 16], [1, 28, 28, 32]]);
    using x = await preprocess(img, swin.preprocessing());
    using y = noGrad(() => swin.forward(x));
    expect(res.logits).toEqual(Array.from(y.dataSync()));
    expect(res.sizes).toEqual([304_326_632, listModels().length]);
    using sec = createModel('sec-swin-t', { numClasses: 10, empty: true });
    expect(sec.numClasses).toBe(10);
  });
});
