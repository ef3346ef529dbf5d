// Swin and ViT inference against torchvision (issue 20): torchvision's own models in PyTorch
// (bench/torchvision_peer.py, MKL-DNN/BLAS kernels) and secvit's, the same configs and input,
// eval mode, no gradients, on the same threads, their forwards interleaved one by one so that
// the machine's noise hits both alike. Also the SEC variants (secvit only: torchvision has none).
//
//   node bench/families.mjs [--models swin-t,vit-b-16] [--batch 1] [--rounds 7] [--threads 2]
//
// Reported: medians with min-max per side, and the ratio of medians (secvit / torch: below 1 is
// faster). PyTorch's linear layers run on the system BLAS: Debian's python3-torch links the
// reference libblas unless an optimized one is installed (libopenblas0-pthread registers itself
// as libblas.so.3); the header line says which.
import { spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createModel, getNumThreads, noGrad, setNumThreads, tensor } from '../dist/esm/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = Object.fromEntries(process.argv.slice(2).map((a, i, all) => (a.startsWith('--') ? [a.slice(2), all[i + 1]] : null)).filter(Boolean));
const models = (args.models ?? 'swin-t,sec-swin-t,vit-b-16,sec-vit-b-16').split(',');
const batch = Number(args.batch ?? 1), rounds = Number(args.rounds ?? 7), threads = Number(args.threads ?? 2);
const TORCH = { 'swin-t': 'swin_t', 'swin-s': 'swin_s', 'swin-b': 'swin_b', 'vit-b-16': 'vit_b_16', 'vit-b-32': 'vit_b_32', 'vit-l-16': 'vit_l_16' };
setNumThreads(threads);

// OMP_WAIT_POLICY=PASSIVE: PyTorch's OpenMP threads otherwise spin against OpenBLAS's (measured
// here: swin_t 349 ms median by default, 123 ms passive; vit_b_16 814 and 247 ms).
const peer = spawn('/usr/bin/python3', [path.join(here, 'torchvision_peer.py'), '--serve'], {
  stdio: ['pipe', 'pipe', 'inherit'], env: { OMP_WAIT_POLICY: 'PASSIVE', ...process.env },
});
const lines = readline.createInterface({ input: peer.stdout })[Symbol.asyncIterator]();
async function ask(msg) {
  peer.stdin.write(`${JSON.stringify(msg)}\n`);
  const r = JSON.parse((await lines.next()).value);
  if (r.error) throw new Error(`torchvision peer: ${r.error}`);
  return r;
}
const med = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const fmt = (a) => `${med(a).toFixed(1)} ms [${Math.min(...a).toFixed(1)}-${Math.max(...a).toFixed(1)}]`;

const blas = (await import('node:fs')).realpathSync('/usr/lib/x86_64-linux-gnu/libblas.so.3');
console.log(`${os.cpus()[0]?.model} x ${os.availableParallelism()}, ${getNumThreads()} threads, batch ${batch}, 224 x 224, ${rounds} rounds; PyTorch's BLAS: ${blas}`);
for (const name of models) {
  const m = createModel(name, { seed: 0 });
  const x = tensor(Float32Array.from({ length: batch * 3 * 224 * 224 }, (_, i) => ((i * 2654435761) % 1000) / 1000 - 0.5), [batch, 3, 224, 224]);
  const ours = [];
  const theirs = [];
  const run = () => {
    const t0 = performance.now();
    const y = noGrad(() => m.forward(x));
    y.dataSync();
    y.dispose();
    return performance.now() - t0;
  };
  run();  // warm-up
  const tv = TORCH[name];
  if (tv) await ask({ cmd: 'setup', model: tv, batch, size: 224, threads });
  // A pause before each side lets the other's worker threads (secvit's pool, OpenBLAS's) stop
  // spinning, so that neither runs against the other's idle spinners.
  const pause = () => new Promise((r) => setTimeout(r, 100));
  for (let r = 0; r < rounds; r++) {
    await pause();
    if (tv) theirs.push((await ask({ cmd: 'run' })).ms);
    await pause();
    ours.push(run());
  }
  console.log(`${name.padEnd(13)} secvit ${fmt(ours)}` + (tv ? `   torchvision ${fmt(theirs)}   ratio ${(med(ours) / med(theirs)).toFixed(2)}` : '   (no torchvision peer)'));
  m.dispose();
  x.dispose();
}
peer.stdin.end(`${JSON.stringify({ cmd: 'quit' })}\n`);
