// secvit's CPU GEMM side by side with OpenBLAS (NumPy), in one run: for each shape, rounds that
// alternate between secvit (tinybench) and a NumPy child process (bench/openblas.py) at the same
// thread count, so both see the same machine state. Reports medians with the min-max spread
// and the speed ratio secvit / OpenBLAS.
//   matmul        C = A B, A [M, K], B [K, N]: both sides one GEMM.
//   linear_fused  C = residual + scale * (A W^T + bias): secvit's one fused pass against NumPy's
//                 sgemm plus element-wise passes (what the fused epilogue saves).
import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Bench } from 'tinybench';
import { median, seeded } from './util.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));

// SecViT-T's GEMMs at 224x224, batch 1 (M = tokens): qkv, fc1 (K = E, N = 3E), out_proj (N = E),
// fc2 (K = 3E); the stem's 3x3 convs as im2col GEMMs; and the square 1024^3.
export const GEMM_SHAPES = [
  { name: 'stage0 qkv/fc1', m: 3136, k: 64, n: 192 },
  { name: 'stage0 fc2', m: 3136, k: 192, n: 64 },
  { name: 'stage0 out_proj', m: 3136, k: 64, n: 64 },
  { name: 'stage1 qkv/fc1', m: 784, k: 128, n: 384 },
  { name: 'stage1 fc2', m: 784, k: 384, n: 128 },
  { name: 'stage2 qkv/fc1', m: 196, k: 256, n: 768 },
  { name: 'stage2 fc2', m: 196, k: 768, n: 256 },
  { name: 'stage3 qkv/fc1', m: 49, k: 512, n: 1536 },
  { name: 'stage3 fc2', m: 49, k: 1536, n: 512 },
  { name: 'stem conv 32->32 (im2col)', m: 12544, k: 288, n: 32 },
  { name: 'square', m: 1024, k: 1024, n: 1024 },
];

/** A NumPy child process, or null (with the reason) when numpy cannot be imported. */
export function startNumpy(threads) {
  const python = process.env.SECVIT_BENCH_PYTHON ?? 'python3';
  const probe = spawnSync(python, ['-c', 'import numpy; print(numpy.__version__)'], { encoding: 'utf8' });
  if (probe.status !== 0) return { proc: null, reason: `${python} -c 'import numpy' failed: ${(probe.stderr || probe.error?.message || '').trim().split('\n').pop()}` };
  const env = { ...process.env, OPENBLAS_NUM_THREADS: String(threads), OMP_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads) };
  const proc = spawn(python, [path.join(here, 'openblas.py')], { env, stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = readline.createInterface({ input: proc.stdout });
  const waiting = [];
  lines.on('line', (l) => waiting.shift()?.(JSON.parse(l)));
  const ask = (req) => new Promise((resolve) => {
    waiting.push(resolve);
    proc.stdin.write(JSON.stringify(req) + '\n');
  });
  return { proc, ask, version: probe.stdout.trim(), close: () => proc.stdin.end() };
}

async function secvitSamples(fn, ms) {
  const bench = new Bench({ time: ms, iterations: 3, warmup: false });
  bench.add('x', fn);
  await bench.run();
  return bench.tasks[0].result?.latency?.samples ?? [];
}

/**
 * Rows { name, kind, m, k, n, secvit: {medianMs, minMs, maxMs, gflops}, openblas: {...} | null,
 * ratio } for every shape and kind, interleaving `rounds` rounds of about `ms` ms per side.
 */
export async function gemmVsOpenblas(secvit, { threads, shapes = GEMM_SHAPES, rounds = 3, ms = 120, kinds = ['matmul', 'linear_fused'] }) {
  const np = startNumpy(threads);
  const rows = [];
  for (const s of shapes) {
    for (const kind of kinds) {
      const a = secvit.tensor(seeded(s.m * s.k, 1), [s.m, s.k]);
      const b = secvit.tensor(seeded(s.k * s.n, 2), kind === 'matmul' ? [s.k, s.n] : [s.n, s.k]);
      const bias = secvit.tensor(seeded(s.n, 3), [s.n]);
      const scale = secvit.tensor(seeded(s.n, 4), [s.n]);
      const res = secvit.tensor(seeded(s.m * s.n, 5), [s.m, s.n]);
      const fn = kind === 'matmul'
        ? () => secvit.matmulSync(a, b).dispose()
        : () => {
            const y = secvit.fusedLinear(a, b, bias, { scale, residual: res });
            y.waitSync();
            y.dispose();
          };
      fn();
      if (np.proc) await np.ask({ op: 'setup', m: s.m, k: s.k, n: s.n, kind });
      const ours = [];
      const theirs = [];
      // Between the two sides, a pause: OpenBLAS's idle threads spin for a while after a call
      // (and secvit's for ~50 us); neither side is measured while the other's threads still spin.
      const settle = () => new Promise((r) => setTimeout(r, 150));
      for (let r = 0; r < rounds; r++) {
        await settle();
        ours.push(...(await secvitSamples(fn, ms)));
        if (np.proc) {
          await settle();
          theirs.push(...(await np.ask({ op: 'time', ms })).samples);
        }
      }
      const flops = 2 * s.m * s.n * s.k;
      const stat = (xs) => (xs.length ? { medianMs: median(xs), minMs: Math.min(...xs), maxMs: Math.max(...xs), gflops: flops / (median(xs) * 1e6), samples: xs.length } : null);
      const mine = stat(ours);
      const blas = stat(theirs);
      rows.push({ name: s.name, kind, m: s.m, k: s.k, n: s.n, secvit: mine, openblas: blas, ratio: blas ? blas.medianMs / mine.medianMs : null });
      for (const t of [a, b, bias, scale, res]) t.dispose();
    }
  }
  np.close?.();
  return { rows, numpy: np.version ?? null, numpyMissing: np.proc ? null : np.reason };
}

export function printGemm(result, threads) {
  console.log(`\nGEMM vs OpenBLAS (NumPy ${result.numpy ?? 'n/a'}), ${threads} thread(s), side by side: median ms [min-max], GFLOP/s; ratio = OpenBLAS time / secvit time (> 1: secvit faster)`);
  if (result.numpyMissing) console.log(`  OpenBLAS rows skipped: ${result.numpyMissing}`);
  console.table(result.rows.map((r) => ({
    shape: `${r.name} ${r.m}x${r.k}x${r.n}`,
    kind: r.kind,
    secvit: `${r.secvit.medianMs.toFixed(3)} [${r.secvit.minMs.toFixed(3)}-${r.secvit.maxMs.toFixed(3)}] ${r.secvit.gflops.toFixed(0)}`,
    openblas: r.openblas ? `${r.openblas.medianMs.toFixed(3)} [${r.openblas.minMs.toFixed(3)}-${r.openblas.maxMs.toFixed(3)}] ${r.openblas.gflops.toFixed(0)}` : 'skipped',
    ratio: r.ratio?.toFixed(2) ?? '',
  })));
}
