// The project's shared data (`../shared` beside the repository, or SECVIT_SHARED_DIR): the
// authors' golden outputs and the onnxruntime-node peers. CI (CI=true) and
// SECVIT_REQUIRE_SHARED=1 make a missing file a failure; elsewhere its tests are skipped.
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readSafetensors } from '../../lib/index.js';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const SHARED_DIR = process.env.SECVIT_SHARED_DIR ?? resolve(repo, '../shared');
const required = process.env.CI === 'true' || process.env.SECVIT_REQUIRE_SHARED === '1';

/** The path of a shared file, or null when absent (an Error where it is required). */
export function sharedFile(rel: string): string | null {
  const p = resolve(SHARED_DIR, rel);
  if (existsSync(p)) return p;
  if (required) throw new Error(`shared data missing: ${p} (CI needs ../shared beside the repository, or SECVIT_SHARED_DIR)`);
  return null;
}

/** Every tensor of a safetensors file as float64 values (F32/F16/BF16 decoded; I64 as numbers). */
export function readAll(path: string): Map<string, { shape: number[]; data: Float64Array }> {
  const f = readSafetensors(path);
  try {
    const out = new Map<string, { shape: number[]; data: Float64Array }>();
    for (const [name, t] of f.tensors) {
      const b = t.read();
      const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
      const data = new Float64Array(t.numel);
      for (let i = 0; i < t.numel; i++) {
        switch (t.dtype) {
          case 'F32': data[i] = dv.getFloat32(4 * i, true); break;
          case 'F64': data[i] = dv.getFloat64(8 * i, true); break;
          case 'I64': data[i] = Number(dv.getBigInt64(8 * i, true)); break;
          case 'I32': data[i] = dv.getInt32(4 * i, true); break;
          default: throw new Error(`readAll: ${name}: ${t.dtype} not handled`);
        }
      }
      out.set(name, { shape: [...t.shape], data });
    }
    return out;
  } finally {
    f.close();
  }
}
