// A fixed workload for profilers: `valgrind --tool=callgrind --cache-sim=yes node
// bench/profile-attention.mjs sec|window [B] [STAGE] [CALLS] [THREADS]` runs SEC or window attention
// (7x14) at a SecViT-T stage shape on THREADS threads (default 1) with deterministic inputs.
// See BENCHMARKS.md.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const s = await import(path.join(root, 'dist', 'esm', 'index.js'));
const [which = 'sec', bArg = '8', stageArg = '0', callsArg = '3', threadsArg = '1'] = process.argv.slice(2);
const stage = [{ h: 2, side: 56, c: 32 }, { h: 4, side: 28, c: 8 }, { h: 8, side: 14, c: 2 }][Number(stageArg)];
s.setNumThreads(Number(threadsArg));
const B = Number(bArg), L = stage.side * stage.side, D = 32, n = B * stage.h * L * D;
const shape = [B, stage.h, L, D];
const make = (seed) => {
  const a = new Float32Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    a[i] = x / 2 ** 32 - 0.5;
  }
  return s.tensor(a, shape);
};
const q = make(1), k = make(2), v = make(3);
for (let i = 0; i < Number(callsArg); i++) {
  if (which === 'sec') s.secAttentionSync(q, k, v, { clusters: stage.c }).dispose();
  else s.windowAttentionSync(q, k, v, { height: stage.side, width: stage.side, window: [7, 14] }).dispose();
}
