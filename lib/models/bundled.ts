// The models that ship inside the package (models/*.safetensors), trained by `secvit train`:
// what `pipeline('image-classification')`, `secvit classify` and `secvit eval` use when no
// weights are given. Each file's metadata holds its config, preprocessing, class names and
// provenance (the exact training command and its test accuracy).
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { readSafetensors } from '../io/safetensors.js';
import { packageRoot } from '../native.js';

export const DEFAULT_BUNDLED_MODEL = 'secvit-fm';

export interface BundledModel {
  name: string;
  path: string;
  classes: string[];
  inputSize: number[];
  /** Test-set top-1 (a fraction) recorded when it was trained, and its dataset. */
  testTop1: number | null;
  data: string | null;
  command: string | null;
}

/** The path of a bundled model's weights (default: secvit-fm). */
export function bundledModelPath(name = DEFAULT_BUNDLED_MODEL): string {
  const file = path.join(packageRoot(), 'models', `${name}.safetensors`);
  if (!existsSync(file)) throw new Error(`secvit: the bundled model '${name}' is not installed (expected ${file}); pass weights explicitly`);
  return file;
}

/** Every bundled model with what its metadata says. */
export function bundledModels(): BundledModel[] {
  const dir = path.join(packageRoot(), 'models');
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((f) => f.endsWith('.safetensors')).sort().map((f) => {
    const file = path.join(dir, f);
    const st = readSafetensors(file);
    try {
      const json = (k: string): unknown => {
        try {
          return JSON.parse(st.metadata.get(k) ?? 'null');
        } catch {
          return null;
        }
      };
      const prov = (json('provenance') ?? {}) as Record<string, unknown>;
      return {
        name: f.replace(/\.safetensors$/, ''), path: file,
        classes: (json('class_names') as string[] | null) ?? [], inputSize: (json('input_size') as number[] | null) ?? [],
        testTop1: typeof prov.finalTestTop1 === 'number' ? prov.finalTestTop1 : null,
        data: typeof prov.data === 'string' ? prov.data : null,
        command: typeof prov.command === 'string' ? prov.command : null,
      };
    } finally {
      st.close();
    }
  });
}
