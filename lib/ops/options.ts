// Checking the options objects of the functional ops, with errors naming the op and the option.
import type { Tensor } from '../tensor.js';

/** `o` as an options record: {} when absent (unless `required`), a TypeError when not an object. */
export function optionsOf(op: string, o: unknown, required = false): Record<string, unknown> {
  if (o === undefined && !required) return {};
  if (typeof o !== 'object' || o === null) throw new TypeError(`${op}: options must be an object`);
  return o as Record<string, unknown>;
}

/** A number option; `fallback` when absent, or a TypeError when absent and `fallback` is undefined. */
export function num(op: string, name: string, v: unknown, fallback?: number): number {
  if (v === undefined && fallback !== undefined) return fallback;
  if (typeof v !== 'number') throw new TypeError(`${op}: ${name} must be a number, got ${typeof v}`);
  return v;
}

/** A number or [h, w] option, as [h, w]. */
export function pair(op: string, name: string, v: unknown, fallback: number): [number, number] {
  if (v === undefined) return [fallback, fallback];
  if (typeof v === 'number') return [v, v];
  if (Array.isArray(v) && v.length === 2 && v.every((x) => typeof x === 'number')) return [v[0], v[1]];
  throw new TypeError(`${op}: ${name} must be a number or [h, w], got ${JSON.stringify(v)}`);
}

/** Absent optional tensors are null; the op checks the rest (a live Tensor, named by the op). */
export function tensorOrNull(v: unknown): Tensor | null {
  return v === undefined || v === null ? null : (v as Tensor);
}
