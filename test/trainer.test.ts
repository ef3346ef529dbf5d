// Training as a product (fit / `secvit train`): determinism, exact resume (at an epoch boundary
// and mid-epoch), what the output folder holds, a NaN loss, checkpoints from elsewhere, a full
// disk, fine-tuning onto an image folder, and evaluation against a plain count.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  AdamW, crossEntropy, evaluate, fit, loadImageData, memory, noGrad, readSafetensors, resizeSet, SecViT, tensor, tidy,
  TrainingError, type ImageTransform,
} from '../lib/index.js';
import { main } from '../lib/cli.js';
import { Rng } from './helpers/random.js';
import { writeIdxDataset, writeImageFolder } from './helpers/datasets.js';

const ROOT = resolve(__dirname, '..');
const tmp = mkdtempSync(join(tmpdir(), 'secvit-train-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const TINY = JSON.stringify({
  embed_dims: [8, 16, 16, 32], depths: [1, 1, 1, 1], num_heads: [2, 2, 2, 4], num_clusterss: [4, 2, 2, -1], projection: 16, drop_path_rate: 0.1,
});
const IDX = join(tmp, 'idx');
writeIdxDataset(IDX, { train: 80, test: 30 });
// The whole recipe on (mixup/cutmix, RandAugment, erasing, EMA, clipping), short.
const RECIPE = { config: TINY, batchSize: 16, lr: 4e-3, warmupEpochs: 1, ema: 0.9, clipGrad: 1, threads: 2, seed: 5 } as const;

const bytes = (f: string) => readFileSync(f);
const weightsOf = (f: string) => {
  const st = readSafetensors(f);
  try {
    return new Map([...st.tensors].map(([k, t]) => [k, Buffer.from(t.read())]));
  } finally {
    st.close();
  }
};

describe('training', () => {
  it('eval-mode caches follow the parameters: after optimizer steps an eval forward equals a fresh model\'s', async () => {
    const model = SecViT.create(TINY, { seed: 2 });
    const x = tensor(new Rng(3).normals(2 * 3 * 32 * 32), [2, 3, 32, 32]);
    const evalLogits = () => {
      model.eval();
      return noGrad(() => tidy(() => model.forward(x).dataSync() as Float32Array));
    };
    evalLogits();  // caches folded batch norms
    const opt = new AdamW(model, { lr: 1e-2 });
    model.train();
    for (let i = 0; i < 3; i++) {
      const loss = tidy(() => crossEntropy(model.forward(x), [1, 4]));
      await loss.backward();
      loss.dispose();
      await opt.step();
      opt.zeroGrad();
    }
    const after = evalLogits();
    const copy = SecViT.create(TINY, { seed: 9 });
    copy.loadStateDict(model.stateDict());
    for (const [n, c] of model.namedCounters()) new Map(copy.namedCounters()).get(n)!.value = c.value;
    const fresh = noGrad(() => tidy(() => copy.eval().forward(x).dataSync() as Float32Array));
    expect(Array.from(after)).toEqual(Array.from(fresh));
    opt.dispose();
    model.dispose();
    copy.dispose();
    x.dispose();
  });

  it('the same seed gives the same weights; 1 epoch + resume to 2 equals 2 straight, bit for bit; the folder holds what it says', async () => {
    const base = memory().tensors;
    const a = join(tmp, 'a'), b = join(tmp, 'b'), c = join(tmp, 'c');
    const straight = await fit({ ...RECIPE, data: IDX, out: a, epochs: 2 });
    await fit({ ...RECIPE, data: IDX, out: b, epochs: 2 });
    await fit({ ...RECIPE, data: IDX, out: c, epochs: 1 });
    // Resuming needs only the checkpoint and the new total: the settings come from the checkpoint.
    const resumed = await fit({ data: IDX, out: c, epochs: 2, resume: join(c, 'checkpoint.safetensors'), threads: 2 });
    expect(memory().tensors).toBe(base);
    const wa = weightsOf(join(a, 'model.safetensors'));
    for (const other of [b, c]) {
      const wo = weightsOf(join(other, 'model.safetensors'));
      expect([...wo.keys()]).toEqual([...wa.keys()]);
      for (const [k, v] of wa) expect(wo.get(k)!.equals(v), `${other}: ${k}`).toBe(true);
    }
    // The checkpoints (optimizer, EMA, counters, generator) agree too, except their timings.
    const ca = weightsOf(join(a, 'checkpoint.safetensors')), cc = weightsOf(join(c, 'checkpoint.safetensors'));
    for (const [k, v] of ca) expect(cc.get(k)!.equals(v), k).toBe(true);
    expect(resumed.log.map((r) => r.trainLoss)).toEqual(straight.log.map((r) => r.trainLoss));
    // The log: one JSON line per epoch with the documented fields.
    const lines = readFileSync(join(a, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.length).toBe(2);
    for (const k of ['epoch', 'trainLoss', 'lr', 'testTop1', 'testTop5', 'imagesPerSecond', 'dataWait', 'seconds']) expect(lines[1]).toHaveProperty(k);
    expect(lines[1].testTop1).toBeGreaterThanOrEqual(0);
    expect(lines[1].testTop1).toBeLessThanOrEqual(1);
    // The model's metadata: its transform, classes and provenance; it loads and classifies.
    const model = SecViT.load(join(a, 'model.safetensors'));
    try {
      expect(model.preprocessing()).toMatchObject({ size: 32, cropPct: 1, interpolation: 'bilinear' });
      expect(model.classNames).toEqual(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
      const prov = JSON.parse(model.metadata.get('provenance')!);
      expect(prov).toMatchObject({ epochs: 2, trainImages: 80, weights: 'ema' });
      expect(prov.finalTestTop1).toBe(straight.test!.top1);
    } finally {
      model.dispose();
    }
    expect(bytes(join(a, 'curves.png')).subarray(1, 4).toString()).toBe('PNG');
  }, 240_000);

  it('Swin and SEC-ViT train through fit too: resume to 2 epochs equals 2 straight; the model loads as its family with its transform', async () => {
    const swin = JSON.stringify({ family: 'swin', patchSize: 4, embedDim: 8, depths: [1, 2], numHeads: [1, 2], windowSize: 3, mlpRatio: 2, imageSize: 32 });
    const vit = { family: 'vit', imageSize: 32, patchSize: 8, numLayers: 2, numHeads: 2, hiddenDim: 16, mlpDim: 32, attention: 'sec', numClusters: 3 };
    const base = memory().tensors;
    const s1 = join(tmp, 'swin-straight'), s2 = join(tmp, 'swin-resumed');
    const straight = await fit({ ...RECIPE, config: swin, data: IDX, out: s1, epochs: 2 });
    await fit({ ...RECIPE, config: swin, data: IDX, out: s2, epochs: 1 });
    const resumed = await fit({ data: IDX, out: s2, epochs: 2, resume: join(s2, 'checkpoint.safetensors'), threads: 2 });
    expect(resumed.log.map((r) => r.trainLoss)).toEqual(straight.log.map((r) => r.trainLoss));
    const wa = weightsOf(join(s1, 'model.safetensors')), wb = weightsOf(join(s2, 'model.safetensors'));
    for (const [k, v] of wa) expect(wb.get(k)!.equals(v), k).toBe(true);
    // 8x8 tokens padded to 9x9 for 3x3 windows, then 4x4 padded to 6x6 with a shifted block.
    expect(wa.has('features.3.1.attn.relative_position_index')).toBe(true);
    const v = await fit({ ...RECIPE, config: vit, data: IDX, out: join(tmp, 'vit'), epochs: 1 });
    expect(Number.isFinite(v.log[0].trainLoss)).toBe(true);
    // A ViT's input size is its position embedding's.
    await expect(fit({ ...RECIPE, config: vit, data: IDX, out: join(tmp, 'vit2'), epochs: 1, inputSize: 64 })).rejects.toThrow(/does not fit the ViT's position embedding \(imageSize 32\)/);
    const { loadModel, SwinTransformer } = await import('../lib/index.js');
    const m = loadModel(join(s1, 'model.safetensors'));
    try {
      expect(m).toBeInstanceOf(SwinTransformer);
      expect(m.preprocessing()).toMatchObject({ size: 32, cropPct: 1, resize: 32, interpolation: 'bilinear' });
      expect(m.classNames).toHaveLength(10);
    } finally {
      m.dispose();
    }
    expect(memory().tensors).toBe(base);
  }, 240_000);

  it('a run stopped mid-epoch (Ctrl-C) saves a checkpoint; resuming it equals the straight run', async () => {
    const a = join(tmp, 'a');  // from the test above: 2 epochs straight
    if (!existsSync(join(a, 'model.safetensors'))) await fit({ ...RECIPE, data: IDX, out: a, epochs: 2 });
    const d = join(tmp, 'd');
    let steps = 0;
    // shouldStop is asked after every step and at every epoch's end: 5 + 1 calls in epoch 1, then
    // the 8th is after epoch 2's second step (of 5).
    const stopped = await fit({ ...RECIPE, data: IDX, out: d, epochs: 2, shouldStop: () => ++steps === 8 });
    expect(stopped.stopped).toBe(true);
    expect(existsSync(join(d, 'model.safetensors'))).toBe(false);
    const meta = JSON.parse(readSafetensors(join(d, 'checkpoint.safetensors')).metadata.get('secvit_checkpoint')!);
    expect([meta.epoch, meta.batch]).toEqual([1, 2]);
    await fit({ ...RECIPE, data: IDX, out: d, epochs: 2, resume: join(d, 'checkpoint.safetensors') });
    const wa = weightsOf(join(a, 'model.safetensors')), wd = weightsOf(join(d, 'model.safetensors'));
    for (const [k, v] of wa) expect(wd.get(k)!.equals(v), k).toBe(true);
  }, 240_000);

  it('a NaN loss stops the run naming the step; the last good checkpoint is kept', async () => {
    const e = join(tmp, 'e');
    // One step per epoch; epoch 1 at the warmup's tiny rate, epoch 2 at an absurd one: its update
    // blows the weights up, and epoch 3's loss is not finite.
    const opts = { ...RECIPE, data: IDX, out: e, epochs: 3, limit: 16, lr: 1e30, warmupLr: 1e-9, ema: 0, clipGrad: null, mixup: 0, cutmix: 0 };
    const err = await fit(opts).catch((x: unknown) => x);
    expect(err).toBeInstanceOf(TrainingError);
    expect((err as Error).message).toMatch(/the loss is (NaN|Infinity) at epoch 3, step 1 of 1; stopped\. The last good checkpoint is .*checkpoint\.safetensors/);
    const meta = JSON.parse(readSafetensors(join(e, 'checkpoint.safetensors')).metadata.get('secvit_checkpoint')!);
    expect(meta.epoch).toBe(2);
  }, 120_000);

  it('resuming with another config or other settings is refused, naming what differs', async () => {
    const ck = join(tmp, 'a', 'checkpoint.safetensors');
    if (!existsSync(ck)) await fit({ ...RECIPE, data: IDX, out: join(tmp, 'a'), epochs: 2 });
    const other = JSON.stringify({ ...JSON.parse(TINY), projection: 24 });
    await expect(fit({ ...RECIPE, config: other, data: IDX, out: join(tmp, 'f'), epochs: 3, resume: ck })).rejects.toThrow(/checkpoint is of another config/);
    await expect(fit({ ...RECIPE, batchSize: 8, data: IDX, out: join(tmp, 'f'), epochs: 3, resume: ck })).rejects.toThrow(/batchSize 16 \(now 8\)/);
    await expect(fit({ ...RECIPE, data: IDX, out: join(tmp, 'f'), epochs: 3, resume: join(tmp, 'a', 'model.safetensors') })).rejects.toThrow(/not a training checkpoint/);
  }, 120_000);

  it('a full disk while saving leaves the previous file as it was, and no temporary file', () => {
    // RLIMIT_FSIZE stands in for a full disk: writes past 16 KiB fail (EFBIG; SIGXFSZ ignored).
    const dir = join(tmp, 'disk');
    const script = `
      const { writeFileAtomic } = await import(${JSON.stringify(join(ROOT, 'dist', 'esm', 'io', 'atomic.js'))});
      const fs = await import('node:fs');
      fs.mkdirSync(${JSON.stringify(dir)}, { recursive: true });
      const f = ${JSON.stringify(join(dir, 'checkpoint.safetensors'))};
      writeFileAtomic(f, new Uint8Array(4096).fill(7));
      try { writeFileAtomic(f, new Uint8Array(1 << 20).fill(9)); console.log('no error'); }
      catch (e) { console.log(e.message); }
      console.log(JSON.stringify(fs.readdirSync(${JSON.stringify(dir)})));`;
    const r = spawnSync('bash', ['-c', `ulimit -f 16; trap '' XFSZ; exec "${process.execPath}" --input-type=module -e "$0"`, script], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    const [msg, files] = r.stdout.trim().split('\n');
    expect(msg).toMatch(/cannot write .*checkpoint\.safetensors: .*(EFBIG|too large).*the previous file, if any, is unchanged/i);
    expect(JSON.parse(files)).toEqual(['checkpoint.safetensors']);
    expect(readFileSync(join(dir, 'checkpoint.safetensors'))).toEqual(Buffer.alloc(4096, 7));
  });

  it('fine-tunes onto an image folder with other classes: a new head; a linear probe changes the head only', async () => {
    const src = join(tmp, 'a', 'model.safetensors');
    if (!existsSync(src)) await fit({ ...RECIPE, data: IDX, out: join(tmp, 'a'), epochs: 2 });
    const folder = join(tmp, 'folder');
    writeImageFolder(folder, { classes: ['cat', 'dog', 'owl'], perClass: 6, valPerClass: 3, side: 40 });
    const out = join(tmp, 'ft');
    const r = await fit({ ...RECIPE, data: folder, out, epochs: 1, batchSize: 6, inputSize: 32, finetune: src, linearProbe: true, ema: 0 });
    expect(r.test?.count).toBe(9);
    const before = weightsOf(src), after = weightsOf(join(out, 'model.safetensors'));
    for (const [k, v] of after) {
      if (k.startsWith('head.')) expect(v.length).toBe(k.endsWith('weight') ? 3 * 16 * 4 : 3 * 4);
      else if (!k.includes('running_') && !k.includes('num_batches')) expect(v.equals(before.get(k)!), k).toBe(true);
    }
    const m = SecViT.load(join(out, 'model.safetensors'));
    expect(m.classNames).toEqual(['cat', 'dog', 'owl']);
    m.dispose();
  }, 120_000);

  it('fine-tunes from the authors\' .pth (a training checkpoint with args and optimizer): their trunk, a new 3-class head', async () => {
    const pth = join(ROOT, 'test', 'fixtures', 'micro_train.pth');
    const config = JSON.stringify({
      embed_dims: [8, 16, 16, 32], depths: [1, 1, 1, 1], num_heads: [2, 2, 2, 4], num_clusterss: [[32], [8], [2], [-1]],
      mlp_ratios: [3, 3, 3, 3], layerscales: [false, false, true, true], projection: 16, num_classes: 5,
    });
    const folder = join(tmp, 'folder-pth');
    writeImageFolder(folder, { classes: ['a', 'b', 'c'], perClass: 4, valPerClass: 2, side: 36 });
    const out = join(tmp, 'ft-pth');
    await fit({ ...RECIPE, config, data: folder, out, epochs: 1, batchSize: 4, inputSize: 32, finetune: pth, linearProbe: true, ema: 0 });
    const theirs = SecViT.load(pth, { config });
    const ours = SecViT.load(join(out, 'model.safetensors'));
    try {
      expect(ours.config.numClasses).toBe(3);
      const t = theirs.stateDict();
      let compared = 0;
      for (const [k, v] of ours.stateDict()) {
        if (k.startsWith('head.') || k.includes('running_')) continue;
        expect(Array.from(v.dataSync()), k).toEqual(Array.from(t.get(k)!.dataSync()));
        compared++;
      }
      expect(compared).toBeGreaterThan(50);
    } finally {
      theirs.dispose();
      ours.dispose();
    }
  }, 120_000);

  it('Ctrl-C (SIGINT) in secvit train saves a checkpoint, says how to resume and exits 130', async () => {
    const out = join(tmp, 'sigint');
    const child = spawn(process.execPath, [join(ROOT, 'bin', 'secvit.mjs'), 'train', '--data', IDX, '--out', out, '--config', TINY, '--epochs', '500', '--batch-size', '8', '--threads', '1'],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
    await new Promise<void>((res) => child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      if (err.includes('epoch 1/500:')) res();
    }));
    child.kill('SIGINT');
    const code = await exited;
    expect(code, err).toBe(130);
    expect(err).toMatch(/interrupted; saving a checkpoint at the next step/);
    expect(err).toMatch(/stopped; resume with --resume .*checkpoint\.safetensors/);
    const meta = JSON.parse(readSafetensors(join(out, 'checkpoint.safetensors')).metadata.get('secvit_checkpoint')!);
    expect(meta.epoch * 10 + meta.batch).toBeGreaterThanOrEqual(10);  // at least the first epoch's 10 steps
    expect(existsSync(join(out, 'model.safetensors'))).toBe(false);
  }, 120_000);

  it('secvit train on a terminal: a live line with epoch, step, loss, img/s and ETA, then a line per epoch; eval --confusion writes a PNG', async () => {
    const writes: string[] = [], errs: string[] = [], outs: string[] = [];
    const out = join(tmp, 'cli');
    const code = await main(['train', '--data', IDX, '--out', out, '--config', TINY, '--epochs', '1', '--batch-size', '8', '--threads', '2'],
      { out: (s) => outs.push(s), err: (s) => errs.push(s), write: (s) => writes.push(s), progress: true });
    expect(code, errs.join('\n')).toBe(0);
    expect(writes.some((w) => /^\repoch 1\/1 step 10\/10 loss \d+\.\d{4} \d+ img\/s eta \d+s/.test(w))).toBe(true);
    expect(errs.filter((e) => e.startsWith('epoch 1/1: loss'))).toHaveLength(1);
    expect(outs[0]).toMatch(/model\.safetensors: 1 epoch in [\d.]+ min, test top-1/);
    const png = join(tmp, 'confusion.png');
    const e: string[] = [];
    expect(await main(['eval', '--data', IDX, '--weights', join(out, 'model.safetensors'), '--json', '--confusion', png], { out: (s) => e.push(s), err: (s) => e.push(s) })).toBe(0);
    expect(JSON.parse(e[0])).toMatchObject({ count: 30 });
    expect(Object.keys(JSON.parse(e[0])).sort()).toEqual(['count', 'loss', 'top1', 'top5']);
    expect(readFileSync(png).subarray(1, 4).toString()).toBe('PNG');
  }, 120_000);

  it('evaluate counts what an argmax over the logits counts', async () => {
    const model = SecViT.load(join(tmp, 'a', 'model.safetensors'));
    const data = await loadImageData(IDX);
    const set = resizeSet(data.test!, 32, 'bilinear');
    const pre = model.preprocessing();
    const t: ImageTransform = { size: 32, outChannels: 3, mean: [...pre.mean], std: [...pre.std], train: false, augment: { cropScale: null, cropRatio: [1, 1], flip: 0, randAugment: null, reprob: 0 } };
    const r = await evaluate(model, set, t, { batchSize: 7, workers: 0 });
    // The reference: one forward over all 30 images, normalised here.
    const n = set.count, px = 32 * 32;
    const x = new Float32Array(n * 3 * px);
    for (let i = 0; i < n; i++) for (let c = 0; c < 3; c++) for (let p = 0; p < px; p++) x[(i * 3 + c) * px + p] = (set.pixels[i * px + p] / 255 - pre.mean[c]) / pre.std[c];
    const logits = noGrad(() => tidy(() => model.eval().forward(tensor(x, [n, 3, 32, 32])).dataSync() as Float32Array));
    let right = 0, nll = 0;
    for (let i = 0; i < n; i++) {
      const row = Array.from(logits.subarray(i * 10, i * 10 + 10));
      const arg = row.indexOf(Math.max(...row));
      if (arg === set.labels[i]) right++;
      const m = Math.max(...row);
      nll += Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0)) + m - row[set.labels[i]];
    }
    expect(r.count).toBe(30);
    expect(r.top1).toBe(right / n);
    expect(Math.abs(r.loss - nll / n) / (nll / n)).toBeLessThan(1e-5);  // the same float32 logits, summed in another order
    expect(r.confusion.reduce((s, v) => s + v, 0)).toBe(30);
    model.dispose();
  }, 60_000);
});
