// Every gradient case table (test/grads/*.cases.ts) on every backend (cpu on both SIMD paths,
// cuda-emu, cuda when present), per dtype, with poisoned outputs; and each table's reference
// gradients against finite differences of its reference forward (float64).
import { describe } from 'vitest';
import { checkReferences, runGradCases, type GradCase } from './helpers/grad-cases.js';
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
