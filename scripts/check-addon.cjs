// Checks an addon build against the authors' goldens (../shared/golden, or SECVIT_SHARED_DIR),
// from the package's CommonJS build (dist/cjs) and with no test framework, so that it also runs
// where vitest does not: on an arm64 Node under qemu-user (scripts/test-arm64.sh), against the
// cross-compiled linux-arm64 prebuilt. SECVIT_ADDON_PATH picks the addon.
//   1. cpu, eval: the tiny SecViT's logits and features.0..3 against the float64 golden (1e-4);
//   2. cpu, train mode: logits, loss and every parameter's gradient of step 0 (1e-4 / 1e-3 of
//      max(own norm, 1e-3 x RMS of all gradient norms), as test/models/train.test.ts);
//   3. cuda-emu: the stage-0 block-0 SEC attention (the fused kernels, emulated: the fiber
//      scheduler and its context switch on this architecture) against the golden (1e-4);
//   4. memory() back to its baseline.
// Prints one line per check; exits 1 on the first failure.
'use strict';
const { readFileSync, existsSync } = require('node:fs');
const path = require('node:path');

const root = path.dirname(__dirname);
const s = require(path.join(root, 'dist', 'cjs', 'index.js'));
const shared = process.env.SECVIT_SHARED_DIR ?? path.resolve(root, '..', 'shared');
const golden = (name) => {
  const p = path.join(shared, 'golden', name);
  if (!existsSync(p)) fail(`golden file missing: ${p} (set SECVIT_SHARED_DIR)`);
  return p;
};

function fail(msg) {
  console.error(`check-addon: FAILED: ${msg}`);
  process.exit(1);
}

/** Every tensor of a safetensors file as float64 values. */
function readAll(file) {
  const f = s.readSafetensors(file);
  const out = new Map();
  for (const [name, t] of f.tensors) {
    const b = t.read();
    const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    const data = new Float64Array(t.numel);
    for (let i = 0; i < t.numel; i++) {
      if (t.dtype === 'F32') data[i] = dv.getFloat32(4 * i, true);
      else if (t.dtype === 'F64') data[i] = dv.getFloat64(8 * i, true);
      else if (t.dtype === 'I64') data[i] = Number(dv.getBigInt64(8 * i, true));
      else fail(`${file}: ${name}: dtype ${t.dtype} not handled`);
    }
    out.set(name, { shape: [...t.shape], data });
  }
  return out;
}

function metadata(file) {
  const buf = readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  return JSON.parse(buf.subarray(8, 8 + n).toString('utf8')).__metadata__;
}

const norm = (a) => {
  let q = 0;
  for (let i = 0; i < a.length; i++) q += a[i] * a[i];
  return Math.sqrt(q);
};
const relError = (got, ref) => {
  if (got.length !== ref.length) fail(`lengths differ: ${got.length} vs ${ref.length}`);
  let d = 0;
  for (let i = 0; i < ref.length; i++) d += (got[i] - ref[i]) ** 2;
  return Math.sqrt(d) / norm(ref);
};
function within(what, err, bound) {
  if (!(err < bound)) fail(`${what}: relative error ${err.toExponential(2)}, bound ${bound}`);
  return err.toExponential(2);
}
const f32 = (a) => Float32Array.from(a);

async function main() {
  const t0 = Date.now();
  console.log(`check-addon: node ${process.version} ${process.platform}-${process.arch}, addon ${process.env.SECVIT_ADDON_PATH ?? '(the package\'s own)'}`);
  const base = s.memory();
  const weights = golden('tiny.weights.safetensors');

  // 1. cpu, eval.
  {
    const io = readAll(golden('tiny.io.safetensors'));
    const model = s.SecViT.load(weights, { device: 'cpu' });
    const inp = io.get('input');
    const x = s.tensor(f32(inp.data), inp.shape);
    const logits = model.forward(x);
    const errs = [within('cpu eval logits', relError(await logits.data(), io.get('logits').data), 1e-4)];
    const feats = model.features(x);
    for (let i = 0; i < feats.length; i++) {
      errs.push(within(`cpu eval features.${i}`, relError(await feats[i].data(), io.get(`features.${i}`).data), 1e-4));
    }
    for (const t of [x, logits, ...feats]) t.dispose();
    model.dispose();
    console.log(`check-addon: cpu eval: logits and features.0..3 within 1e-4 of the golden (${errs.join(', ')})`);

    // 3. cuda-emu: the SEC attention of stage 0, block 0.
    const emu = s.SecViT.load(weights, { device: 'cuda-emu' });
    const ai = io.get('stage0.block0.attn.input');
    const ain = s.tensor(f32(ai.data), ai.shape, { device: 'cuda-emu' });
    const a = emu.layers.items[0].blocks.items[0].attn.forward(ain);
    const e = within('cuda-emu SEC attention', relError(await a.data(), io.get('stage0.block0.attn.output').data), 1e-4);
    for (const t of [ain, a]) t.dispose();
    emu.dispose();
    console.log(`check-addon: cuda-emu: the stage-0 block-0 SEC attention within 1e-4 of the golden (${e})`);
  }

  // 2. cpu, train mode: step 0's logits, loss and gradients.
  {
    const trainFile = golden('tiny.train.safetensors');
    const g = readAll(trainFile);
    const meta = metadata(trainFile);
    const model = s.SecViT.load(weights, { device: 'cpu', config: { ...JSON.parse(meta.config), drop_path_rate: 0 } });
    model.train();
    const inp = g.get('step0.input');
    const x = s.tensor(f32(inp.data), inp.shape);
    const logits = model.forward(x);
    const le = within('cpu train-mode logits', relError(await logits.data(), g.get('step0.logits').data), 1e-4);
    const loss = s.crossEntropy(logits, Int32Array.from(g.get('step0.labels').data), { labelSmoothing: 0.1 });
    const want = JSON.parse(meta.losses)[0];
    const got = (await loss.data())[0];
    if (!(Math.abs(got - want) < 1e-4)) fail(`cpu train-mode loss ${got}, golden ${want}`);
    await loss.backward();
    const named = [...model.namedParameters()];
    const refNorms = named.map(([n]) => norm(g.get(`grad.${n}`).data));
    const floor = Math.sqrt(refNorms.reduce((q, v) => q + v * v, 0) / refNorms.length) * 1e-3;
    let worst = 0;
    for (const [name, p] of named) {
      const ref = g.get(`grad.${name}`).data;
      if (!p.grad) fail(`${name} has no gradient`);
      const gotG = await p.grad.data();
      let d = 0;
      for (let i = 0; i < ref.length; i++) d += (gotG[i] - ref[i]) ** 2;
      const err = Math.sqrt(d) / Math.max(norm(ref), floor);
      within(`grad.${name}`, err, 1e-3);
      worst = Math.max(worst, err);
    }
    for (const t of [x, logits, loss]) t.dispose();
    model.dispose();
    console.log(`check-addon: cpu train mode: logits (${le}), loss and all ${named.length} gradients (worst ${worst.toExponential(2)}, bound 1e-3) match the golden`);
  }

  // 4. Nothing left behind.
  const now = s.memory();
  if (now.tensors !== base.tensors || now.hostBytes !== base.hostBytes || now.deviceBytes !== base.deviceBytes) {
    fail(`memory() did not return to its baseline: ${JSON.stringify(now)} vs ${JSON.stringify(base)}`);
  }
  console.log(`check-addon: memory() back to its baseline; OK in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

main().catch((e) => fail(e && e.stack ? e.stack : String(e)));
