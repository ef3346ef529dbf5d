// The table format of the op tests (test/ops/*.cases.ts) and the runner that checks every case
// on every backend (cpu on both SIMD paths, cuda-emu, cuda when present) and dtype it lists,
// against its double-precision reference, with outputs poisoned (SECVIT_POISON) and inputs
// seeded. A case names its inputs (shape, optional layout or view), runs the op on tensors and
// computes the reference from the same (rounded) input values in double.
import { expect, it } from 'vitest';
import { backends, decodeHalf, encodeHalf, tensor, tidy, type Device, type Tensor } from '../../lib/index.js';
import { native } from '../../lib/native.js';
import { numel } from '../reference/layers.js';
import { Rng } from './random.js';
import { SIMD_PATHS, testDevices } from './backends.js';

export type FloatDType = 'float32' | 'bfloat16' | 'float16';

export interface InputSpec {
  shape: number[];
  /** Values (default: normals times `scale`). */
  values?: (rng: Rng, n: number) => Float32Array;
  scale?: number;
  /** Applied to the created tensor (a layout or a view); the case gets the result. */
  view?: (t: Tensor) => Tensor;
}

export interface OpCase {
  name: string;
  inputs: Record<string, InputSpec>;
  run: (t: Record<string, Tensor>) => Tensor | Tensor[];
  /** From the input values (after rounding to the run's dtype), in double. */
  ref: (x: Record<string, Float32Array>) => ArrayLike<number> | ArrayLike<number>[];
  /** ||out - ref|| / ||ref|| bound per dtype; the dtypes listed are the ones run. */
  tol: Partial<Record<FloatDType, number>>;
  /** Expected output shapes (checked when given). */
  shapes?: number[][];
}

const cpu = backends().find((b) => b.name === 'cpu')!;

/**
 * Input values: seeded normals times `scale`, with the given positions overwritten (NaN,
 * infinities, large values), for cases that stress the numerics.
 */
export function withSpecials(specials: Record<number, number>, scale = 1): NonNullable<InputSpec['values']> {
  return (rng, n) => {
    const a = rng.normals(n, scale);
    for (const [i, v] of Object.entries(specials)) a[Number(i)] = v;
    return a;
  };
}

/**
 * Rows of `len` values at scale 1e-3 (variance ~1e-6, comparable to a norm's eps), every third
 * row constant (variance 0): inputs on which a norm's eps decides the output.
 */
export function constantRows(len: number): NonNullable<InputSpec['values']> {
  return (rng, n) => {
    const a = rng.normals(n, 1e-3);
    for (let r = 0; r * len < n; r += 3) a.fill(0.25 + rng.normal(), r * len, Math.min(n, (r + 1) * len));
    return a;
  };
}

/** Every (device, simd) combination the op tests run on. */
export function targets(): Array<{ device: Device; simd?: 'scalar' | 'avx2-fma'; label: string }> {
  const out: Array<{ device: Device; simd?: 'scalar' | 'avx2-fma'; label: string }> = [];
  for (const device of testDevices()) {
    if (device === 'cpu') for (const simd of SIMD_PATHS) out.push({ device, simd, label: `cpu (${simd})` });
    else out.push({ device, label: device });
  }
  return out;
}

/** `values` rounded to `dtype` (to nearest even) and back. */
export function roundTo(values: Float32Array, dtype: FloatDType): Float32Array {
  return dtype === 'float32' ? values : decodeHalf(encodeHalf(values, dtype), dtype);
}

/** Registers one vitest case per (case, dtype) on `target`. */
export function runCases(cases: OpCase[], target: { device: Device; simd?: 'scalar' | 'avx2-fma' }, seed: number): void {
  cases.forEach((c, ci) => {
    for (const dtype of Object.keys(c.tol) as FloatDType[]) {
      it(`${c.name} [${dtype}]`, () => {
        if (target.simd) native.setCpuSimd(target.simd);
        try {
          runOne(c, target.device, dtype, seed + ci * 7919);
        } finally {
          if (target.simd) native.setCpuSimd(cpu.simd!);
        }
      });
    }
  });
}

function runOne(c: OpCase, device: Device, dtype: FloatDType, seed: number): void {
  const rng = new Rng(seed);
  const made: Tensor[] = [];
  const tensors: Record<string, Tensor> = {};
  const values: Record<string, Float32Array> = {};
  try {
    for (const [name, spec] of Object.entries(c.inputs)) {
      const n = numel(spec.shape);
      const raw = spec.values ? spec.values(rng, n) : rng.normals(n, spec.scale ?? 1);
      values[name] = roundTo(raw, dtype);
      const t = tensor(dtype === 'float32' ? raw : encodeHalf(raw, dtype), spec.shape, { device, dtype, copy: true });
      made.push(t);
      // Intermediate views of the layout function are disposed; the one it returns is kept.
      const v = spec.view ? tidy(() => spec.view!(t)) : t;
      if (v !== t) made.push(v);
      tensors[name] = v;
    }
    const result = c.run(tensors);
    const outs = Array.isArray(result) ? result : [result];
    made.push(...outs);
    const refs = c.ref(values);
    // A list of outputs, or one output (a typed array or a number[]).
    const many = Array.isArray(refs) && refs.length > 0 && typeof refs[0] !== 'number';
    const refList = (many ? refs : [refs]) as ArrayLike<number>[];
    expect(outs.length).toBe(refList.length);
    outs.forEach((o, i) => {
      if (c.shapes) expect(o.shape).toEqual(c.shapes[i]);
      expect(o.dtype).toBe(dtype);
      const data = o.dataSync();
      const got = dtype === 'float32' ? (data as Float32Array) : decodeHalf(data as Uint16Array, dtype);
      const { err, nonFinite } = compare(got, refList[i]);
      const label = `${c.name} output ${i} (${dtype} on ${device})`;
      // SECVIT_REPORT_ERRORS=1: every case's error beside its bound (to keep bounds near the truth).
      if (process.env.SECVIT_REPORT_ERRORS === '1') console.log(`error ${err.toExponential(2)} bound ${c.tol[dtype]!.toExponential(1)}: ${label}`);
      expect(nonFinite, `${label}: elements that are NaN or infinite in one of output and reference`).toEqual([]);
      expect(err, label).toBeLessThan(c.tol[dtype]!);
    });
  } finally {
    for (const t of made) t.dispose();
  }
}

/**
 * ||got - ref|| / ||ref|| over the elements where the reference is finite, and the elements
 * (index: got vs ref, at most 5) where either is NaN or an infinity and the two differ: a NaN
 * must meet a NaN, an infinity the same infinity.
 */
export function compare(got: ArrayLike<number>, ref: ArrayLike<number>): { err: number; nonFinite: string[] } {
  if (got.length !== ref.length) throw new Error(`compare: lengths differ (${got.length} vs ${ref.length})`);
  let num = 0;
  let den = 0;
  const nonFinite: string[] = [];
  for (let i = 0; i < ref.length; i++) {
    const g = got[i];
    const r = ref[i];
    if (Number.isFinite(r) && Number.isFinite(g)) {
      num += (g - r) * (g - r);
      den += r * r;
    } else if (!(Number.isNaN(g) && Number.isNaN(r)) && g !== r && nonFinite.length < 5) {
      nonFinite.push(`${i}: ${g} vs ${r}`);
    }
  }
  return { err: den === 0 ? Math.sqrt(num) : Math.sqrt(num) / Math.sqrt(den), nonFinite };
}
