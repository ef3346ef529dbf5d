// The table format of the gradient tests (test/grads/*.cases.ts), its runner on every backend,
// and the finite-difference check of the references themselves.
//
// A case names its inputs (which of them require grad), runs a differentiable computation on
// tensors, and gives two float64 references written from the definitions (test/reference/):
// the forward value and the gradients of <out, dy> for a cotangent dy. On each target and dtype
// the runner calls out.backward(dy) with seeded dy and compares every input's .grad with the
// reference gradient (||g - ref|| / ||ref||, per dtype). Separately, without any device, the
// reference gradients are checked against central differences of the reference forward in
// float64, along seeded random directions: so a wrong reference cannot hide a wrong kernel.
import { expect, it } from 'vitest';
import { decodeHalf, encodeHalf, profileOps, tensor, tidy, type Tensor } from '../../lib/index.js';
import { native } from '../../lib/native.js';
import { numel } from '../reference/layers.js';
import { compare, roundTo, type FloatDType, type InputSpec } from './op-cases.js';
import { Rng } from './random.js';
import { backends, type Device } from '../../lib/index.js';

export interface GradInput extends InputSpec {
  /** Requires grad (default true). */
  grad?: boolean;
}

export type F64 = Record<string, Float64Array>;

export interface GradCase {
  name: string;
  inputs: Record<string, GradInput>;
  /** The computation on tensors: one output. */
  run: (t: Record<string, Tensor>) => Tensor;
  /** Reference forward in double from the (rounded) input values: the output, row-major. */
  forward: (v: F64) => ArrayLike<number>;
  /** Reference gradients of <forward(v), dy> with respect to every input that requires grad. */
  backward: (v: F64, dy: Float64Array) => Record<string, ArrayLike<number>>;
  /** ||grad - ref|| / ||ref|| bound per dtype; the dtypes listed are the ones run. */
  tol: Partial<Record<FloatDType, number>>;
  /** Finite-difference check of the references: step (default 1e-6) and bound (default 1e-6); false: skip. */
  fd?: false | { eps?: number; tol?: number };
  /** Scale of the seeded cotangent dy (default 1). */
  dyScale?: number;
}

const cpu = backends().find((b) => b.name === 'cpu')!;

function inputValues(c: GradCase, seed: number): Record<string, Float32Array> {
  const rng = new Rng(seed);
  const out: Record<string, Float32Array> = {};
  for (const [name, spec] of Object.entries(c.inputs)) {
    const n = numel(spec.shape);
    out[name] = spec.values ? spec.values(rng, n) : rng.normals(n, spec.scale ?? 1);
  }
  return out;
}

function cotangent(n: number, seed: number, scale = 1): Float32Array {
  return new Rng(seed ^ 0x5bd1e995).normals(n, scale);
}

function f64(values: Record<string, Float32Array>): F64 {
  const out: F64 = {};
  for (const [k, v] of Object.entries(values)) out[k] = Float64Array.from(v);
  return out;
}

/** The ops the cases' forwards ran (profiler labels up to ':'), for the coverage check. */
export const opsRun = new Set<string>();

/** One vitest case per (case, dtype) on `target`. */
export function runGradCases(cases: GradCase[], target: { device: Device; simd?: 'scalar' | 'avx2-fma' }, seed: number): void {
  cases.forEach((c, ci) => {
    for (const dtype of Object.keys(c.tol) as FloatDType[]) {
      it(`${c.name} [${dtype}]`, async () => {
        if (target.simd) native.setCpuSimd(target.simd);
        try {
          await runOne(c, target.device, dtype, seed + ci * 7919);
        } finally {
          if (target.simd) native.setCpuSimd(cpu.simd!);
        }
      });
    }
  });
}

async function runOne(c: GradCase, device: Device, dtype: FloatDType, seed: number): Promise<void> {
  const raw = inputValues(c, seed);
  const values: Record<string, Float32Array> = {};
  for (const [k, v] of Object.entries(raw)) values[k] = roundTo(v, dtype);
  const made: Tensor[] = [];
  const leaves: Record<string, Tensor> = {};
  const tensors: Record<string, Tensor> = {};
  try {
    for (const [name, spec] of Object.entries(c.inputs)) {
      const t = tensor(dtype === 'float32' ? raw[name] : encodeHalf(raw[name], dtype), spec.shape, { device, dtype, copy: true });
      made.push(t);
      if (spec.grad !== false) t.requiresGrad = true;
      leaves[name] = t;
      const v = spec.view ? tidy(() => spec.view!(t)) : t;
      if (v !== t) made.push(v);
      tensors[name] = v;
    }
    // Intermediates are disposed by the scope; the graph stays reachable from `out`.
    const { result: out, ops } = await profileOps(() => tidy(() => c.run(tensors)));
    made.push(out);
    for (const o of ops) opsRun.add(o.label.split(':')[0]);
    const dyRaw = cotangent(out.size, seed, c.dyScale);
    const dy = tensor(dtype === 'float32' ? dyRaw : encodeHalf(dyRaw, dtype), out.shape, { device, dtype });
    made.push(dy);
    await out.backward(dy);
    const refs = c.backward(f64(values), Float64Array.from(roundTo(dyRaw, dtype)));
    for (const [name, spec] of Object.entries(c.inputs)) {
      const g = leaves[name].grad;
      if (spec.grad === false) {
        expect(g, `${name} does not require grad`).toBeNull();
        continue;
      }
      expect(g, `${c.name}: ${name}.grad`).not.toBeNull();
      expect(g!.shape).toEqual(spec.shape);
      expect(g!.dtype).toBe(dtype);
      const data = g!.dataSync();
      const got = dtype === 'float32' ? (data as Float32Array) : decodeHalf(data as Uint16Array, dtype);
      const ref = refs[name];
      expect(ref, `${c.name}: a reference gradient for ${name}`).toBeDefined();
      const { err, nonFinite } = compare(got, ref);
      expect(nonFinite, `${c.name}: ${name}.grad NaN and infinities where the reference has them (${dtype} on ${device})`).toEqual([]);
      expect(err, `${c.name}: ${name}.grad (${dtype} on ${device})`).toBeLessThan(c.tol[dtype]!);
    }
  } finally {
    for (const t of made) t.dispose();
  }
}

/** The references' own check: reference gradients against central differences of the reference forward. */
export function checkReferences(cases: GradCase[], seed: number): void {
  cases.forEach((c, ci) => {
    if (c.fd === false) return;
    const fdOpts = c.fd ?? {};
    it(`${c.name}: reference gradients match finite differences (float64)`, () => {
      const s = seed + ci * 7919;
      const v = f64(inputValues(c, s));
      const y0 = c.forward(v);
      const dy = Float64Array.from(cotangent(y0.length, s, c.dyScale));
      const refs = c.backward(v, dy);
      const eps = fdOpts.eps ?? 1e-6;
      const rng = new Rng(s + 1);
      const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => {
        let r = 0;
        for (let i = 0; i < a.length; i++) r += a[i] * b[i];
        return r;
      };
      for (const [name, spec] of Object.entries(c.inputs)) {
        if (spec.grad === false) continue;
        const g = refs[name];
        expect(g.length, name).toBe(v[name].length);
        // Three random directions; each compares <g, u> with (f(x + eps u) - f(x - eps u)) . dy / 2 eps.
        for (let k = 0; k < 3; k++) {
          const u = Float64Array.from(rng.normals(v[name].length));
          const plus = { ...v, [name]: v[name].map((x, i) => x + eps * u[i]) };
          const minus = { ...v, [name]: v[name].map((x, i) => x - eps * u[i]) };
          const fd = (dot(c.forward(plus), dy) - dot(c.forward(minus), dy)) / (2 * eps);
          const an = dot(g, u);
          const scale = Math.max(Math.abs(an), Math.abs(fd), 1e-3 * Math.sqrt(dot(g, g) * dot(u, u)));
          expect(Math.abs(an - fd) / scale, `${c.name}: d/d${name} along direction ${k}: analytic ${an}, finite difference ${fd}`)
            .toBeLessThan(fdOpts.tol ?? 1e-6);
        }
      }
    });
  });
}
