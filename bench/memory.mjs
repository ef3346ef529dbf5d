// Host memory of a SecViT forward on the CPU, measured from the kernel's own counters
// (/proc/self/status: VmRSS, VmHWM; VmHWM is reset before each measured forward by writing 5 to
// /proc/self/clear_refs), next to secvit's memory() accounting and V8's heap. Linux only.
//
//   node --expose-gc bench/memory.mjs [--weights FILE] [--forwards 500] [--json OUT]
//
// Without --weights it loads ../shared/peers/secvit_t.weights.safetensors when present, else a
// seeded random SecViT-T. Batch 1, 224 x 224.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values: args } = parseArgs({
  options: { weights: { type: 'string' }, forwards: { type: 'string', default: '500' }, json: { type: 'string' } },
});
const MB = (b) => +(b / 2 ** 20).toFixed(1);
const proc = () => {
  const s = readFileSync('/proc/self/status', 'utf8');
  const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(s)[1]) / 1024;
  return { rss: +kb('VmRSS').toFixed(1), hwm: +kb('VmHWM').toFixed(1) };
};
const resetPeak = () => writeFileSync('/proc/self/clear_refs', '5');
const gc = globalThis.gc ?? (() => {});

const secvit = await import(resolve(root, 'dist/esm/index.js'));
const start = proc();
const shared = resolve(root, '../shared/peers/secvit_t.weights.safetensors');
const weights = args.weights ?? (existsSync(shared) ? shared : null);
const model = weights ? secvit.SecViT.load(weights) : secvit.SecViT.create('secvit-t', { seed: 0 });
const weightBytes = secvit.memory().hostBytes;
const x = secvit.tensor(Float32Array.from({ length: 3 * 224 * 224 }, (_, i) => Math.sin(i * 0.37)), [1, 3, 224, 224]);
gc();
const loaded = proc();
const forwards = [];
for (let i = 0; i < 3; i++) {
  resetPeak();
  const before = proc();
  secvit.resetPeakMemory();
  const m0 = secvit.memory().hostBytes;
  const y = model.forward(x);
  await y.data();
  y.dispose();
  forwards.push({ rssBefore: before.rss, peakRss: proc().hwm, secvitPeakAbove: MB(secvit.memory().peakHostBytes - m0) });
}
const n = Number(args.forwards);
const series = [];
resetPeak();
const t0 = performance.now();
for (let i = 1; i <= n; i++) {
  const y = model.forward(x);
  await y.data();
  y.dispose();
  if (i % 50 === 0) {
    gc();
    const mu = process.memoryUsage();
    series.push({ forward: i + 3, rss: proc().rss, heapTotal: MB(mu.heapTotal), heapUsed: MB(mu.heapUsed), secvitHost: MB(secvit.memory().hostBytes) });
  }
}
const cpu = secvit.backends().find((b) => b.name === 'cpu');
const result = {
  model: weights ?? 'secvit-t (random, seed 0)',
  threads: cpu.threads,
  weightsMB: MB(weightBytes),
  rssAtStartMB: start.rss,
  rssLoadedMB: loaded.rss,
  forwards,
  // The peak over every forward: the first three and the long run after them (V8's heap and the
  // caches settle over the first tens of forwards).
  peakAboveStartMB: +(Math.max(proc().hwm, ...forwards.map((f) => f.peakRss)) - start.rss).toFixed(1),
  peakOverRunMB: proc().hwm,
  hostPoolReservedMB: MB(cpu.reservedBytes),
  msPerForward: +((performance.now() - t0) / n).toFixed(1),
  series,
};
console.log(JSON.stringify(result, null, 1));
if (args.json) writeFileSync(args.json, JSON.stringify(result, null, 1));
model.dispose();
x.dispose();
