// Gradients of crossEntropy (class indices with label smoothing and ignoreIndex, probability
// targets, every reduction) and mseLoss, and of dropout / drop path (the same mask on dy),
// against test/reference/grad.ts. fp32: ~1e-7 (double accumulation on the CPU), bound 1e-5.
import { crossEntropy, dropPath, dropout, manualSeed, mseLoss, tensor, type Tensor } from '../../lib/index.js';
import type { GradCase } from '../helpers/grad-cases.js';
import { withSpecials } from '../helpers/op-cases.js';
import { crossEntropyGradRef, crossEntropyRef } from '../reference/grad.js';

const TOL = { float32: 1e-5, bfloat16: 3e-2, float16: 5e-3 };
const LABELS = [3, 0, 6, 6, -100, 1, 2];

function ce(reduction: 'mean' | 'sum' | 'none', smoothing: number, withIgnore: boolean,
  hard?: { name: string; z: GradCase['inputs'][string]; fd?: false }): GradCase {
  const labels = withIgnore ? LABELS : LABELS.map((l) => (l < 0 ? 5 : l));
  const b = labels.length;
  const c = 7;
  return {
    name: `crossEntropy, class indices, smoothing ${smoothing}, ${reduction}${withIgnore ? ', an ignored row' : ''}${hard ? `, ${hard.name}` : ''}`,
    inputs: { z: hard?.z ?? { shape: [b, c], scale: 3 } },
    ...(hard?.fd === false ? { fd: false as const } : {}),
    run: (t) => crossEntropy(t.z, labels, { labelSmoothing: smoothing, reduction }),
    forward: (v) => {
      const { rows, counted } = crossEntropyRef(v.z, b, c, labels, true, smoothing);
      if (reduction === 'none') return rows;
      const s = rows.reduce((x, y) => x + y, 0);
      return [reduction === 'sum' ? s : s / counted.filter(Boolean).length];
    },
    backward: (v, dy) => {
      const n = labels.filter((l) => l !== -100).length;
      const g = reduction === 'none' ? dy : new Float64Array(b).fill(reduction === 'sum' ? dy[0] : dy[0] / n);
      return { z: crossEntropyGradRef(v.z, b, c, labels, true, smoothing, g) };
    },
    tol: TOL,
  };
}

export const cases: GradCase[] = [
  ce('mean', 0.1, true),
  ce('sum', 0, false),
  ce('none', 0.3, true),
  // Hard numerics: logits in the hundreds (the log-softmax must subtract the row max: exp(300)
  // overflows float32); a NaN logit (row 2) makes that row's gradient NaN and leaves the others
  // finite with 'none', and with 'mean' (each row's gradient is its own softmax times dy / n).
  ce('mean', 0.1, false, { name: 'logits ~ +-300', z: { shape: [7, 7], scale: 300 } }),
  ce('none', 0, false, { name: 'a NaN logit in row 2', z: { shape: [7, 7], values: withSpecials({ 16: NaN }, 3) }, fd: false }),
  ce('mean', 0.1, true, { name: 'a NaN logit in row 2', z: { shape: [7, 7], values: withSpecials({ 16: NaN }, 3) }, fd: false }),
  {
    name: 'crossEntropy with probability targets (mixup), smoothing 0.1',
    inputs: { z: { shape: [5, 9] }, t: { shape: [5, 9], grad: false, values: (rng, n) => Float32Array.from({ length: n }, () => rng.next()) } },
    run: (t) => crossEntropy(t.z, t.t, { labelSmoothing: 0.1 }),
    forward: (v) => [crossEntropyRef(v.z, 5, 9, v.t, false, 0.1).rows.reduce((x, y) => x + y, 0) / 5],
    backward: (v, dy) => ({ z: crossEntropyGradRef(v.z, 5, 9, v.t, false, 0.1, new Float64Array(5).fill(dy[0] / 5)) }),
    tol: TOL,
  },
  {
    name: 'mseLoss, mean', inputs: { x: { shape: [4, 6] }, y: { shape: [4, 6] } },
    run: (t) => mseLoss(t.x, t.y),
    forward: (v) => [v.x.reduce((a, x, i) => a + (x - v.y[i]) ** 2, 0) / 24],
    backward: (v, dy) => ({ x: v.x.map((x, i) => (2 * (x - v.y[i]) * dy[0]) / 24), y: v.x.map((x, i) => (-2 * (x - v.y[i]) * dy[0]) / 24) }),
    tol: TOL,
  },
  {
    name: 'mseLoss, none', inputs: { x: { shape: [3, 5] }, y: { shape: [3, 5], grad: false } },
    run: (t) => mseLoss(t.x, t.y, { reduction: 'none' }),
    forward: (v) => v.x.map((x, i) => (x - v.y[i]) ** 2),
    backward: (v, dy) => ({ x: v.x.map((x, i) => 2 * (x - v.y[i]) * dy[i]) }),
    tol: TOL,
  },
  ...(['dropout', 'dropPath'] as const).map((kind): GradCase => {
    // The mask of this seed, read from the op itself on a tensor of ones (any backend draws the
    // same Philox numbers); the gradient must apply the same one.
    const mask = (): Float32Array => {
      manualSeed(7);
      const ones = tensor(new Float32Array(4 * 25).fill(1), [4, 25]);
      const m = kind === 'dropout' ? dropout(ones, 0.4) : dropPath(ones, 0.4);
      const d = m.dataSync() as Float32Array;
      ones.dispose();
      m.dispose();
      return d;
    };
    return {
      name: `${kind} p=0.4: the forward's mask on the gradient`, inputs: { x: { shape: [4, 25] } },
      run: (t: Record<string, Tensor>) => {
        manualSeed(7);
        return kind === 'dropout' ? dropout(t.x, 0.4) : dropPath(t.x, 0.4);
      },
      forward: (v) => {
        const m = mask();
        return v.x.map((x, i) => x * m[i]);
      },
      backward: (_v, dy) => {
        const m = mask();
        return { x: dy.map((g, i) => g * m[i]) };
      },
      tol: TOL,
      fd: false,
    };
  }),
];
