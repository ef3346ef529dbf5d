// The op registry as TypeScript sees it: each op's inputs and attributes by name, with the
// defaults its rules declare (native/ops/<op>.cpp, SECVIT_OP). Callers name what they pass;
// this file checks the names and lays the values out in the native order. No Tensor import:
// tensor.ts and ops/run.ts both build on it.
import { native } from '../native.js';

export interface OpSchema {
  readonly id: number;
  readonly name: string;
  /** Input names in order, without the optional mark. */
  readonly inputs: readonly string[];
  readonly optional: readonly boolean[];
  readonly attrs: readonly string[];
  /** Each attribute's default; undefined for one that must be given. */
  readonly defaults: readonly (number | undefined)[];
}

/** Attribute values by name: numbers, or booleans (as 0/1). */
export type AttrValues = Readonly<Record<string, number | boolean | undefined>>;

const schemas = new Map<string, OpSchema>();

/** The schema of op `name` (looked up once). */
export function schemaOf(name: string): OpSchema {
  let s = schemas.get(name);
  if (s) return s;
  const id = native.opNames().indexOf(name);
  if (id < 0) throw new Error(`secvit: this build has no op '${name}'`);
  const raw = native.opSchema(id);
  s = Object.freeze({
    id,
    name,
    inputs: raw.inputs.map((x) => x.replace(/\?$/, '')),
    optional: raw.inputs.map((x) => x.endsWith('?')),
    attrs: raw.attrs,
    defaults: raw.defaults.map((d) => (d === null ? undefined : d)),
  });
  schemas.set(name, s);
  return s;
}

/**
 * The attribute vector of a call in the op's order: given values, else defaults. A name the op
 * does not have is a RangeError; a required attribute left out, or a value that is neither a
 * number nor a boolean, a TypeError (each naming the op and the attribute).
 */
export function attrVector(s: OpSchema, attrs: AttrValues): number[] {
  for (const key of Object.keys(attrs))
    if (!s.attrs.includes(key)) throw new RangeError(`${s.name}: unknown attribute '${key}' (it has: ${s.attrs.join(', ') || 'none'})`);
  return s.attrs.map((name, i) => {
    const v = attrs[name];
    if (v === undefined) {
      const d = s.defaults[i];
      if (d === undefined) throw new TypeError(`${s.name}: attribute '${name}' is required`);
      return d;
    }
    if (typeof v === 'boolean') return v ? 1 : 0;
    if (typeof v !== 'number') throw new TypeError(`${s.name}: attribute '${name}' must be a number, got ${typeof v}`);
    return v;
  });
}

/** The attribute vector back as a record (what a gradient function sees). */
export function attrRecord(s: OpSchema, vector: readonly number[]): Record<string, number> {
  const out: Record<string, number> = {};
  s.attrs.forEach((name, i) => (out[name] = vector[i]));
  return out;
}

/** Checks input names against the schema; returns the inputs in the op's order (null: absent). */
export function inputVector<T>(s: OpSchema, inputs: Readonly<Record<string, T | null | undefined>>): (T | null)[] {
  for (const key of Object.keys(inputs))
    if (!s.inputs.includes(key)) throw new RangeError(`${s.name}: unknown input '${key}' (it has: ${s.inputs.join(', ')})`);
  return s.inputs.map((name) => inputs[name] ?? null);
}
