// Every op's case table (test/ops/*.cases.ts) on every backend: cpu on both SIMD paths,
// cuda-emu (the CUDA kernels, emulated), cuda when a GPU is present; each case against its
// double-precision reference, per dtype, with poisoned outputs.
import { describe, expect, it } from 'vitest';
import { listOps } from '../lib/index.js';
import { native } from '../lib/native.js';
import { runCases, targets, type OpCase } from './helpers/op-cases.js';

const tables = import.meta.glob<{ cases: OpCase[] }>('./ops/*.cases.ts', { eager: true });

for (const target of targets()) {
  describe(target.label, () => {
    Object.entries(tables).forEach(([file, mod], i) => {
      const op = file.replace(/^.*\/(.*)\.cases\.ts$/, '$1');
      describe(op, () => runCases(mod.cases, target, 1000 + i * 104729));
    });
  });
}

describe('listOps', () => {
  it('names every public op of the registry and hides the internal ones', () => {
    const ops = listOps();
    for (const name of [
      'matmul', 'secAttention', 'windowAttention', 'globalAttention', 'conv2d', 'linear', 'gelu', 'silu', 'add', 'mul',
      'layerNorm', 'batchNorm', 'foldBatchNorm', 'rope2d', 'globalAvgPool2d', 'copy',
    ]) expect(ops).toContain(name);
    expect(native.opNames()).toContain('_debug');
    expect(ops.filter((n) => n.startsWith('_'))).toEqual([]);
  });
});
