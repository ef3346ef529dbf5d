// The benchmark suite behind `npx secvit bench` / `npm run bench`. Prints a table per group and
// writes every median to JSON (bench/results/latest.json unless --json FILE). Default: a quick
// run (under a minute); --full: every size.
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Bench } from 'tinybench';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const secvit = await import(path.join(root, 'dist', 'esm', 'index.js'));

function parseArgs(argv) {
  const opts = { full: false, json: path.join(root, 'bench', 'results', 'latest.json'), threads: null };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--full') opts.full = true;
    else if (argv[i] === '--json') opts.json = argv[++i];
    else if (argv[i] === '--threads') opts.threads = argv[++i].split(',').map(Number);
    else throw new RangeError(`bench: unknown argument '${argv[i]}'`);
  }
  return opts;
}

function seeded(n, seed) {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 2 ** 32 - 0.5;
  }
  return a;
}

/** Runs `tasks` ({ name, fn, flops? }) side by side, interleaved, and returns rows with medians. */
export async function runGroup(title, tasks, { time = 400, iterations = 5 } = {}) {
  const bench = new Bench({ time, iterations, warmup: true, warmupIterations: 2 });
  for (const t of tasks) bench.add(t.name, t.fn);
  await bench.run();
  const rows = bench.tasks.map((task, i) => {
    const r = task.result;
    const median = r?.latency?.p50 ?? r?.p50 ?? NaN;
    const row = { name: task.name, medianMs: median, samples: r?.latency?.samples?.length ?? r?.samples?.length ?? 0 };
    if (tasks[i].flops) row.gflops = tasks[i].flops / (median * 1e6);
    return row;
  });
  console.log(`\n${title}`);
  console.table(rows.map((r) => ({ name: r.name, 'median ms': r.medianMs.toFixed(3), 'GFLOP/s': r.gflops?.toFixed(2) ?? '', samples: r.samples })));
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

export async function main(argv = process.argv.slice(2)) {
  const opts = parseArgs(argv);
  const defaultThreads = secvit.getNumThreads();
  const threadCounts = opts.threads ?? [...new Set([1, defaultThreads])];
  const machine = {
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    node: process.version,
    backends: secvit.backends(),
  };
  console.log(`secvit bench: ${machine.cpu}, ${machine.cores} cores, node ${machine.node}; threads ${threadCounts.join(', ')}${opts.full ? ', full' : ''}`);
  const results = [];
  for (const t of threadCounts) {
    secvit.setNumThreads(t);
    results.push(...(await matmulGroup(opts, t)));
  }
  secvit.setNumThreads(defaultThreads);
  mkdirSync(path.dirname(opts.json), { recursive: true });
  writeFileSync(opts.json, JSON.stringify({ date: new Date().toISOString(), machine, full: opts.full, results }, null, 2));
  console.log(`\nwrote ${opts.json}`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) await main();
