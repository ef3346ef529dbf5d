// Every gradient case table (test/grads/*.cases.ts) on every backend (cpu on both SIMD paths,
// cuda-emu, cuda when present), per dtype, with poisoned outputs; and each table's reference
// gradients against finite differences of its reference forward (float64).
import { describe, expect, it } from 'vitest';
import { differentiableOps, listOps } from '../lib/index.js';
import { checkReferences, opsRun, runGradCases, type GradCase } from './helpers/grad-cases.js';
import { targets } from './helpers/op-cases.js';

const tables = import.meta.glob<{ cases: GradCase[] }>('./grads/*.cases.ts', { eager: true });

describe('reference gradients (float64, finite differences)', () => {
  Object.entries(tables).forEach(([file, mod], i) => {
    describe(file.replace(/^.*\/(.*)\.cases\.ts$/, '$1'), () => checkReferences(mod.cases, 5000 + i * 104729));
  });
});

for (const target of targets()) {
  describe(`gradients on ${target.label}`, () => {
    Object.entries(tables).forEach(([file, mod], i) => {
      describe(file.replace(/^.*\/(.*)\.cases\.ts$/, '$1'), () => runGradCases(mod.cases, target, 5000 + i * 104729));
    });
  });
}

// The public ops without a gradient, each with the reason its rules (native/ops/*.h) give; asking
// for one raises an Error naming the op (test/autograd.test.ts).
const NO_GRADIENT: Record<string, string> = {
  foldBatchNorm: 'an inference-time transformation of weights',
  secAttentionUnfused: "the benchmark's unfused baseline",
  copy: 'the tensor methods that run it (contiguous, cast, to) record their own nodes',
  sumSquares: "the optimizers' gradient-norm tool",
  adamwStep: 'an in-place update under noGrad', sgdStep: 'an in-place update under noGrad', scaleInPlace: 'an in-place update under noGrad',
  secAttentionBackward: 'a backward op (no second derivatives)', windowAttentionBackward: 'a backward op',
  globalAttentionBackward: 'a backward op', im2col: "conv2d's backward", col2im: "conv2d's backward",
  depthwiseConv2dBackward: 'a backward op', conv2dTransposeWeight: "conv2d's backward", activationBackward: 'a backward op',
  linearEpilogueBackward: 'a backward op', crossEntropyBackward: 'a backward op', layerNormBackward: 'a backward op',
  batchNormBackward: 'a backward op',
};

describe('gradient coverage', () => {
  it('every public op has a gradient or is listed, with its reason, as having none', () => {
    const withGradient = new Set(differentiableOps());
    expect(listOps().filter((op) => !withGradient.has(op)).sort()).toEqual(Object.keys(NO_GRADIENT).sort());
  });
  it('every op with a gradient ran in the forward of a gradient case above', () => {
    expect(opsRun.size).toBeGreaterThan(0);
    expect(differentiableOps().filter((op) => !opsRun.has(op))).toEqual([]);
  });
});
