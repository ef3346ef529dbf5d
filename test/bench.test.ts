// The benchmark scripts themselves: they must run and report the ratios BENCHMARKS.md quotes.
// Smallest configuration only (timings here mean nothing); the GPU script runs on cuda-emu,
// the only way to exercise it without a GPU.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

interface BenchJson {
  results: Array<{ rows: Array<{ name: string; medianMs: number }>; ratios?: Record<string, number> }>;
  dispatch?: { returnUs: { median: number }; chainMs: { median: number }; awaitedChainMs: { median: number } };
  gemm?: Array<{ threads: number; numpyMissing: string | null; rows: Array<{ name: string; kind: string; secvit: { medianMs: number; gflops: number }; openblas: { medianMs: number } | null; ratio: number | null }> }>;
  layers?: Array<{ batch: number; rows: Array<{ name: string; kind: string; medianMs: number }> }>;
}

function bench(args: string[]): { out: string; json: BenchJson } {
  const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'secvit-bench-')), 'out.json');
  const out = execFileSync(process.execPath, ['bin/secvit.mjs', 'bench', ...args, '--json', file], { encoding: 'utf8' });
  return { out, json: JSON.parse(readFileSync(file, 'utf8')) };
}

describe('benchmark scripts', () => {
  it('CPU: SEC fused vs window, global and unfused, with ratios', () => {
    const { json } = bench(['--groups', 'attention', '--stages', '2', '--batches', '1', '--threads', '1']);
    const group = json.results.find((g) => g.ratios)!;
    expect(group.rows.map((r) => r.name)).toEqual(['SEC fused (C=2)', 'window 7x14', 'window 7x7', 'SEC unfused (C=2)', 'global']);
    for (const r of group.rows) {
      expect(r.medianMs).toBeGreaterThan(0);
      expect((r as { peakBytes?: number }).peakBytes).toBeGreaterThan(0);
    }
    expect(group.ratios!.secOverWindow7x14).toBeGreaterThan(0);
    expect(group.ratios!.unfusedOverSec).toBeGreaterThan(0);
  });

  it('CPU: op-layer cost, GEMM side by side with OpenBLAS, and a row per layer kind', () => {
    const { out, json } = bench(['--groups', 'dispatch,gemm,layers', '--threads', '1']);
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
    for (const r of json.layers![0].rows) expect(r.medianMs).toBeGreaterThan(0);
  });

  it('GPU script: runs on cuda-emu, fp32 and bf16, with the copy bandwidth', () => {
    const { out, json } = bench(['--gpu', '--device', 'cuda-emu', '--stages', '2', '--batches', '1']);
    expect(out).toContain('of copy');
    expect(json.results).toHaveLength(2);
    for (const g of json.results) {
      expect(g.rows.map((r) => r.name)).toEqual(['SEC fused (C=2)', 'window 7x14', 'window 7x7', 'global', 'SEC unfused (C=2)', 'd2d copy of q']);
      expect(g.ratios!.secBandwidthOverCopy).toBeGreaterThan(0);
    }
  });

  it('GPU script: says plainly when no GPU is present', () => {
    const out = execFileSync(process.execPath, ['bin/secvit.mjs', 'bench', '--gpu'], { encoding: 'utf8' });
    if (!out.includes('secvit bench --gpu on cuda:')) expect(out).toMatch(/no GPU is present here, nothing was measured \(cuda: .+\)/);
  });
});
