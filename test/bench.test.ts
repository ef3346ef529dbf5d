// The benchmark scripts themselves: they must run and report the ratios BENCHMARKS.md quotes.
// Smallest configuration only (timings here mean nothing); the GPU script runs on cuda-emu,
// the only way to exercise it without a GPU.
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { sharedFile } from './helpers/shared.js';

interface BenchJson {
  results: Array<{ rows: Array<{ name: string; medianMs: number }>; ratios?: Record<string, number> }>;
  dispatch?: { returnUs: { median: number }; chainMs: { median: number }; awaitedChainMs: { median: number } };
  gemm?: Array<{ threads: number; numpyMissing: string | null; rows: Array<{ name: string; kind: string; secvit: { medianMs: number; gflops: number }; openblas: { medianMs: number } | null; ratio: number | null }> }>;
  layers?: Array<{ batch: number; rows: Array<{ name: string; kind: string; medianMs: number }> }>;
}

// Child processes run asynchronously: a test worker blocked on one for over a minute misses
// vitest's RPC deadline even when the test passes.
const run = async (args: string[]): Promise<string> => (await promisify(execFile)(process.execPath, args, { encoding: 'utf8', maxBuffer: 64 << 20 })).stdout;

async function bench(args: string[]): Promise<{ out: string; json: BenchJson }> {
  const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'secvit-bench-')), 'out.json');
  const out = await run(['bin/secvit.mjs', 'bench', ...args, '--json', file]);
  return { out, json: JSON.parse(readFileSync(file, 'utf8')) };
}

// The benchmark scripts are plain .mjs (no declarations): their helpers, typed here.
interface BenchUtil {
  verdict(value: number, target: { max?: number; min?: number }, unit: string): { ok: boolean; text: string };
  busyNote(load1: number, cores: number, when: string): string | null;
}
type Stat = { median: number; min: number; max: number; samples: number };
interface BenchDispatch { printDispatch(r: { returnUs: Stat; chainMs: Stat; awaitedChainMs: Stat }): string[] }
const benchModule = <T>(name: string): Promise<T> => import(path.resolve('bench', name)) as Promise<T>;

describe('benchmark verdicts (issue 21, item 8)', () => {
  it('a result that misses its stated target is marked, and listed among the misses', async () => {
    const { printDispatch } = await benchModule<BenchDispatch>('dispatch.mjs');
    const { verdict } = await benchModule<BenchUtil>('util.mjs');
    expect(verdict(4.2, { max: 5 }, 'us')).toEqual({ ok: true, text: 'ok' });
    expect(verdict(6.35, { max: 5 }, 'us')).toEqual({ ok: false, text: 'MISSED (6.35 us, target <= 5 us)' });
    expect(verdict(0.8, { min: 1 }, 'x').ok).toBe(false);
    const s = (m: number) => ({ median: m, min: m, max: m, samples: 1 });
    const log = console.log, table = console.table;
    const printed: string[] = [];
    console.log = (...a: unknown[]) => printed.push(a.join(' '));
    console.table = (rows: unknown) => printed.push(JSON.stringify(rows));
    try {
      expect(printDispatch({ returnUs: s(6.35), chainMs: s(3), awaitedChainMs: s(12) })).toEqual(['op layer: small op, time to return: MISSED (6.35 us, target <= 5 us)']);
      expect(printed.join('\n')).toMatch(/MISSED \(6\.35 us, target <= 5 us\)/);
      expect(printDispatch({ returnUs: s(4.9), chainMs: s(3), awaitedChainMs: s(12) })).toEqual([]);
    } finally {
      console.log = log;
      console.table = table;
    }
  });

  it('a busy machine (load above the core count) is said to be busy', async () => {
    const { busyNote } = await benchModule<BenchUtil>('util.mjs');
    expect(busyNote(1.9, 2, 'before the run')).toBeNull();
    expect(busyNote(3.1, 2, 'before the run')).toBe('the machine was busy before the run (1-minute load 3.10 on 2 cores): these numbers mean little; rerun when it is quiet');
  });

  it('every run ends by saying whether the stated targets were met', async () => {
    const out = execFileSync(process.execPath, ['bin/secvit.mjs', 'bench', '--groups', 'dispatch', '--threads', '1'], { encoding: 'utf8' });
    expect(out).toMatch(/\n(every stated target was met|1 result\(s\) missed a stated target:\n  op layer: small op, time to return: MISSED)/);
    const load = os.loadavg()[0];
    if (load > os.cpus().length + 1) expect(out).toMatch(/note: the machine was busy/);
  });
});

describe('benchmark scripts', () => {
  it('writes a file only when asked (--out): nothing lands in the directory it runs in', async () => {
    const cwd = mkdtempSync(path.join(os.tmpdir(), 'secvit-bench-cwd-'));
    const out = (await promisify(execFile)(process.execPath, [path.resolve('bin/secvit.mjs'), 'bench', '--groups', 'dispatch', '--threads', '1'],
      { encoding: 'utf8', cwd, maxBuffer: 64 << 20 })).stdout;
    expect(out).not.toMatch(/wrote /);
    expect(readdirSync(cwd)).toEqual([]);
  });

  it('CPU: whole-model rows with a breakdown by layer kind', async () => {
    const { out, json } = await bench(['--groups', 'model', '--batches', '1', '--threads', '1']);
    const rows = (json as unknown as { model: Array<{ rows: Array<{ model: string; batch: number; medianMs: number; imagesPerS: number; activationPeakMB: number; kindsMs: Record<string, number> }> }> }).model[0].rows;
    expect(rows.map((r) => [r.model, r.batch])).toEqual([['secvit-t', 1]]);
    const r = rows[0];
    expect(r.medianMs).toBeGreaterThan(0);
    expect(r.imagesPerS).toBeCloseTo(1000 / r.medianMs, 6);
    expect(r.activationPeakMB).toBeGreaterThan(1);
    for (const kind of ['GEMM / 1x1 conv', 'dense conv', 'depthwise conv', 'attention']) expect(r.kindsMs[kind], kind).toBeGreaterThan(0);
    // The kernels account for most of the forward's wall time (the rest: dispatch, readback).
    const kernels = Object.values(r.kindsMs).reduce((a, b) => a + b, 0);
    expect(kernels).toBeLessThan(r.medianMs * 1.5);
    expect(kernels).toBeGreaterThan(r.medianMs * 0.5);
    expect(out).toContain('kernel time');
  });

  it.skipIf(!sharedFile('peers/secvit_t.onnx') || process.env.SECVIT_ADDON_PATH?.includes('asan'))(
    'peers: onnxruntime-node side by side, ratios, and the models agree', async () => {
      const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'secvit-peers-')), 'peers.json');
      const out = await run(['bench/peers.mjs', '--rounds', '1', '--json', file]);
      const json = JSON.parse(readFileSync(file, 'utf8')) as { rows: Array<{ name: string; batch: number; ratioOfMedians: number; relError?: number; ort: { median: number }; secvit: { median: number } }> };
      expect(json.rows.map((r) => `${r.name} b${r.batch}`)).toEqual([
        'SecViT-T forward b1', 'SecViT-T forward b8',
        'SEC attention module, stage 0 b1', 'SEC attention module, stage 1 b1', 'SEC attention module, stage 2 b1',
      ]);
      for (const r of json.rows) {
        expect(r.ratioOfMedians).toBeCloseTo(r.secvit.median / r.ort.median, 9);
        expect(r.ort.median).toBeGreaterThan(0);
      }
      expect(json.rows[0].relError).toBeLessThan(1e-4);
      expect(out).toContain('ratio');
    });

  it('CPU: SEC fused vs window, global and unfused, with ratios', async () => {
    const { json } = await bench(['--groups', 'attention', '--stages', '2', '--batches', '1', '--threads', '1']);
    const group = json.results.find((g) => g.ratios)!;
    expect(group.rows.map((r) => r.name)).toEqual(['SEC fused (C=2)', 'window 7x14', 'window 7x7', 'SEC unfused (C=2)', 'global']);
    for (const r of group.rows) {
      expect(r.medianMs).toBeGreaterThan(0);
      expect((r as { peakBytes?: number }).peakBytes).toBeGreaterThan(0);
    }
    expect(group.ratios!.secOverWindow7x14).toBeGreaterThan(0);
    expect(group.ratios!.secOverWindow7x14Paired).toBeGreaterThan(0);
    expect(group.ratios!.unfusedOverSec).toBeGreaterThan(0);
    // The SEC attention module (qkv .. out_proj) at the chosen stage shapes.
    const module = json.results.find((g) => (g as { module?: boolean }).module)!;
    expect(module.rows.map((r) => r.name)).toEqual(['stage 2 (E=256, 14x14)']);
    expect(module.rows[0].medianMs).toBeGreaterThan(0);
    expect((module.rows[0] as { peakBytes?: number }).peakBytes).toBeGreaterThan(0);
  });

  it('CPU: op-layer cost, GEMM side by side with OpenBLAS, and a row per layer kind', async () => {
    const { out, json } = await bench(['--groups', 'dispatch,gemm,layers', '--threads', '1']);
    expect(json.dispatch!.returnUs.median).toBeGreaterThan(0);
    expect(json.dispatch!.chainMs.median).toBeGreaterThan(0);
    expect(json.dispatch!.awaitedChainMs.median).toBeGreaterThan(0);
    const g = json.gemm![0];
    expect(g.rows.map((r) => r.name)).toEqual(['stage0 qkv/fc1', 'stage2 fc2', 'stage3 qkv/fc1', 'square']);
    for (const r of g.rows) {
      expect(r.secvit.gflops).toBeGreaterThan(0);
      // With NumPy present the OpenBLAS side is measured; without it the rows say why not.
      if (g.numpyMissing) expect(out).toContain('OpenBLAS rows skipped');
      else expect(r.ratio).toBeGreaterThan(0);
    }
    const kinds = new Set(json.layers![0].rows.map((r) => r.kind));
    expect([...kinds].sort()).toEqual(['GEMM/1x1', 'attention', 'dense conv', 'depthwise', 'element-wise', 'norm', 'pool']);
    for (const r of json.layers![0].rows) {
      expect(r.medianMs).toBeGreaterThan(0);
      expect((r as { peakBytes?: number }).peakBytes).toBeGreaterThan(0);
    }
  });

  // The training steps, smallest model, one timed round. PyTorch's side runs where /usr/bin/python3
  // has torch (a developer's machine; CI has no Python): the same parameter count, its timings
  // and what its forward saves, and the ratio of the medians.
  interface TrainRow {
    model: string; batch: number; params: number; medianMs: number; imagesPerS: number; peakMB: number; savedMB: number;
    phases: Record<string, Record<string, number>>; ratioOfMedians?: number; torch?: { params: number; medianMs: number; savedMB: number };
  }
  const hasTorch = (() => {
    try {
      execFileSync('/usr/bin/python3', ['-c', 'import torch'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  })();
  it.each([false, ...(hasTorch && !process.env.SECVIT_ADDON_PATH?.includes('asan') ? [true] : [])])(
    'CPU: training steps (forward, loss, backward, AdamW) by phase and layer kind; PyTorch side by side: %s', async (torch) => {
      const { out, json } = await bench(['--groups', 'train', '--train-models', 'secvit-64', '--rounds', '1', torch ? '--torch' : '--no-torch']);
      const rows = (json as unknown as { train: Array<{ rows: TrainRow[] }> }).train[0].rows;
      expect(rows.map((r) => [r.model, r.batch])).toEqual([['secvit-64', 64]]);
      const r = rows[0];
      expect(r.params).toBeGreaterThan(6.5e6);
      expect(r.imagesPerS).toBeCloseTo((1000 * 64) / r.medianMs, 6);
      // What the forward keeps for the backward is most of the step's peak (both above the
      // parameters, gradients and optimizer state).
      expect(r.savedMB).toBeGreaterThan(10);
      expect(r.peakMB).toBeGreaterThanOrEqual(r.savedMB);
      expect(Object.keys(r.phases)).toEqual(['forward', 'backward', 'optimizer']);
      for (const kind of ['GEMM / 1x1 conv', 'dense conv', 'depthwise conv', 'attention', 'norms']) {
        expect(r.phases.forward[kind], `forward ${kind}`).toBeGreaterThan(0);
        expect(r.phases.backward[kind], `backward ${kind}`).toBeGreaterThan(0);
      }
      expect(r.phases.optimizer.optimizer).toBeGreaterThan(0);
      expect(out).toContain('backward kernel time');
      if (torch) {
        expect(r.torch!.params).toBe(r.params);
        expect(r.ratioOfMedians).toBeCloseTo(r.medianMs / r.torch!.medianMs, 9);
        expect(r.torch!.savedMB).toBeGreaterThan(10);
      } else {
        expect(r.torch).toBeUndefined();
      }
    });

  it('GPU script: runs on cuda-emu, fp32 and bf16, with the copy bandwidth', async () => {
    const { out, json } = await bench(['--gpu', '--device', 'cuda-emu', '--stages', '2', '--batches', '1']);
    expect(out).toContain('of copy');
    expect(json.results).toHaveLength(2);
    for (const g of json.results) {
      expect(g.rows.map((r) => r.name)).toEqual(['SEC fused (C=2)', 'window 7x14', 'window 7x7', 'global', 'SEC unfused (C=2)', 'd2d copy of q']);
      expect(g.ratios!.secBandwidthOverCopy).toBeGreaterThan(0);
    }
  });

  it('GPU script: says plainly when no GPU is present', async () => {
    const out = await run(['bin/secvit.mjs', 'bench', '--gpu']);
    if (!out.includes('secvit bench --gpu on cuda:')) expect(out).toMatch(/no GPU is present here, nothing was measured \(cuda: .+\)/);
  });
});
