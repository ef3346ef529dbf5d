// Every op's case table (test/ops/*.cases.ts) on every backend: cpu on both SIMD paths,
// cuda-emu (the CUDA kernels, emulated), cuda when a GPU is present; each case against its
// double-precision reference, per dtype, with poisoned outputs.
import { describe } from 'vitest';
import { runCases, targets, type OpCase } from './helpers/op-cases.js';

const tables = import.meta.glob<{ cases: OpCase[] }>('./ops/*.cases.ts', { eager: true });

for (const target of targets()) {
  describe(target.label, () => {
    for (const [file, mod] of Object.entries(tables)) {
      const op = file.replace(/^.*\/(.*)\.cases\.ts$/, '$1');
      describe(op, () => runCases(mod.cases, target, 1000 + op.length * 31));
    }
  });
}
