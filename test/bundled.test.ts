// The bundled model (models/secvit-fm.safetensors, trained by `secvit train` on Fashion-MNIST's
// training set): its test accuracy through `evaluate`, through `secvit eval` and through the
// pipeline (the same pixels by another road: 28 x 28 grey images in, its own preprocessing and
// class names), the samples it ships with, and a short training smoke on the real data from the
// command line. Needs Debian's dataset-fashion-mnist (CI installs it; SECVIT_REQUIRE_DATA=1
// turns its absence into a failure). SECVIT_SKIP_SLOW_DATA=1 (the AddressSanitizer run) skips the
// two real-data tests.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadIdx, pipeline, SecViT } from '../lib/index.js';
import { bundledModelPath, bundledModels } from '../lib/models/bundled.js';

const ROOT = resolve(__dirname, '..');
const FASHION = '/usr/share/datasets/fashion-mnist';
const haveData = (existsSync(FASHION) || process.env.SECVIT_REQUIRE_DATA === '1') && process.env.SECVIT_SKIP_SLOW_DATA !== '1';
const tmp = mkdtempSync(join(tmpdir(), 'secvit-bundled-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** The README's promise. */
const TARGET = 0.925;

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [join(ROOT, 'bin', 'secvit.mjs'), ...args], { encoding: 'utf8', cwd: tmp, env: { ...process.env, SECVIT_POISON: '' } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('the bundled model', () => {
  it('ships with its config, preprocessing, class names and provenance; info lists it', () => {
    const m = SecViT.load(bundledModelPath());
    try {
      expect(m.config.embedDims).toEqual([32, 64, 128, 256]);
      expect(m.preprocessing()).toMatchObject({ size: 32, cropPct: 1, interpolation: 'bilinear' });
      expect(m.classNames).toEqual(['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot']);
      const prov = JSON.parse(m.metadata.get('provenance')!);
      expect(prov.data).toBe('fashion-mnist');
      expect(prov.command).toMatch(/^secvit train --data \S+fashion-mnist --out \S+ --config secvit-fm /);
      expect(prov.finalTestTop1).toBeGreaterThanOrEqual(TARGET);
    } finally {
      m.dispose();
    }
    const r = cli('info', '--json');
    expect(r.code, r.err).toBe(0);
    const info = JSON.parse(r.out) as { bundledModels: { name: string; path: string; testTop1: number }[] };
    expect(info.bundledModels.map((b) => b.name)).toEqual(bundledModels().map((b) => b.name));
    expect(info.bundledModels[0]).toMatchObject({ name: 'secvit-fm', path: bundledModelPath() });
  });

  it('classifies the shipped samples (Fashion-MNIST test images) by name, without any weights given', async () => {
    const samples = readdirSync(join(ROOT, 'samples')).filter((f) => f.startsWith('fashion-')).map((f) => join(ROOT, 'samples', f));
    expect(samples.length).toBe(10);
    const r = cli('classify', ...samples, '--json', '--top-k', '3');
    expect(r.code, r.err).toBe(0);
    const out = JSON.parse(r.out) as { image: string; predictions: { label: string; score: number }[] }[];
    const slug = (l: string) => l.toLowerCase().replace(/[^a-z0-9]+/g, '-');
    const right = out.filter((o) => o.image.endsWith(`-${slug(o.predictions[0].label)}.png`)).length;
    // Ten images, one per class; at 92.5% per image, nine or ten right is the expectation.
    expect(right).toBeGreaterThanOrEqual(8);
  });

  it.runIf(haveData)('reaches the target on the 10,000 test images through secvit eval and through the pipeline, which agree', async () => {
    const r = cli('eval', '--data', FASHION, '--json');
    expect(r.code, r.err).toBe(0);
    const e = JSON.parse(r.out) as { top1: number; top5: number; loss: number; count: number };
    expect(e.count).toBe(10000);
    expect(e.top1).toBeGreaterThanOrEqual(TARGET);
    expect(e.top5).toBeGreaterThanOrEqual(e.top1);
    // The pipeline on the raw 28 x 28 grey images: its own resize and normalisation.
    const test = loadIdx(FASHION, 'test');
    const classify = await pipeline('image-classification');
    try {
      let right = 0;
      const per = 28 * 28;
      for (let start = 0; start < test.count; start += 500) {
        const images = Array.from({ length: Math.min(500, test.count - start) }, (_, i) => ({
          data: test.pixels.subarray((start + i) * per, (start + i + 1) * per), width: 28, height: 28, channels: 1,
        }));
        const preds = await classify(images, { topK: 1 });
        preds.forEach((p, i) => { if (p[0].index === test.labels[start + i]) right++; });
      }
      // The same pixels by both roads; the forward's batches differ (500 vs 256 rows), which may
      // move a near tie: at most a few images of 10,000.
      expect(Math.abs(right / test.count - e.top1)).toBeLessThanOrEqual(3e-4);
      expect(right / test.count).toBeGreaterThanOrEqual(TARGET);
    } finally {
      await classify.dispose();
    }
  }, 300_000);

  it.runIf(haveData)('a training smoke on real data from the command line: 2,048 images, 2 epochs, every file written', () => {
    const out = join(tmp, 'smoke');
    const r = cli('train', '--data', FASHION, '--out', out, '--config', 'secvit-fm', '--epochs', '2', '--limit', '2048', '--batch-size', '32',
      '--lr', '8e-3', '--warmup-epochs', '0', '--holdout', '1000', '--eval-every', '0', '--threads', '2', '--no-progress',
      '--mixup', '0', '--cutmix', '0', '--rand-augment', 'none', '--crop-scale', '0.6,1', '--ema', '0');
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/model\.safetensors: 2 epochs in [\d.]+ min, test top-1 [\d.]+% top-5 [\d.]+% \(10000 images\)/);
    expect(r.err.trim().split('\n')).toHaveLength(2);  // a line per epoch, piped
    expect(readdirSync(out).sort()).toEqual(['checkpoint.safetensors', 'curves.png', 'log.jsonl', 'model.safetensors']);
    const log = readFileSync(join(out, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(log.map((l) => l.epoch)).toEqual([1, 2]);
    expect(log[1].trainLoss).toBeLessThan(log[0].trainLoss);
    // Two short epochs (128 steps) already learn something (chance: 0.1). Fewer steps would not
    // show it in eval mode: batch norm's running variance starts at 1 against activations of
    // ~1e-3 (weights initialised at std 0.02), and momentum 0.1 needs ~100 steps to forget it.
    expect(log[1].valTop1).toBeGreaterThan(0.3);
    expect(log[0].testTop1).toBeUndefined();      // the test split only after the last epoch
    expect(log[1].testTop1).toBeGreaterThan(0.3);
  }, 300_000);
});
