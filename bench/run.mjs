// The benchmark suite behind `npx secvit bench` / `npm run bench`. Prints a table per group and
// writes every median to JSON when asked (--out FILE; nothing otherwise). Default: a quick
// run (under a minute); --full: every size.
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Bench } from 'tinybench';
import { busyNote, median, seeded } from './util.mjs';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const secvit = await import(path.join(root, 'dist', 'esm', 'index.js'));
const { dispatchRows, printDispatch } = await import('./dispatch.mjs');
const { GEMM_SHAPES, gemmVsOpenblas, printGemm } = await import('./gemm.mjs');
const { layerRows, printLayers } = await import('./layers.mjs');
const { modelRows, printModel } = await import('./model.mjs');
const { TRAIN_MODELS, trainRows, printTrain } = await import('./train.mjs');

const GROUPS = ['dispatch', 'gemm', 'layers', 'attention', 'model', 'train'];
/** What runs without --groups: everything but the training steps (minutes each; ask for them). */
const DEFAULT_GROUPS = GROUPS.filter((g) => g !== 'train');

/** A mistake in how bench was called: the CLI prints its message and exits 2. */
export class UsageError extends Error {}

export const HELP = `usage: secvit bench [--full] [--groups dispatch,gemm,layers,attention,model,train] [--threads N,M]
                    [--stages 0,1,2] [--batches 1,8] [--out FILE] [--gpu [--device cuda|cuda-emu]]
                    [--train-models secvit-t,secvit-64] [--rounds N] [--torch | --no-torch]

Microbenchmarks and whole-model timings on the CPU (--gpu: the CUDA tables). Quick by default
(under a minute); --full runs every size. Each table shows medians in ms with [min-max] and the
run count; lower is better; GFLOP/s higher is better; ratio columns say which side they divide
(targets in BENCHMARKS.md). With --out FILE every median is also written there as JSON
(nothing is written without it). The train group (only when named)
times whole training steps; with PyTorch present (/usr/bin/python3 with torch, or --torch) the
same model in PyTorch (bench/torch_train.py) runs interleaved with it, step for step.`;

function parseArgs(argv) {
  const opts = { full: false, json: null, threads: null, gpu: false, device: 'cuda', stages: [0, 1, 2], batches: [1, 8], groups: null, torch: 'auto', rounds: null, trainModels: null };
  for (let i = 0; i < argv.length; i++) {
    const next = () => {
      const v = argv[++i];
      if (v === undefined || v.startsWith('--')) throw new UsageError(`bench: ${argv[i - 1]} expects a value`);
      return v;
    };
    if (argv[i] === '--full') opts.full = true;
    else if (argv[i] === '--gpu') opts.gpu = true;
    else if (argv[i] === '--device') opts.device = next();
    else if (argv[i] === '--stages') opts.stages = next().split(',').map(Number);
    else if (argv[i] === '--batches') opts.batches = next().split(',').map(Number);
    else if (argv[i] === '--json' || argv[i] === '--out') opts.json = next();
    else if (argv[i] === '--help' || argv[i] === '-h') opts.help = true;
    else if (argv[i] === '--verbose' || argv[i] === '--no-progress') continue;  // the CLI's common flags
    else if (argv[i] === '--threads') opts.threads = next().split(',').map(Number);
    else if (argv[i] === '--torch') opts.torch = true;
    else if (argv[i] === '--no-torch') opts.torch = false;
    else if (argv[i] === '--rounds') opts.rounds = [Number(next())];
    else if (argv[i] === '--train-models') {
      opts.trainModels = next().split(',');
      const unknown = opts.trainModels.filter((m) => !Object.keys(TRAIN_MODELS).includes(m));
      if (unknown.length) throw new UsageError(`bench: --train-models expects some of ${Object.keys(TRAIN_MODELS).join(',')}, got '${unknown.join(',')}'`);
    }
    else if (argv[i] === '--groups') {
      opts.groups = next().split(',');
      const unknown = opts.groups.filter((g) => !GROUPS.includes(g));
      if (unknown.length) throw new UsageError(`bench: --groups expects some of ${GROUPS.join(',')}, got '${unknown.join(',')}'`);
    }
    else throw new UsageError(`bench: unknown option '${argv[i]}' (see secvit bench --help)`);
  }
  for (const [k, v] of [['stages', opts.stages], ['batches', opts.batches], ['threads', opts.threads ?? [1]], ['rounds', opts.rounds ?? [1]]])
    if (!v.every((n) => Number.isInteger(n) && n >= (k === 'stages' ? 0 : 1))) throw new UsageError(`bench: --${k} expects a comma-separated list of integers, got '${v.join(',')}'`);
  return opts;
}

/** Runs `tasks` ({ name, fn, flops? }) side by side, interleaved, and returns rows with medians. */
export async function runGroup(title, tasks, { time = 400, iterations = 5 } = {}) {
  const bench = new Bench({ time, iterations, warmup: true, warmupIterations: 2 });
  for (const t of tasks) bench.add(t.name, t.fn);
  await bench.run();
  const rows = bench.tasks.map((task, i) => {
    const r = task.result;
    const median = r?.latency?.p50 ?? r?.p50 ?? NaN;
    const row = {
      name: task.name, medianMs: median, minMs: r?.latency?.min ?? r?.min ?? NaN, maxMs: r?.latency?.max ?? r?.max ?? NaN,
      samples: r?.latency?.samples?.length ?? r?.samples?.length ?? 0,
    };
    if (tasks[i].flops) row.gflops = tasks[i].flops / (median * 1e6);
    if (tasks[i].peakBytes !== undefined) row.peakBytes = tasks[i].peakBytes;
    return row;
  });
  console.log(`\n${title}`);
  console.table(rows.map((r) => ({
    name: r.name,
    'median ms [min-max]': `${r.medianMs.toFixed(3)} [${r.minMs.toFixed(3)}-${r.maxMs.toFixed(3)}]`,
    'GFLOP/s': r.gflops?.toFixed(2) ?? '',
    ...(r.peakBytes !== undefined ? { 'peak MiB': (r.peakBytes / 2 ** 20).toFixed(2) } : {}),
    samples: r.samples,
  })));
  return { title, rows };
}

async function matmulGroup(opts, threads) {
  const sizes = opts.full ? [128, 256, 512, 1024] : [256, 512];
  const groups = [];
  const cpu = secvit.backends().find((b) => b.name === 'cpu');
  const { native } = await import(path.join(root, 'dist', 'esm', 'native.js'));
  for (const n of sizes) {
    const a = secvit.tensor(seeded(n * n, 1), [n, n]);
    const b = secvit.tensor(seeded(n * n, 2), [n, n]);
    const tasks = [];
    for (const simd of cpu.simd === 'avx2-fma' ? ['avx2-fma', 'scalar'] : ['scalar']) {
      tasks.push({
        name: `matmul ${n}x${n}x${n} ${simd} ${threads}T`,
        flops: 2 * n * n * n,
        fn: () => {
          native.setCpuSimd(simd);
          secvit.matmulSync(a, b).dispose();
        },
      });
    }
    groups.push(await runGroup(`matmul ${n}^3, ${threads} thread(s)`, tasks));
    if (cpu.simd) native.setCpuSimd(cpu.simd);
    a.dispose();
    b.dispose();
  }
  return groups;
}

// SecViT-T/S stage shapes at 224x224: (H, L, D, C) with grid side; every SEC cluster holds 98
// tokens, like a 7x14 window.
const STAGES = [
  { stage: 0, h: 2, side: 56, d: 32, c: 32 },
  { stage: 1, h: 4, side: 28, d: 32, c: 8 },
  { stage: 2, h: 8, side: 14, d: 32, c: 2 },
];

/** Median ms and the peak host bytes of one call (memory() peak over the call, output included). */
function peakOf(fn) {
  secvit.resetPeakMemory();
  const base = secvit.memory().hostBytes;
  const r = fn();
  const peak = secvit.memory().peakHostBytes - base;
  (r.out ?? r).dispose();
  r.order?.dispose();
  return peak;
}

async function attentionGroup(opts, threads, batch, st) {
  const l = st.side * st.side;
  const n = batch * st.h * l * st.d;
  const shape = [batch, st.h, l, st.d];
  const q = secvit.tensor(seeded(n, 11), shape);
  const k = secvit.tensor(seeded(n, 12), shape);
  const v = secvit.tensor(seeded(n, 13), shape);
  const bhl = batch * st.h * l;
  const flops = (group) => 4 * bhl * group * st.d;
  const grid = { height: st.side, width: st.side };
  const tasks = [
    { name: `SEC fused (C=${st.c})`, flops: flops(l / st.c), call: () => secvit.secAttentionSync(q, k, v, { clusters: st.c }) },
    { name: 'window 7x14', flops: flops(98), call: () => secvit.windowAttentionSync(q, k, v, { ...grid, window: [7, 14] }) },
    { name: 'window 7x7', flops: flops(49), call: () => secvit.windowAttentionSync(q, k, v, { ...grid, window: [7, 7] }) },
    { name: `SEC unfused (C=${st.c})`, flops: flops(l / st.c), call: () => secvit.secAttentionUnfusedSync(q, k, v, { clusters: st.c }) },
  ];
  // Global attention at L=3136 costs 32x a clustered pass; only in --full runs for large inputs.
  if (opts.full || bhl * l <= 2 * 784 * 784 * 4) tasks.push({ name: 'global', flops: flops(l), call: () => secvit.globalAttentionSync(q, k, v) });
  const group = await runGroup(
    `attention stage ${st.stage}: B=${batch} H=${st.h} L=${l} D=${st.d}, ${threads} thread(s)`,
    tasks.map((t) => ({ name: t.name, flops: t.flops, peakBytes: peakOf(t.call), fn: () => t.call().dispose() })),
    { time: opts.full ? 500 : 150, iterations: 3 },
  );
  const sec = group.rows[0].medianMs;
  // The same two calls alternated (which goes first alternates too), the median of the per-pair
  // ratios: a drift of the shared machine between the rows' own runs cancels out.
  const paired = [];
  for (let i = 0; i < (opts.full ? 120 : 30); i++) {
    const time = (t) => {
      const t0 = performance.now();
      t.call().dispose();
      return performance.now() - t0;
    };
    const [a, b] = i % 2 === 0 ? [time(tasks[0]), time(tasks[1])] : [time(tasks[1]), time(tasks[0])].reverse();
    paired.push(a / b);
  }
  const ratios = {
    secOverWindow7x14: sec / group.rows[1].medianMs,
    secOverWindow7x14Paired: median(paired),
    secOverWindow7x7: sec / group.rows[2].medianMs,
    unfusedOverSec: group.rows[3].medianMs / sec,
  };
  console.log(`  SEC/window(7x14) = ${ratios.secOverWindow7x14.toFixed(3)} (paired ${ratios.secOverWindow7x14Paired.toFixed(3)}), SEC/window(7x7) = ${ratios.secOverWindow7x7.toFixed(3)}, unfused/fused = ${ratios.unfusedOverSec.toFixed(2)}`);
  q.dispose();
  k.dispose();
  v.dispose();
  return { ...group, batch, threads, stage: st.stage, ratios };
}

// The SEC attention module as the model runs it (qkv 1x1 conv with LN-free input, LCE, RoPE,
// SEC, out_proj; the reference's attn(x): [B, E, H, W] in and out) at SecViT-T's three stage
// shapes, with SecViT-T's random weights. bench:peers runs the same modules next to ORT.
// flops: qkv 2 L E 3E + out_proj 2 L E^2 + LCE 2 L E 25 + attention 4 L 98 E (98-token clusters).
async function moduleGroup(opts, threads, batch) {
  const model = secvit.SecViT.create('secvit-t', { seed: 1 }).requiresGrad(false);  // inference: nothing recorded
  const shapes = [[64, 56], [128, 28], [256, 14]];
  const made = [];
  const tasks = [];
  for (const stage of [0, 1, 2].filter((x) => opts.stages.includes(x))) {
    const [e, side] = shapes[stage];
    const l = side * side;
    const x = secvit.tensor(seeded(batch * e * l, 21 + stage, 2), [batch, e, side, side]);
    made.push(x);
    const attn = model.layers.items[stage].blocks.items[0].attn;
    const run = () => {
      const y = attn.forward(x);
      y.waitSync();
      return y;
    };
    tasks.push({
      name: `stage ${stage} (E=${e}, ${side}x${side})`,
      flops: batch * (2 * l * e * 3 * e + 2 * l * e * e + 2 * l * e * 25 + 4 * l * 98 * e),
      peakBytes: peakOf(run),
      fn: () => run().dispose(),
    });
  }
  const group = await runGroup(`SEC attention module (qkv, LCE, RoPE, SEC, out_proj): B=${batch}, ${threads} thread(s)`, tasks,
    { time: opts.full ? 500 : 150, iterations: 3 });
  for (const m of made) m.dispose();
  model.dispose();
  return { ...group, batch, threads, module: true };
}

// GPU: fused SEC vs window vs global in fp32 and bf16, plus the effective bandwidth of fused SEC
// (q, k, v read once + out written once) next to a device-to-device copy of the same tensors
// timed in the same run. --device cuda-emu runs it through the emulator (a smoke test of this
// script only: emulator timings mean nothing).
async function gpuGroups(opts) {
  const device = opts.device;
  const results = [];
  for (const dtype of ['float32', 'bfloat16']) {
    for (const batch of opts.batches) {
      for (const st of STAGES.filter((x) => opts.stages.includes(x.stage))) {
        const l = st.side * st.side;
        const n = batch * st.h * l * st.d;
        const shape = [batch, st.h, l, st.d];
        const make = (seed) => secvit.tensor(seeded(n, seed), shape, { device, dtype });
        const q = make(21), k = make(22), v = make(23);
        const elem = dtype === 'float32' ? 4 : 2;
        const tensorBytes = n * elem;
        const bhl = batch * st.h * l;
        const flops = (group) => 4 * bhl * group * st.d;
        const grid = { height: st.side, width: st.side };
        const tasks = [
          { name: `SEC fused (C=${st.c})`, flops: flops(l / st.c), bytes: 4 * tensorBytes, fn: () => secvit.secAttentionSync(q, k, v, { clusters: st.c }).dispose() },
          { name: 'window 7x14', flops: flops(98), bytes: 4 * tensorBytes, fn: () => secvit.windowAttentionSync(q, k, v, { ...grid, window: [7, 14] }).dispose() },
          { name: 'window 7x7', flops: flops(49), bytes: 4 * tensorBytes, fn: () => secvit.windowAttentionSync(q, k, v, { ...grid, window: [7, 7] }).dispose() },
          { name: 'global', flops: flops(l), bytes: 4 * tensorBytes, fn: () => secvit.globalAttentionSync(q, k, v).dispose() },
          { name: `SEC unfused (C=${st.c})`, flops: flops(l / st.c), bytes: 4 * tensorBytes, fn: () => secvit.secAttentionUnfusedSync(q, k, v, { clusters: st.c }).dispose() },
          // Device-to-device copy of q (read + write: 2 x tensor bytes), the bandwidth yardstick.
          { name: 'd2d copy of q', bytes: 2 * tensorBytes, fn: () => q.toSync(device).dispose() },
        ];
        const group = await runGroup(`GPU ${device} ${dtype}: stage ${st.stage} B=${batch} H=${st.h} L=${l} D=${st.d}`, tasks,
          device === 'cuda' ? { time: 300, iterations: 5 } : { time: 1, iterations: 1 });
        group.rows.forEach((r, i) => (r.gbPerS = tasks[i].bytes / (r.medianMs * 1e6)));
        const copyBw = group.rows[5].gbPerS;
        const ratios = {
          secOverWindow7x14: group.rows[0].medianMs / group.rows[1].medianMs,
          secOverWindow7x7: group.rows[0].medianMs / group.rows[2].medianMs,
          unfusedOverSec: group.rows[4].medianMs / group.rows[0].medianMs,
          secBandwidthOverCopy: group.rows[0].gbPerS / copyBw,
        };
        console.log(`  SEC effective ${group.rows[0].gbPerS.toFixed(1)} GB/s = ${(100 * ratios.secBandwidthOverCopy).toFixed(1)}% of copy (${copyBw.toFixed(1)} GB/s); SEC/window(7x14) = ${ratios.secOverWindow7x14.toFixed(3)}; unfused/fused = ${ratios.unfusedOverSec.toFixed(2)}`);
        results.push({ ...group, dtype, batch, stage: st.stage, ratios });
        q.dispose();
        k.dispose();
        v.dispose();
      }
    }
  }
  return results;
}

export async function main(argv = process.argv.slice(2)) {
  const opts = parseArgs(argv);
  if (opts.help) {
    console.log(HELP);
    return 0;
  }
  if (opts.gpu) {
    const info = secvit.backends().find((b) => b.name === opts.device);
    if (!info?.available) {
      console.log(`secvit bench --gpu: no GPU is present here, nothing was measured (${opts.device}: ${info?.reason ?? 'unknown device'}).`);
      return;
    }
    console.log(`secvit bench --gpu on ${opts.device}: ${info.description}`);
    const results = await gpuGroups(opts);
    if (opts.json) {
      mkdirSync(path.dirname(path.resolve(opts.json)), { recursive: true });
      writeFileSync(opts.json, JSON.stringify({ date: new Date().toISOString(), device: info, results }, null, 2));
      console.log(`\nwrote ${opts.json}`);
    }
    return;
  }
  const defaultThreads = secvit.getNumThreads();
  // Quick runs use the default thread count; --full adds 1 thread.
  const threadCounts = opts.threads ?? (opts.full ? [...new Set([1, defaultThreads])] : [defaultThreads]);
  const machine = {
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    node: process.version,
    backends: secvit.backends(),
  };
  console.log(`secvit bench: ${machine.cpu}, ${machine.cores} cores, node ${machine.node}; threads ${threadCounts.join(', ')}${opts.full ? ', full' : ''}`);
  // The load before this run is other processes' alone; after it, it includes this run's own
  // threads (at most the thread count), which are subtracted.
  const loadBefore = os.loadavg()[0];
  const notes = [busyNote(loadBefore, machine.cores, 'before the run')].filter(Boolean);
  for (const n of notes) console.log(`note: ${n}`);
  const misses = [];
  // Groups: dispatch (op layer), gemm (vs OpenBLAS), layers (a row per layer kind), attention,
  // model (whole SecViT forwards with a breakdown by layer kind), train (whole training steps).
  const groups = new Set(opts.groups ?? DEFAULT_GROUPS);
  const results = [];
  const extra = {};
  for (const t of threadCounts) {
    secvit.setNumThreads(t);
    if (groups.has('dispatch') && t === threadCounts[0]) {
      extra.dispatch = await dispatchRows(secvit, { rounds: opts.full ? 50 : 15 });
      misses.push(...printDispatch(extra.dispatch));
    }
    if (groups.has('gemm')) {
      // Quick: three SecViT-T shapes and 1024^3, the plain product; --full: every shape, and the
      // fused epilogue against NumPy's separate passes.
      const shapes = opts.full ? GEMM_SHAPES : GEMM_SHAPES.filter((s) => ['stage0 qkv/fc1', 'stage2 fc2', 'stage3 qkv/fc1', 'square'].includes(s.name));
      const g = await gemmVsOpenblas(secvit, { threads: t, shapes, rounds: opts.full ? 3 : 2, ms: opts.full ? 120 : 80, kinds: opts.full ? ['matmul', 'linear_fused'] : ['matmul'] });
      printGemm(g, t);
      (extra.gemm ??= []).push({ threads: t, ...g });
    }
    if (groups.has('layers')) {
      for (const batch of opts.full ? opts.batches : [1]) {
        const rows = await layerRows(secvit, { batch, time: opts.full ? 300 : 120 });
        printLayers(rows, batch, t);
        (extra.layers ??= []).push({ threads: t, batch, rows });
      }
    }
    if (groups.has('attention')) {
      for (const batch of opts.batches) {
        for (const st of STAGES.filter((x) => opts.stages.includes(x.stage))) results.push(await attentionGroup(opts, t, batch, st));
        results.push(await moduleGroup(opts, t, batch));
      }
    }
    if (groups.has('model')) {
      const rows = await modelRows(secvit, { full: opts.full, batches: opts.batches });
      printModel(rows, t);
      (extra.model ??= []).push({ threads: t, rows });
    }
    if (groups.has('train')) {
      const rows = await trainRows(secvit, {
        threads: t, torch: opts.torch, rounds: opts.rounds?.[0] ?? (opts.full ? 9 : 5),
        models: opts.trainModels ?? Object.keys(TRAIN_MODELS),
      });
      printTrain(rows, t);
      (extra.train ??= []).push({ threads: t, rows });
    }
    if (opts.full && groups.has('gemm')) results.push(...(await matmulGroup(opts, t)));
  }
  secvit.setNumThreads(defaultThreads);
  const loadAfter = os.loadavg()[0];
  const after = busyNote(loadAfter - Math.max(...threadCounts), machine.cores, 'during the run');
  if (after) notes.push(after);
  machine.load = { before: loadBefore, after: loadAfter };
  console.log(misses.length ? `\n${misses.length} result(s) missed a stated target:\n${misses.map((m) => `  ${m}`).join('\n')}` : '\nevery stated target was met');
  for (const n of notes) console.log(`note: ${n}`);
  if (opts.json) {
    mkdirSync(path.dirname(path.resolve(opts.json)), { recursive: true });
    writeFileSync(opts.json, JSON.stringify({ date: new Date().toISOString(), machine, full: opts.full, misses, notes, results, ...extra }, null, 2));
    console.log(`\nwrote ${opts.json}`);
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) await main();
