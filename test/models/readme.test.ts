// The README's Models, Images/pipeline and Swin/ViT examples, run as written in a child process
// from a user's project (node_modules/secvit is this package), on the bundled model and the shipped
// samples; the values they print or leave are checked against the same steps done here.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { listModels, noGrad, preprocess, SecViT } from '../../lib/index.js';
import { readmeBlocks, REPO, userProject } from '../helpers/readme.js';

function readmeBlock(section: string): string {
  const found = readmeBlocks().filter((b) => b.section === section);
  expect(found, `one code block under "${section}"`).toHaveLength(1);
  return found[0].code;
}

/** Runs `code` (then `epilogue`) as an ES module in a fresh user project; its stdout and folder. */
function runInProject(code: string, epilogue: string, check: (stdout: string, dir: string) => void): void {
  const project = userProject();
  try {
    const stdout = execFileSync(process.execPath, ['--input-type=module'], { input: `${code}\n${epilogue}`, cwd: project.dir, encoding: 'utf8' });
    check(stdout, project.dir);
  } finally {
    project.dispose();
  }
}

const bundled = join(REPO, 'models', 'secvit-fm.safetensors');
const sample = (name: string) => join(REPO, 'samples', name);

describe('README', () => {
  test('the Models example runs as written and does what its comments say', async () => {
    const code = readmeBlock('Models');
    // Its results, with the same steps here.
    using model = SecViT.load(bundled);
    using pixels = await preprocess(sample('fashion-0009-sneaker.png'), model.preprocessing());
    using logits = noGrad(() => model.forward(pixels));
    const want = Array.from(logits.dataSync());
    const top = want.indexOf(Math.max(...want));
    runInProject(code, `console.log(JSON.stringify({ top, scores: Array.from(scores), feats: feats.map((f) => f.shape), blocks: blocks.length, shape: logits.shape, pixels: pixels.shape }));`, (stdout, dir) => {
      const [name, json] = stdout.trim().split('\n');
      const res = JSON.parse(json);
      // `console.log(model.classNames[top]);  // Sneaker`
      expect(name).toBe('Sneaker');
      expect(model.classNames![top]).toBe('Sneaker');
      expect(res.pixels).toEqual([1, 3, 32, 32]);
      expect(res.shape).toEqual([1, 10]);
      expect(res.scores).toEqual(want);
      expect(res.top).toBe(top);
      expect(res.feats).toEqual(model.config.embedDims.map((e, i) => [1, e, 8 >> i, 8 >> i]));
      expect(res.blocks).toBe(model.config.depths.reduce((a, b) => a + b, 0));
      // The saved copy loads and gives the same logits.
      expect(existsSync(join(dir, 'copy.safetensors'))).toBe(true);
      using copy = SecViT.load(join(dir, 'copy.safetensors'));
      using again = noGrad(() => copy.forward(pixels));
      expect(Array.from(again.dataSync())).toEqual(want);
    });
  });

  test('the Images and pipeline example runs as written: its classifications are the bundled model\'s', async () => {
    const code = readmeBlock('Images and the one-call pipeline');
    runInProject(code, 'console.log(JSON.stringify({ top, perImage, shape: x.shape }));', (stdout) => {
      const [line, json] = stdout.trim().split('\n');
      // `console.log(top[0].label, perImage.map((p) => p[0].label));  // Ankle boot [ 'Pullover', 'Trouser' ]`
      expect(line).toBe("Ankle boot [ 'Pullover', 'Trouser' ]");
      const res = JSON.parse(json);
      expect(res.shape).toEqual([1, 3, 224, 224]);
      expect(res.top).toHaveLength(3);
      expect(res.top[0]).toMatchObject({ label: 'Ankle boot', index: 9 });
      expect(res.top[0].score).toBeGreaterThan(0.5);
      expect(res.perImage.map((p: { index: number }[]) => p[0].index)).toEqual([2, 1]);
    });
  });

  test('the Swin/ViT example runs as written: Swin-T and its stages, SEC-Swin, an empty ViT-L', () => {
    const code = readmeBlock('Swin, ViT and SEC inside them');
    runInProject(code, 'console.log(JSON.stringify({ sizes, x: x.shape }));', (stdout) => {
      const lines = stdout.trim().split('\n');
      const res = JSON.parse(lines[lines.length - 1]);
      expect(res.x).toEqual([1, 3, 224, 224]);
      expect(res.sizes).toEqual([304_326_632, listModels().length]);
      // `console.log(logits.shape, stages.map((s) => s.shape), sizes)`
      expect(lines.slice(0, -1).join(' ').replace(/\s+/g, ' ')).toBe(
        `[ 1, 1000 ] [ [ 1, 56, 56, 96 ], [ 1, 28, 28, 192 ], [ 1, 14, 14, 384 ], [ 1, 7, 7, 768 ] ] [ 304326632, ${listModels().length} ]`);
    });
  });
});
