// The SecViT paper's comparison in miniature (issue 20), on Fashion-MNIST at 32 x 32:
//   SecViT (secvit-fm) with SEC vs window vs global attention, and Swin vs SEC-Swin (a small
//   Swin for 32 x 32 inputs), each trained with one recipe and budget from 3 seeds.
//
//   node bench/compare.mjs accuracy [--seeds 0,1,2] [--models a,b] [--out bench/results/compare-fm.json]
//       trains every (model, seed) with `secvit train` (one process each, 2 threads, one at a
//       time) and records the test top-1 / top-5 after the last epoch; results are written after
//       every run, and runs already in the file are skipped (the table can be built in pieces).
//   node bench/compare.mjs speed [--rounds 7]
//       training steps (batch 128: forward, loss, backward, AdamW) and inference (batch 256) of
//       every model, interleaved round by round so that the machine's noise hits all alike;
//       medians with min-max, images/s.
//   node bench/compare.mjs table
//       FLOPs per image (counted from the configs) and the markdown table of both.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const DATA = '/usr/share/datasets/fashion-mnist';

const SWIN_MINI = { family: 'swin', patchSize: 2, embedDim: 32, depths: [2, 2, 2], numHeads: [1, 2, 4], windowSize: 4, mlpRatio: 3, imageSize: 32 };
export const MODELS = {
  'secvit-fm (SEC)': 'secvit-fm',
  'secvit-fm (window)': { ...secvitFm(), attention: 'window' },
  'secvit-fm (global)': { ...secvitFm(), attention: 'global' },
  'swin-mini': SWIN_MINI,
  'sec-swin-mini': { ...SWIN_MINI, attention: 'sec' },
};

function secvitFm() {
  return {
    embed_dims: [32, 64, 128, 256], depths: [1, 2, 3, 1], num_heads: [1, 2, 4, 8],
    num_clusterss: [[4], [2, 2], [1, 1, 1], [-1]], mlp_ratios: [3, 3, 3, 3], projection: 512, num_classes: 10, drop_path_rate: 0.05,
  };
}

// One recipe and budget for all: the bundled model's recipe, 3 epochs of the first 20,000
// training images, the whole 10,000-image test split at the end.
export const RECIPE = [
  '--epochs', '3', '--limit', '20000', '--batch-size', '128', '--lr', '8e-3', '--warmup-epochs', '1', '--holdout', '0',
  '--eval-every', '0', '--crop-scale', '0.6,1', '--rand-augment', 'none', '--mixup', '0', '--cutmix', '0', '--reprob', '0.25',
  '--ema', '0', '--threads', '2',
];

function args(argv) {
  const o = {};
  for (let i = 0; i < argv.length; i++) if (argv[i].startsWith('--')) o[argv[i].slice(2)] = argv[i + 1]?.startsWith('--') ? true : argv[++i];
  return o;
}

function accuracy(opts) {
  const out = opts.out ?? path.join(here, 'results', 'compare-fm.json');
  mkdirSync(path.dirname(out), { recursive: true });
  const results = existsSync(out) ? JSON.parse(readFileSync(out, 'utf8')) : { recipe: RECIPE.join(' '), runs: [] };
  const seeds = (opts.seeds ?? '0,1,2').split(',').map(Number);
  const names = opts.models ? opts.models.split(',') : Object.keys(MODELS);
  for (const seed of seeds) {
    for (const name of names) {
      if (results.runs.some((r) => r.model === name && r.seed === seed)) continue;
      const dir = path.join(os.tmpdir(), `secvit-compare-${process.pid}`);
      rmSync(dir, { recursive: true, force: true });
      const model = typeof MODELS[name] === 'string' ? MODELS[name] : JSON.stringify(MODELS[name]);
      const cmd = ['bin/secvit.mjs', 'train', '--data', DATA, '--out', dir, '--model', model, '--seed', String(seed), ...RECIPE, '--no-progress'];
      const t0 = performance.now();
      execFileSync(process.execPath, cmd, { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
      const seconds = (performance.now() - t0) / 1000;
      const log = readFileSync(path.join(dir, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
      const last = log.filter((r) => r.epoch !== undefined).at(-1);
      results.runs.push({
        model: name, seed, testTop1: last.testTop1, testTop5: last.testTop5, trainLoss: last.trainLoss, seconds: Math.round(seconds),
        trainImagesPerSecond: Math.round(log.filter((r) => r.epoch !== undefined).reduce((a, r) => a + r.imagesPerSecond, 0) / log.filter((r) => r.epoch !== undefined).length),
        command: `secvit train --data ${DATA} --out DIR --model '${model}' --seed ${seed} ${RECIPE.join(' ')}`,
      });
      writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
      console.log(`${name} seed ${seed}: test top-1 ${(last.testTop1 * 100).toFixed(2)}% in ${seconds.toFixed(0)} s`);
      rmSync(dir, { recursive: true, force: true });
    }
  }
}

async function speed(opts) {
  const { createModel, crossEntropy, tensor, noGrad, AdamW, setNumThreads, getNumThreads } = await import('../dist/esm/index.js');
  setNumThreads(Number(opts.threads ?? 2));
  const rounds = Number(opts.rounds ?? 7);
  const names = opts.models ? opts.models.split(',') : Object.keys(MODELS);
  const trainB = 128, inferB = 256;
  const rnd = (n, seed) => {
    let s = seed >>> 0;
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      s = (s * 1664525 + 1013904223) >>> 0;
      a[i] = s / 2 ** 32 - 0.5;
    }
    return a;
  };
  const xTrain = tensor(rnd(trainB * 3 * 32 * 32, 1), [trainB, 3, 32, 32]);
  const xInfer = tensor(rnd(inferB * 3 * 32 * 32, 2), [inferB, 3, 32, 32]);
  const labels = Array.from({ length: trainB }, (_, i) => i % 10);
  const models = names.map((n) => {
    const m = createModel(MODELS[n], { numClasses: 10, seed: 0 });
    return { name: n, m, opt: new AdamW(m, { lr: 1e-3, weightDecay: 0.05 }), train: [], infer: [] };
  });
  const step = async (e) => {
    e.m.train();
    const t0 = performance.now();
    const logits = e.m.forward(xTrain);
    const loss = crossEntropy(logits, labels, { labelSmoothing: 0.1 });
    await loss.backward();
    await e.opt.step();
    e.opt.zeroGrad({ setToNone: true });
    loss.dataSync();
    loss.dispose();
    logits.dispose();
    return performance.now() - t0;
  };
  const infer = (e) => {
    e.m.eval();
    const t0 = performance.now();
    const y = noGrad(() => e.m.forward(xInfer));
    y.dataSync();
    y.dispose();
    return performance.now() - t0;
  };
  for (const e of models) {
    await step(e);
    infer(e);
  }  // warm-up
  for (let r = 0; r < rounds; r++) {
    for (const e of models) {
      e.train.push(await step(e));
      e.infer.push(infer(e));
    }
  }
  const med = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
  const out = {
    machine: `${os.cpus()[0]?.model} x ${os.availableParallelism()}`, threads: getNumThreads(), rounds, trainBatch: trainB, inferBatch: inferB,
    models: models.map((e) => ({
      model: e.name,
      trainStepMs: { median: med(e.train), min: Math.min(...e.train), max: Math.max(...e.train) },
      trainImagesPerSecond: Math.round((trainB * 1000) / med(e.train)),
      inferMs: { median: med(e.infer), min: Math.min(...e.infer), max: Math.max(...e.infer) },
      inferImagesPerSecond: Math.round((inferB * 1000) / med(e.infer)),
      parameters: e.m.parameterCount,
    })),
  };
  for (const e of models) {
    e.opt.dispose();
    e.m.dispose();
  }
  xTrain.dispose();
  xInfer.dispose();
  const file = opts.out ?? path.join(here, 'results', 'compare-fm-speed.json');
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);
  for (const m of out.models)
    console.log(`${m.model}: train ${m.trainStepMs.median.toFixed(0)} ms/step [${m.trainStepMs.min.toFixed(0)}-${m.trainStepMs.max.toFixed(0)}] ${m.trainImagesPerSecond} img/s; inference ${m.inferMs.median.toFixed(0)} ms [${m.inferMs.min.toFixed(0)}-${m.inferMs.max.toFixed(0)}] ${m.inferImagesPerSecond} img/s`);
}

// ---- FLOPs per image (2 x multiply-adds), counted from the configs ---------------------------
// Convolutions, projections and the attention's two products (QK^T, PV) over the groups each
// token attends within; normalisations, activations and softmax are left out (as fvcore does).
export function flops(name, size = 32) {
  const c = MODELS[name];
  let macs = 0;
  if (typeof c === 'string' || c.family === undefined) {
    const cfg = typeof c === 'string' ? secvitFm() : c;
    const attention = cfg.attention ?? 'sec';
    const e = cfg.embed_dims, half = e[0] / 2;
    let h = Math.ceil(size / 2);
    macs += h * h * 3 * half * 9 + 2 * h * h * half * half * 9;
    h = Math.ceil(h / 2);
    macs += h * h * half * e[0] * 9;
    for (let i = 0; i < 4; i++) {
      const L = h * h, E = e[i], hid = Math.floor(E * cfg.mlp_ratios[i]);
      for (let j = 0; j < cfg.depths[i]; j++) {
        const C = Math.max(1, cfg.num_clusterss[i][j]);
        const group = attention === 'global' ? L : L / C;  // windows: as many as clusters, same size
        macs += L * E * 9 + L * E * 3 * E + L * E * 25 + 2 * L * group * E + L * E * E + L * E * hid + L * hid * 9 + L * hid * E;
      }
      if (i < 3) {
        const ho = Math.ceil(h / 2);
        macs += ho * ho * E * e[i + 1] * 9;
        h = ho;
      }
    }
    macs += h * h * e[3] * cfg.projection + cfg.projection * 10;
  } else {
    let h = Math.floor(size / c.patchSize), C = c.embedDim;
    macs += h * h * 3 * c.patchSize * c.patchSize * C;
    c.depths.forEach((d, i) => {
      const hp = Math.ceil(h / c.windowSize) * c.windowSize;
      const L = h * h, Lp = hp * hp, win = c.windowSize * c.windowSize;
      const clusters = Math.ceil(h / c.windowSize) ** 2;
      for (let j = 0; j < d; j++) {
        if (c.attention === 'sec') macs += L * C * 3 * C + 2 * L * (L / clusters) * C;
        else macs += Lp * C * 3 * C + 2 * Lp * win * C;
        macs += L * C * C + 2 * L * C * C * c.mlpRatio;
      }
      if (i < c.depths.length - 1) {
        const ho = Math.ceil(h / 2);
        macs += ho * ho * 4 * C * 2 * C;
        h = ho;
        C *= 2;
      }
    });
    macs += C * 10;
  }
  return 2 * macs;
}

function table() {
  const acc = JSON.parse(readFileSync(path.join(here, 'results', 'compare-fm.json'), 'utf8'));
  const spd = existsSync(path.join(here, 'results', 'compare-fm-speed.json')) ? JSON.parse(readFileSync(path.join(here, 'results', 'compare-fm-speed.json'), 'utf8')) : null;
  const rows = ['| model | attention | params | MFLOPs / image | test top-1, mean ± sd (3 seeds) | min-max | train img/s (median [min-max step]) | inference img/s |', '|---|---|---|---|---|---|---|---|'];
  for (const name of Object.keys(MODELS)) {
    const runs = acc.runs.filter((r) => r.model === name);
    if (!runs.length) continue;
    const t = runs.map((r) => r.testTop1 * 100);
    const mean = t.reduce((a, b) => a + b, 0) / t.length;
    const sd = Math.sqrt(t.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, t.length - 1));
    const s = spd?.models.find((m) => m.model === name);
    const att = name.includes('window') ? 'window' : name.includes('global') ? 'global' : name.startsWith('swin') ? 'shifted window' : 'SEC';
    rows.push(`| ${name} | ${att} | ${s ? (s.parameters / 1e6).toFixed(2) + 'M' : '?'} | ${(flops(name) / 1e6).toFixed(1)} | ${mean.toFixed(2)}% ± ${sd.toFixed(2)} (n=${t.length}) | ${Math.min(...t).toFixed(2)}-${Math.max(...t).toFixed(2)} | ` +
      (s ? `${s.trainImagesPerSecond} (${s.trainStepMs.median.toFixed(0)} ms [${s.trainStepMs.min.toFixed(0)}-${s.trainStepMs.max.toFixed(0)}]) | ${s.inferImagesPerSecond} |` : '? | ? |'));
  }
  console.log(rows.join('\n'));
}

const [mode, ...rest] = process.argv.slice(2);
const opts = args(rest);
if (mode === 'accuracy') accuracy(opts);
else if (mode === 'speed') await speed(opts);
else if (mode === 'table') table();
else {
  console.error('usage: node bench/compare.mjs accuracy|speed|table [options] (see the header)');
  process.exit(2);
}
