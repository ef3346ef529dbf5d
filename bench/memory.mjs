// Host memory of a SecViT forward on the CPU, measured from the kernel's own counters
// (/proc/self/status: VmRSS, VmHWM; VmHWM is reset before each measured forward by writing 5 to
// /proc/self/clear_refs), next to secvit's memory() accounting and V8's heap. Linux only.
//
//   node --expose-gc bench/memory.mjs [--runtime secvit|ort] [--batch 1] [--weights FILE]
//        [--forwards 500] [--json OUT]
//
// secvit: without --weights it loads ../shared/peers/secvit_t.weights.safetensors when present,
// else a seeded random SecViT-T. ort: onnxruntime-node (a devDependency) runs
// ../shared/peers/secvit_t.onnx the same way, 2 intra-op threads: its peak is measured exactly as
// secvit's, one runtime per process. 224 x 224.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values: args } = parseArgs({
  options: {
    runtime: { type: 'string', default: 'secvit' }, batch: { type: 'string', default: '1' },
    weights: { type: 'string' }, forwards: { type: 'string', default: '500' }, json: { type: 'string' },
  },
});
if (args.runtime !== 'secvit' && args.runtime !== 'ort') {
  console.error(`bench:memory: --runtime must be 'secvit' or 'ort', got '${args.runtime}'`);
  process.exit(2);
}
const batch = Number(args.batch);
const MB = (b) => +(b / 2 ** 20).toFixed(1);
const proc = () => {
  const s = readFileSync('/proc/self/status', 'utf8');
  const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(s)[1]) / 1024;
  return { rss: +kb('VmRSS').toFixed(1), hwm: +kb('VmHWM').toFixed(1) };
};
const resetPeak = () => writeFileSync('/proc/self/clear_refs', '5');
const gc = globalThis.gc ?? (() => {});
const pixels = Float32Array.from({ length: batch * 3 * 224 * 224 }, (_, i) => Math.sin(i * 0.37));
const peers = resolve(process.env.SECVIT_SHARED_DIR ?? resolve(root, '..', 'shared'), 'peers');

// { start, weights, forward(), extra(), dispose() } for either runtime.
async function secvitRunner() {
  const secvit = await import(resolve(root, 'dist/esm/index.js'));
  const start = proc();
  const shared = resolve(peers, 'secvit_t.weights.safetensors');
  const weights = args.weights ?? (existsSync(shared) ? shared : null);
  // Inference: no graph recorded (parameters frozen).
  const model = (weights ? secvit.SecViT.load(weights) : secvit.SecViT.create('secvit-t', { seed: 0 })).requiresGrad(false);
  const x = secvit.tensor(pixels, [batch, 3, 224, 224]);
  const cpu = () => secvit.backends().find((b) => b.name === 'cpu');
  let m0 = 0;
  return {
    start, model: weights ?? 'secvit-t (random, seed 0)', threads: cpu().threads,
    weightsMB: MB(secvit.memory().hostBytes - x.size * 4),
    before() { secvit.resetPeakMemory(); m0 = secvit.memory().hostBytes; },
    async forward() { const y = model.forward(x); await y.data(); y.dispose(); },
    peakExtra: () => ({ secvitPeakAbove: MB(secvit.memory().peakHostBytes - m0) }),
    sample: () => ({ secvitHost: MB(secvit.memory().hostBytes) }),
    summary: () => ({ hostPoolReservedMB: MB(cpu().reservedBytes) }),
    dispose() { model.dispose(); x.dispose(); },
  };
}

async function ortRunner() {
  const ort = createRequire(resolve(root, 'package.json'))('onnxruntime-node');
  const start = proc();
  const file = resolve(peers, 'secvit_t.onnx');
  const sess = await ort.InferenceSession.create(file, { intraOpNumThreads: 2, interOpNumThreads: 1 });
  const feeds = { pixels: new ort.Tensor('float32', pixels, [batch, 3, 224, 224]) };
  return {
    start, model: `${file} (onnxruntime-node ${ort.env.versions?.common ?? ''})`, threads: 2, weightsMB: null,
    before() {},
    async forward() { await sess.run(feeds); },
    peakExtra: () => ({}), sample: () => ({}), summary: () => ({}),
    dispose() { return sess.release(); },
  };
}

const runner = args.runtime === 'ort' ? await ortRunner() : await secvitRunner();
const { start } = runner;
gc();
const loaded = proc();
const forwards = [];
for (let i = 0; i < 3; i++) {
  resetPeak();
  const before = proc();
  runner.before();
  await runner.forward();
  forwards.push({ rssBefore: before.rss, peakRss: proc().hwm, ...runner.peakExtra() });
}
const n = Number(args.forwards);
const series = [];
resetPeak();
const t0 = performance.now();
for (let i = 1; i <= n; i++) {
  await runner.forward();
  if (i % 50 === 0) {
    gc();
    const mu = process.memoryUsage();
    series.push({ forward: i + 3, rss: proc().rss, heapTotal: MB(mu.heapTotal), heapUsed: MB(mu.heapUsed), ...runner.sample() });
  }
}
const result = {
  runtime: args.runtime,
  model: runner.model,
  batch,
  threads: runner.threads,
  weightsMB: runner.weightsMB,
  rssAtStartMB: start.rss,
  rssLoadedMB: loaded.rss,
  forwards,
  // The peak over every forward: the first three and the long run after them (V8's heap and the
  // caches settle over the first tens of forwards).
  peakAboveStartMB: +(Math.max(proc().hwm, ...forwards.map((f) => f.peakRss)) - start.rss).toFixed(1),
  peakOverRunMB: proc().hwm,
  ...runner.summary(),
  msPerForward: n > 0 ? +((performance.now() - t0) / n).toFixed(1) : null,
  series,
};
console.log(JSON.stringify(result, null, 1));
if (args.json) writeFileSync(args.json, JSON.stringify(result, null, 1));
await runner.dispose();
