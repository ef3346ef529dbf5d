// secvit next to onnxruntime-node, the peer users would run instead: the authors' SecViT-T and its
// SEC attention module exported to ONNX (../shared/peers). One process, the same thread count
// (2 unless --threads), the same inputs, runs alternating (ORT, secvit, ORT, ...) so that both see
// the same machine noise; prints medians with min-max and the ratios, and checks that the whole
// models agree.
//
//   npm run bench:peers [-- --full] [--threads N] [--rounds N] [--json FILE]
//
// Needs onnxruntime-node (a devDependency) and ../shared/peers (or SECVIT_SHARED_DIR).
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { median, seeded } from './util.mjs';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const { values: args } = parseArgs({
  options: { full: { type: 'boolean', default: false }, threads: { type: 'string', default: '2' }, json: { type: 'string' }, rounds: { type: 'string' } },
});
const threads = Number(args.threads);
const shared = process.env.SECVIT_SHARED_DIR ?? path.resolve(root, '..', 'shared');
const peers = path.join(shared, 'peers');
if (!existsSync(path.join(peers, 'secvit_t.onnx'))) {
  console.error(`bench:peers: ${peers}/secvit_t.onnx not found (set SECVIT_SHARED_DIR)`);
  process.exit(2);
}
const ort = createRequire(path.join(root, 'package.json'))('onnxruntime-node');
const secvit = await import(path.join(root, 'dist', 'esm', 'index.js'));
secvit.setNumThreads(threads);
// ORT's pool threads spin for a while after each run (allow_spinning), which on 2 cores takes the
// CPU from whatever runs next; off here, so that alternating does not charge ORT's spinning to
// secvit (ORT alone is no slower with it off: see BENCHMARKS.md).
const spin = process.env.ORT_SPIN ?? '0';
const session = (file) => ort.InferenceSession.create(path.join(peers, file), {
  intraOpNumThreads: threads, interOpNumThreads: 1, extra: { session: { intra_op: { allow_spinning: spin } } },
});

const stat = (xs) => ({ median: median(xs), min: Math.min(...xs), max: Math.max(...xs), runs: xs.length });

/** Alternates the two, `rounds` times after `warmup` rounds; ms per call. */
async function sideBySide(runOrt, runSecvit, { rounds: wanted, warmup = 2 }) {
  const rounds = args.rounds !== undefined ? Number(args.rounds) : wanted;
  const o = [], s = [], ratio = [];
  for (let r = 0; r < warmup + rounds; r++) {
    let t = performance.now();
    await runOrt();
    const to = performance.now() - t;
    t = performance.now();
    await runSecvit();
    const ts = performance.now() - t;
    if (r >= warmup) {
      o.push(to);
      s.push(ts);
      ratio.push(ts / to);
    }
  }
  return { ort: stat(o), secvit: stat(s), ratioOfMedians: median(s) / median(o), medianPairedRatio: median(ratio) };
}

function relError(a, b) {
  let n = 0, d = 0;
  for (let i = 0; i < a.length; i++) {
    n += (a[i] - b[i]) ** 2;
    d += b[i] ** 2;
  }
  return Math.sqrt(n / d);
}

const rows = [];
const fmt = (st) => `${st.median.toFixed(1)} (${st.min.toFixed(1)}-${st.max.toFixed(1)})`;
function report(name, batch, r, extra = {}) {
  const row = { name, batch, ...r, ...extra };
  rows.push(row);
  console.log(`${name.padEnd(34)} b${String(batch).padEnd(2)}  ORT ${fmt(r.ort).padEnd(22)} secvit ${fmt(r.secvit).padEnd(22)} ratio ${r.ratioOfMedians.toFixed(3)} (paired ${r.medianPairedRatio.toFixed(3)})` +
    (extra.relError !== undefined ? `  logits rel. error ${extra.relError.toExponential(1)}` : '') +
    (batch > 1 ? `  ${(1000 * batch / r.secvit.median).toFixed(1)} vs ${(1000 * batch / r.ort.median).toFixed(1)} img/s` : ''));
}

console.log(`secvit vs onnxruntime-node ${ort.env?.versions?.common ?? ''}, ${threads} threads, ${os.cpus()[0]?.model ?? ''}; ms per call: median (min-max)`);

// Whole model: SecViT-T with the same weights.
{
  const sess = await session('secvit_t.onnx');
  const model = secvit.SecViT.load(path.join(peers, 'secvit_t.weights.safetensors')).requiresGrad(false);  // inference
  for (const batch of args.full ? [1, 8] : [1, 8]) {
    const x = seeded(batch * 3 * 224 * 224, 7 + batch, 4);
    const feeds = { pixels: new ort.Tensor('float32', x, [batch, 3, 224, 224]) };
    const xt = secvit.tensor(x, [batch, 3, 224, 224]);
    const want = (await sess.run(feeds)).logits.data;
    const y0 = model.forward(xt);
    const err = relError(await y0.data(), want);
    y0.dispose();
    const r = await sideBySide(() => sess.run(feeds), async () => {
      const y = model.forward(xt);
      await y.data();
      y.dispose();
    }, { rounds: batch === 1 ? (args.full ? 40 : 15) : (args.full ? 12 : 5) });
    report('SecViT-T forward', batch, r, { relError: err });
    xt.dispose();
  }
  model.dispose();
  await sess.release();
}

// The SEC attention module (qkv 1x1 conv, LCE, RoPE, SEC, out_proj) at SecViT-T's stage shapes.
// The ONNX files hold their own random weights; secvit's module has SecViT-T's random ones (the
// time does not depend on the values; agreement is checked on the whole model above).
{
  const model = secvit.SecViT.create('secvit-t', { seed: 1 }).requiresGrad(false);
  const shapes = [[64, 56, 56], [128, 28, 28], [256, 14, 14]];
  for (const stage of [0, 1, 2]) {
    const sess = await session(`sec_attn_t_stage${stage}.onnx`);
    const attn = model.layers.items[stage].blocks.items[0].attn;
    for (const batch of args.full ? [1, 8] : [1]) {
      const dims = [batch, ...shapes[stage]];
      const x = seeded(dims.reduce((a, b) => a * b, 1), 11 + stage, 2);
      const feeds = { x: new ort.Tensor('float32', x, dims) };
      const xt = secvit.tensor(x, dims);
      const r = await sideBySide(() => sess.run(feeds), async () => {
        const y = attn.forward(xt);
        await y.data();
        y.dispose();
      }, { rounds: args.full ? 40 : 20 });
      report(`SEC attention module, stage ${stage}`, batch, r);
      xt.dispose();
    }
    await sess.release();
  }
  model.dispose();
}

const out = args.json ?? path.join(root, 'bench', 'results', 'peers.json');
mkdirSync(path.dirname(out), { recursive: true });
writeFileSync(out, JSON.stringify({ date: new Date().toISOString(), threads, cpu: os.cpus()[0]?.model, ort: ort.env?.versions, rows }, null, 1));
console.log(`\nwritten: ${path.relative(process.cwd(), out)}`);
