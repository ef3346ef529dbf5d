// The README's code blocks of the Tensors, Attention, Layers, profiler and Training sections, run as
// written: each block is taken from README.md (JavaScript: test/readme.blocks.test.ts checks it
// parses on Node 20) and run in a child process from a user's project, importing 'secvit' as a
// user does (test/models/readme.test.ts runs the Models, Images/pipeline and Swin/ViT examples).
// Each block defines everything it uses (seeded randn/rand inputs, which the test draws again
// here with the same seeds for its references). Nothing of the block is rewritten except that
// each top-level statement is recorded: an expression statement's value passes through a
// recorder (serialized at once) and memory() is read after every statement, so that what the
// comments claim (shapes, values, views without copies, scopes that dispose) is checked here,
// against the double-precision references of test/reference. The '## Adding an op' section has no code
// block (its steps are prose naming files), and the shell blocks at the top are commands.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import ts from 'typescript';
import { afterAll, describe, expect, it } from 'vitest';
import { createModel, noGrad, profileOps, rand, randn, type Tensor } from '../lib/index.js';
import { readmeBlocks, userProject } from './helpers/readme.js';
import { globalAttentionRef, secAttentionRef, secOrderRef, windowAttentionRef } from './reference/attention.js';
import {
  avgPoolRef, batchNormRef, broadcastRef, conv2dRef, geluRef, layerNormRef, linearRef, rope2dRef, ropeAngles, siluRef,
} from './reference/layers.js';

const repo = resolve(__dirname, '..');
const dir = mkdtempSync(join(tmpdir(), 'secvit-readme-run-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The sections whose block this file runs, and those test/models/readme.test.ts runs. */
const RUN_HERE = ['Tensors', 'Attention', 'Layers', 'Speed and where the time goes', 'Training'];
const RUN_IN_MODELS_TEST = ['Models', 'Images and the one-call pipeline', 'Swin, ViT and SEC inside them'];

function blockOf(section: string): string {
  const found = readmeBlocks().filter((b) => b.section === section);
  expect(found, `one code block under "${section}"`).toHaveLength(1);
  return found[0].code;
}

// The child's recorder: each step's value is serialized when it is made (a tensor disposed later
// in the block was read while alive); tensors become { shape, strides, dtype, device, data }.
const RECORDER = `
import * as __secvit from 'secvit';
import { writeFileSync as __writeFileSync } from 'node:fs';
const __steps = [];
const __kept = {};
const __ser = (v) => {
  if (v instanceof __secvit.Tensor)
    return v.disposed ? { tensor: 'disposed' } : { tensor: true, shape: [...v.shape], strides: [...v.strides], dtype: v.dtype, device: v.device, data: Array.from(v.dataSync()) };
  if (ArrayBuffer.isView(v)) return { typed: v.constructor.name, data: Array.from(v) };
  if (Array.isArray(v)) return v.map(__ser);
  if (typeof v === 'bigint') return String(v);
  if (typeof v === 'function') return '[function]';
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, __ser(x)]));
  return v;
};
const __step = (text, ...value) => {
  const m = __secvit.memory();
  __steps.push({ text, value: value.length ? __ser(value[0]) : undefined, tensors: m.tensors, hostBytes: m.hostBytes });
  return value[0];
};
const __keep = (name, v) => { __kept[name] = __ser(v); };
`;

/** The block with a record after each top-level statement (imports aside); the code itself unchanged. */
function instrument(code: string): string {
  const sf = ts.createSourceFile('block.ts', code, ts.ScriptTarget.ES2022, true, ts.ScriptKind.TS);
  let out = '';
  let at = 0;
  for (const s of sf.statements) {
    if (ts.isImportDeclaration(s)) continue;
    const start = s.getStart(sf);
    out += code.slice(at, start);
    if (ts.isExpressionStatement(s)) {
      const expr = s.expression.getText(sf);
      out += `__step(${JSON.stringify(expr)}, (${expr}));`;
    } else {
      out += `${s.getText(sf)}\n__step(${JSON.stringify(s.getText(sf))});`;
    }
    at = s.getEnd();
  }
  return out + code.slice(at);
}

interface Serialized {
  tensor?: true | 'disposed';
  shape: number[];
  strides: number[];
  dtype: string;
  device: string;
  data: number[];
  typed?: string;
}

/** What the child sent back: JSON, so its shape is the test's to check. */
type Json = any;

interface Step {
  text: string;
  value: Json;
  tensors: number;
  hostBytes: number;
}

interface Run {
  /** The value a top-level expression statement gave, and what it changed in memory(). */
  step(text: string): { value: Json; tensors: number; hostBytes: number };
  kept: Record<string, Json>;
  steps: Step[];
  stdout: string;
}

/**
 * Runs a section's block, as written, in a child process in a user's project; `epilogue` runs
 * after it (`__keep(name, value)` returns a value to the test; `__secvit` is the package).
 */
function runBlock(section: string, epilogue = ''): Run {
  const code = blockOf(section);
  const source = [
    RECORDER,
    `__step('<start>');`,
    instrument(code),
    epilogue,
    '__writeFileSync(process.env.SECVIT_README_OUT, JSON.stringify({ steps: __steps, kept: __kept }));',
  ].join('\n');
  const js = ts.transpileModule(source, {
    compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext, verbatimModuleSyntax: true },
    reportDiagnostics: true,
  });
  expect((js.diagnostics ?? []).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'))).toEqual([]);
  const file = join(dir, `${section.replace(/\W+/g, '_')}.json`);
  // The program on stdin, run from a user's project: 'secvit' is the package (dist/).
  const project = userProject();
  let stdout: string;
  try {
    stdout = execFileSync(process.execPath, ['--input-type=module'], {
      input: js.outputText, cwd: project.dir, encoding: 'utf8', env: { ...process.env, SECVIT_README_OUT: file }, maxBuffer: 64 << 20,
    });
  } finally {
    project.dispose();
  }
  const { steps, kept } = JSON.parse(readFileSync(file, 'utf8')) as { steps: Step[]; kept: Run['kept'] };
  expect(steps[0].text).toBe('<start>');
  return {
    steps,
    kept,
    stdout,
    step(text) {
      const at = steps.map((s, i) => (s.text === text ? i : -1)).filter((i) => i > 0);
      expect(at, `one top-level statement \`${text}\` in the "${section}" block`).toHaveLength(1);
      const [s, prev] = [steps[at[0]], steps[at[0] - 1]];
      return { value: s.value, tensors: s.tensors - prev.tensors, hostBytes: s.hostBytes - prev.hostBytes };
    },
  };
}

/** The values `randn`/`rand` give for a seed: the block's inputs, drawn again here. */
function drawn(t: Tensor): Float32Array {
  const d = t.dataSync() as Float32Array;
  t.dispose();
  return d;
}

/** Elementwise |got - want| <= tol (1 + |want|). */
function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, what: string, tol = 2e-5): void {
  expect(got.length, `${what}: length`).toBe(want.length);
  let bad = 0;
  let first = -1;
  for (let i = 0; i < want.length; i++) {
    if (!(Math.abs(got[i] - want[i]) <= tol * (1 + Math.abs(want[i])))) {
      bad++;
      if (first < 0) first = i;
    }
  }
  expect(bad, `${what}: elements off (first at ${first}: ${got[first]} vs ${want[first]})`).toBe(0);
}

function expectTensor(v: Serialized, shape: number[], what: string, dtype = 'float32'): number[] {
  expect(v?.tensor, `${what} is a live tensor`).toBe(true);
  expect(v.shape, `${what}: shape`).toEqual(shape);
  expect(v.dtype, `${what}: dtype`).toBe(dtype);
  return v.data;
}

describe('README code blocks, run as written', () => {
  it('every TypeScript/JavaScript block is run by a test: here or in test/models/readme.test.ts', () => {
    const sections = readmeBlocks().map((b) => b.section);
    expect(sections.length).toBeGreaterThanOrEqual(6);
    // One block per section (the tests find a block by its heading), each run somewhere.
    expect(new Set(sections).size, 'one block per section').toBe(sections.length);
    expect([...sections].sort()).toEqual([...RUN_HERE, ...RUN_IN_MODELS_TEST].sort());
  });

  it('Tensors: values, dtypes, devices, views without copies, scopes that dispose, matmul', () => {
    const img = drawn(randn([2, 3, 4, 5], { seed: 0 }));
    const a = drawn(randn([2, 3], { seed: 1 }));
    const b = drawn(randn([3, 2], { seed: 2 }));
    const run = runBlock('Tensors', `
      __keep('y', y); __keep('i', i); __keep('g', g); __keep('out', out); __keep('c', c); __keep('img', img);
      __keep('z', { shape: z.shape, dtype: z.dtype, zeros: Array.from(z.dataSync()).every((e) => e === 0) });
      __keep('auto', __secvit.selectDevice('auto').device);
      __keep('threads', __secvit.getNumThreads());
      x.dispose();   // again: idempotent
      try { x.dataSync(); __keep('afterDispose', 'no error'); }
      catch (e) { __keep('afterDispose', { disposedError: e instanceof __secvit.DisposedError, op: e.op, message: e.message }); }
    `);
    const auto = run.kept.auto as string;
    const x6 = [0, 1, 2, 3, 4, 5];

    // Making tensors.
    expect(expectTensor(run.kept.y, [3, 2], 'y')).toEqual([1, 2, 3, 4, 5, 6]);
    expect(run.kept.z).toEqual({ shape: [1, 3, 224, 224], dtype: 'float32', zeros: true });
    // `randn([2, 3, 4, 5], { seed: 0 })`: the seed's values, the same here.
    expect(expectTensor(run.kept.img, [2, 3, 4, 5], 'img')).toEqual(Array.from(img));
    expect(expectTensor(run.kept.i, [2], 'i', 'int32')).toEqual([1, 2]);
    expect(expectTensor(run.kept.g, [2, 2], 'g')).toEqual([1, 2, 3, 4]);
    expect(run.kept.g.device).toBe(auto);

    // `x.shape; x.dtype; x.device; x.size; x.disposed;   // [2, 3], 'float32', 'cpu', 6, false`
    expect(run.step('x.shape').value).toEqual([2, 3]);
    expect(run.step('x.dtype').value).toBe('float32');
    expect(run.step('x.device').value).toBe('cpu');
    expect(run.step('x.size').value).toBe(6);
    expect(run.step('x.disposed').value).toBe(false);
    // Reading: copies as Float32Arrays; to() a new tensor on the device 'auto' picks.
    expect(run.step('await x.data()').value).toEqual({ typed: 'Float32Array', data: x6 });
    expect(run.step('x.dataSync()').value).toEqual({ typed: 'Float32Array', data: x6 });
    const moved = run.step(`await x.to('auto')`);
    expect(expectTensor(moved.value, [2, 3], 'x.to')).toEqual(x6);
    expect(moved.value.device).toBe(auto);
    expect(moved.tensors).toBe(1);
    expect(run.step('x.toOrt()').value).toEqual({ type: 'float32', data: { typed: 'Float32Array', data: x6 }, dims: [2, 3] });

    // Views share memory: no host bytes for reshape/permute/transpose/narrow/split/contiguous().
    const view = (text: string, shape: number[], data: number[], tensors = 1) => {
      const s = run.step(text);
      expect(expectTensor(s.value, shape, text)).toEqual(data);
      expect(s.hostBytes, `${text}: a view, no copy`).toBe(0);
      expect(s.tensors, text).toBe(tensors);
      return s.value as Serialized;
    };
    view('x.reshape([3, -1])', [3, 2], x6);
    expect(view('x.permute([1, 0])', [3, 2], [0, 3, 1, 4, 2, 5]).strides).toEqual([1, 3]);
    view('x.transpose(0, 1)', [3, 2], [0, 3, 1, 4, 2, 5]);
    view('x.narrow(1, 0, 2)', [2, 2], [0, 1, 3, 4]);
    const split = run.step('x.split(1, 1)');
    expect(split.value.map((t: Serialized) => [t.shape, t.data])).toEqual([[[2, 1], [0, 3]], [[2, 1], [1, 4]], [[2, 1], [2, 5]]]);
    expect([split.hostBytes, split.tensors]).toEqual([0, 3]);
    expect(run.step('x.strides').value).toEqual([3, 1]);
    expect(run.step('x.isContiguous()').value).toBe(true);
    view('x.contiguous()', [2, 3], x6);
    // ...and copies when the layout needs it: channels-last, and a cast.
    const cl = run.step(`img.contiguous('channelsLast')`);
    expect(expectTensor(cl.value, [2, 3, 4, 5], 'channelsLast')).toEqual(Array.from(img));
    expect(cl.value.strides).toEqual([60, 1, 15, 3]);
    expect(cl.hostBytes).toBe(120 * 4);
    const bf = run.step(`x.cast('bfloat16')`);
    // bfloat16 bits: the top half of the float32 (these integers are exact in 8 bits of mantissa).
    const bits = Array.from(new Uint32Array(new Float32Array(x6).buffer), (u) => u >>> 16);
    expect(expectTensor(bf.value, [2, 3], 'cast', 'bfloat16')).toEqual(bits);
    expect(bf.hostBytes).toBe(6 * 2);

    // dispose(): idempotent (called again after the block); using the tensor then throws DisposedError naming the op.
    expect(run.step('x.dispose()').tensors).toBe(-1);
    expect(run.kept.afterDispose).toEqual({ disposedError: true, op: 'dataSync', message: expect.stringMatching(/^dataSync: /) });

    // Scopes: the try/finally block leaves nothing; tidy keeps what it returns and what was kept.
    const scoped = run.steps.filter((s) => s.text.startsWith('{ const t = zeros([4, 4]); try {'));
    expect(scoped).toHaveLength(1);
    const at = run.steps.indexOf(scoped[0]);
    expect([scoped[0].tensors - run.steps[at - 1].tensors, scoped[0].hostBytes - run.steps[at - 1].hostBytes]).toEqual([0, 0]);
    const tidied = run.steps.findIndex((s) => s.text.startsWith('const out = tidy('));
    expect(tidied).toBeGreaterThan(0);
    expect(run.steps[tidied].tensors - run.steps[tidied - 1].tensors, 'tidy: the result and the kept tensor remain').toBe(2);
    expect(expectTensor(run.kept.out, [3], 'out')).toEqual([0, 0, 0]);
    expect(run.step('await tidy(async () => { /* async scopes work too */ })').tensors).toBe(0);

    // memory(), backends(), selectDevice(), setNumThreads().
    const mem = run.step('memory()');
    expect(Object.keys(mem.value).sort()).toEqual(expect.arrayContaining(['deviceBytes', 'gcReleasedTensors', 'hostBytes', 'peakDeviceBytes', 'peakHostBytes', 'tensors']));
    expect(mem.value.tensors).toBe(run.steps[run.steps.findIndex((s) => s.text === 'memory()')].tensors);
    const bs = run.step('backends()').value as { name: string; available: boolean; threads?: number; simd?: string; reason?: string }[];
    expect(bs.map((x) => x.name)).toEqual(expect.arrayContaining(['cpu', 'cuda']));
    const cpu = bs.find((x) => x.name === 'cpu')!;
    expect(cpu.available).toBe(true);
    expect(cpu.threads).toBeGreaterThan(0);
    expect(cpu.simd).toBeDefined();
    for (const x of bs) if (!x.available) expect(typeof x.reason, x.name).toBe('string');
    const sel = run.step(`selectDevice('auto')`).value as { device: string; reason?: string };
    expect(sel.device).toBe(auto);
    if (!bs.find((x) => x.name === 'cuda')!.available) expect(sel).toEqual({ device: 'cpu', reason: expect.stringMatching(/CUDA/) });
    expect(run.kept.threads).toBe(2);

    // matmul: queued on a's device; reading gives a @ b.
    expect(run.kept.c.device).toBe('cpu');
    const want = [0, 1].flatMap((r) => [0, 1].map((col) => [0, 1, 2].reduce((s, k) => s + a[r * 3 + k] * b[k * 2 + col], 0)));
    const cd = run.step('await c.data()').value as { typed: string; data: number[] };
    expect(cd.typed).toBe('Float32Array');
    expectClose(cd.data, want, 'matmul');
    expect(run.stdout).toBe('');
  });

  it('Attention: SEC (and its order), window and global attention equal the references; the Sync variants the same', () => {
    const [B, H, L, D] = [1, 2, 56 * 56, 8];
    const [q, k, v] = [1, 2, 3].map((seed) => drawn(randn([B, H, L, D], { seed })));
    const run = runBlock('Attention', `
      __keep('out', out); __keep('o', o); __keep('order', order); __keep('w', w); __keep('g', g);
      __keep('outSync', __secvit.secAttentionSync(q, k, v, { clusters: 32 }));
      __keep('wSync', __secvit.windowAttentionSync(q, k, v, { height: 56, width: 56, window: [7, 14], shift: true }));
      __keep('gSync', __secvit.globalAttentionSync(q, k, v));
    `);
    const s = { b: B, h: H, l: L, d: D };
    // `out = secAttention(q, k, v, { clusters: 32 })`: [B, H, L, D].
    const sec = secAttentionRef(q, k, v, s, 32);
    expectClose(expectTensor(run.kept.out, [B, H, L, D], 'out'), sec.out, 'secAttention');
    // `{ out: o, order }` with returnOrder: the same output; order int32 [B, H, L], each head's tokens by cosine to the mean key.
    expect(run.kept.o.data).toEqual(run.kept.out.data);
    const order = expectTensor(run.kept.order, [B, H, L], 'order', 'int32');
    for (let bh = 0; bh < B * H; bh++) expect(order.slice(bh * L, (bh + 1) * L), `order of head ${bh}`).toEqual(secOrderRef(k, bh * L * D, L, D));
    // Window attention: Swin windows [7, 14], shift true = half a window.
    expectClose(expectTensor(run.kept.w, [B, H, L, D], 'w'), windowAttentionRef(q, k, v, s, 56, 56, 7, 14, 3, 7), 'windowAttention');
    // Global attention: softmax(q k^T) v, no d^-0.5 inside.
    expectClose(expectTensor(run.kept.g, [B, H, L, D], 'g'), globalAttentionRef(q, k, v, s), 'globalAttention');
    // "...Sync variants": the same results.
    expect(run.kept.outSync.data).toEqual(run.kept.out.data);
    expect(run.kept.wSync.data).toEqual(run.kept.w.data);
    expect(run.kept.gSync.data).toEqual(run.kept.g.data);
  });

  it('Layers: every listed op equals its double-precision reference, the fused ones too', () => {
    const [B, C, Hh, W] = [1, 8, 4, 4];
    const [height, width, heads, d] = [4, 4, 2, 8];
    const L = height * width;
    const xs = [B, C, Hh, W];
    // The block's inputs, drawn in its order with its seeds (1, 2, ...).
    let seed = 0;
    const r = (shape: number[], std = 0.5) => drawn(randn(shape, { seed: ++seed, std }));
    const u = (shape: number[]) => drawn(rand(shape, { seed: ++seed, low: 0.5, high: 1.5 }));
    const [x, t, q] = [r(xs, 1), r([B, L, C], 1), r([B, heads, L, d], 1)];
    const [convW, convB, weight, bias, a, b] = [r([C, C, 3, 3], 0.2), r([C]), r([6, C]), r([6]), r(xs), r([C, 1, 1])];
    const [lnW, lnB, runningMean, runningVar, g, be] = [u([C]), r([C]), r([C]), u([C]), u([C]), r([C])];
    const [qkvW, qkvB, extra, gamma] = [r([3 * heads * d, C], 0.3), r([3 * heads * d]), r([B, L, C]), r([3 * heads * d])];
    const [residual, scale, angle] = [r([B, L, 3 * heads * d]), u([C]), ropeAngles(d)];
    const p = { x, t, q, convW, convB, weight, bias, a, b, lnW, lnB, runningMean, runningVar, g, be, qkvW, qkvB, extra, gamma, residual, scale, angle };
    const kScale = d ** -0.5;
    const run = runBlock('Layers', `__keep('folded', folded);`);

    const conv = (o: Parameters<typeof conv2dRef>[4], w = p.convW) => conv2dRef(p.x, xs, w, [C, C, 3, 3], o);
    const s2 = { stride: [2, 2] as [number, number], padding: [1, 1] as [number, number] };
    const c = conv({ ...s2, bias: p.convB });
    expectClose(expectTensor(run.step('conv2d(x, convW, convB, { stride: 2, padding: 1, dilation: 1, groups: 1 })').value, [B, C, 2, 2], 'conv2d'), c.y, 'conv2d');
    expectClose(expectTensor(run.step('linear(t, weight, bias)').value, [B, L, 6], 'linear'), linearRef(p.t, p.weight, B * L, C, 6, { bias: p.bias }), 'linear');
    expectClose(expectTensor(run.step('gelu(x)').value, xs, 'gelu'), Array.from(p.x, geluRef), 'gelu');
    expectClose(expectTensor(run.step('silu(x)').value, xs, 'silu'), Array.from(p.x, siluRef), 'silu');
    expectClose(expectTensor(run.step('add(a, b)').value, xs, 'add'), broadcastRef(p.a, xs, p.b, [C, 1, 1], (u, w) => u + w).y, 'add');
    expectClose(expectTensor(run.step('mul(a, b)').value, xs, 'mul'), broadcastRef(p.a, xs, p.b, [C, 1, 1], (u, w) => u * w).y, 'mul');
    expectClose(expectTensor(run.step('mul(x, 0.5)').value, xs, 'mul scalar'), Array.from(p.x, (e) => e * 0.5), 'mul scalar');
    expectClose(expectTensor(run.step('layerNorm(x, lnW, lnB, { eps: 1e-6, dim: 1 })').value, xs, 'layerNorm'),
      layerNormRef(p.x, xs, 1, 1e-6, p.lnW, p.lnB), 'layerNorm');
    expectClose(expectTensor(run.step('batchNorm(x, runningMean, runningVar, g, be, { eps: 1e-5 })').value, xs, 'batchNorm'),
      batchNormRef(p.x, xs, p.runningMean, p.runningVar, p.g, p.be, 1e-5), 'batchNorm');
    // foldBatchNorm: one conv's weight and bias computing bn(conv(x)).
    const folded = run.kept.folded as { weight: Serialized; bias: Serialized };
    const fw = expectTensor(folded.weight, [C, C, 3, 3], 'folded.weight');
    const fb = expectTensor(folded.bias, [C], 'folded.bias');
    expectClose(conv({ ...s2, bias: fb }, Float32Array.from(fw)).y, batchNormRef(c.y, c.shape, p.runningMean, p.runningVar, p.g, p.be, 1e-5), 'bn(conv) folded', 1e-4);
    expectClose(expectTensor(run.step('rope2d(q, angle, { height, width })').value, [B, heads, L, d], 'rope2d'),
      rope2dRef(p.q, [B, heads, L, d], p.angle, width), 'rope2d');
    expectClose(expectTensor(run.step('globalAvgPool2d(x)').value, [B, C, 1, 1], 'globalAvgPool2d'), avgPoolRef(p.x, xs), 'globalAvgPool2d');
    expect(expectTensor(run.step('reshape(x, [B, C, -1])').value, [B, C, Hh * W], 'reshape')).toEqual(Array.from(p.x));
    const nhwc = Array.from({ length: p.x.length }, (_, j) => {
      const [h, w, ch] = [Math.floor(j / (W * C)), Math.floor(j / C) % W, j % C];
      return p.x[(ch * Hh + h) * W + w];
    });
    expect(expectTensor(run.step('permute(x, [0, 2, 3, 1])').value, [B, Hh, W, C], 'permute')).toEqual(nhwc);
    const cl = run.step(`contiguous(x, 'channelsLast')`).value as Serialized;
    expect(expectTensor(cl, xs, 'channelsLast')).toEqual(Array.from(p.x));
    expect(cl.strides).toEqual([Hh * W * C, 1, W * C, C]);

    // Fused: y = residual + scale * rope(act(LN(t + add) W^T + b)), and x + act(scale * conv + b).
    const fl = run.steps.find((s) => s.text.startsWith('fusedLinear(t, qkvW, qkvB, '));
    expectClose(expectTensor(fl?.value, [B, L, 3 * heads * d], 'fusedLinear'), linearRef(p.t, p.qkvW, B * L, C, 3 * heads * d, {
      bias: p.qkvB, norm: { weight: p.lnW, bias: p.lnB, eps: 1e-6 }, add: p.extra, activation: 'gelu', scale: p.gamma, residual: p.residual,
      rope: { angle: p.angle, heads, height, width, kScale },
    }), 'fusedLinear');
    const fc = run.step(`fusedConv2d(x, convW, convB, { stride, padding, groups, scale, activation: 'gelu', residual: x })`).value as Serialized;
    const fcWant = conv({ stride: [1, 1], padding: [1, 1], bias: p.convB, scale: p.scale, activation: 'gelu', residual: p.x });
    expectClose(expectTensor(fc, fcWant.shape, 'fusedConv2d'), fcWant.y, 'fusedConv2d');
    // Convolutions return channels-last tensors.
    expect(fc.strides).toEqual([Hh * W * C, 1, W * C, C]);
  });

  it('Training: the loss falls, gradients reach every parameter, memory settles to the model, inference records nothing', () => {
    // The block's 8 images: two classes that differ in mean brightness, learnable in a few steps.
    const labels = [0, 1, 0, 1, 1, 0, 1, 0];
    const run = runBlock('Training', `
      __keep('losses', losses); __keep('labels', labels);
      __keep('logits', { shape: logits.shape, requiresGrad: logits.requiresGrad, gradFn: logits.gradFn, data: Array.from(logits.dataSync()) });
      __keep('grads', model.parameters().filter((p) => p.grad !== null).length);
      __keep('params', model.parameters().length);
      __keep('training', model.training);
      __keep('memory', __secvit.memory().tensors);
      __keep('slots', model.parameters().length + model.namedBuffers().length);
      __keep('batchNorms', model.namedBuffers().filter(([n]) => n.endsWith('running_mean')).length);
    `);
    const losses = run.kept.losses as number[];
    expect(run.kept.labels).toEqual({ typed: 'Int32Array', data: labels });
    expect(losses).toHaveLength(30);
    expect(losses.every(Number.isFinite)).toBe(true);
    // `labelSmoothing: 0.1`: the loss starts near ln 10 and falls.
    expect(losses[0]).toBeGreaterThan(1.5);
    expect(losses[29]).toBeLessThan(losses[0] * 0.5);
    // zeroGrad() left no gradients; eval mode; `noGrad`: the logits carry no graph.
    expect(run.kept.grads).toBe(0);
    expect(run.kept.training).toBe(false);
    expect(run.kept.logits).toMatchObject({ shape: [8, 10], requiresGrad: false, gradFn: null });
    // What is left: the model's parameters and buffers, the images, the logits, and the eval
    // forward's cached batch-norm scale and bias (two per batch norm); the optimizer's state went
    // with dispose(), every step's graph with its backward.
    expect(run.kept.memory).toBe(run.kept.slots + 2 + 2 * run.kept.batchNorms);
    // The trained model tells the two classes apart; the block prints the falling loss.
    expect(run.stdout).toBe(`${losses[0].toFixed(2)} -> ${losses[29].toFixed(2)}\n`);
    // (The model's own predictions:)
    const l = run.kept.logits.data as number[];
    const pred = labels.map((_, i) => (l[i * 10 + 1] > l[i * 10] ? 1 : 0));
    expect(pred).toEqual(labels);
  });

  it('profileOps (Speed and where the time goes): kernel time by op label, largest first, as a profile of the same forward here', async () => {
    const run = runBlock('Speed and where the time goes', `__keep('ops', ops);`);
    const ops = run.kept.ops as { device: string; label: string; calls: number; ms: number }[];
    // `[{ device: 'cpu', label: 'linear', calls: 62, ms: 33.3 }, { label: 'conv2d:dense', ... }, ...]`
    for (const r of ops) {
      expect(Object.keys(r).sort()).toEqual(['calls', 'device', 'label', 'ms']);
      expect(r.device).toBe('cpu');
      expect(Number.isInteger(r.calls) && r.calls > 0).toBe(true);
      expect(r.ms).toBeGreaterThanOrEqual(0);
    }
    expect(ops.map((r) => r.ms)).toEqual([...ops.map((r) => r.ms)].sort((x, y) => y - x));
    expect(ops.map((r) => r.label)).toEqual(expect.arrayContaining(['linear', 'conv2d:dense']));
    // The same forward profiled here: the same ops, called as often.
    using model = createModel('secvit-t', { seed: 0 });
    using pixels = randn([1, 3, 224, 224], { seed: 0 });
    const here = await profileOps(async () => { const y = noGrad(() => model.forward(pixels)); await y.data(); y.dispose(); });
    const calls = (rows: { label: string; calls: number }[]) => Object.fromEntries(rows.map((r) => [r.label, r.calls]));
    expect(calls(ops)).toEqual(calls(here.ops));
  });
});
