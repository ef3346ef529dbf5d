// The one path from a TypeScript op definition to the native registry: names resolve to ids
// once, inputs are checked (TypeError / DisposedError naming the op and the input), and the op
// is queued on its inputs' device. Results are Tensors at once; reading them waits.
import { native, type TensorHandle } from '../native.js';
import { handleOf, Tensor } from '../tensor.js';

interface OpInfo {
  id: number;
  inputs: string[];  // names, without the optional mark
  optional: boolean[];
  attrs: string[];
}

let table: Map<string, OpInfo> | undefined;

/** The registry entry of `name` (throws for an op this build does not have). */
export function opInfo(name: string): OpInfo {
  if (!table) {
    table = new Map();
    native.opNames().forEach((n, id) => {
      const s = native.opSchema(id);
      table!.set(n, {
        id,
        inputs: s.inputs.map((x) => x.replace(/\?$/, '')),
        optional: s.inputs.map((x) => x.endsWith('?')),
        attrs: s.attrs,
      });
    });
  }
  const info = table.get(name);
  if (!info) throw new Error(`secvit: this build has no op '${name}'`);
  return info;
}

/** Names of every op in the registry. */
export function listOps(): string[] {
  opInfo('copy');
  return [...table!.keys()];
}

/**
 * Queues op `name` and returns its outputs. `inputs` in the op's order (null/undefined for an
 * absent optional input); `attrs` numbers in the op's order. `sync`: run and wait (errors of
 * the kernel throw here).
 */
export function runOp(name: string, inputs: readonly (Tensor | null | undefined)[], attrs: readonly number[] = [], sync = false): Tensor[] {
  const info = opInfo(name);
  const handles: (TensorHandle | null)[] = new Array(inputs.length);
  for (let i = 0; i < inputs.length; i++) {
    const t = inputs[i];
    if ((t === null || t === undefined) && info.optional[i]) handles[i] = null;
    else handles[i] = handleOf(t, name, info.inputs[i] ?? `input ${i}`);
  }
  const r = native.run(info.id, handles, attrs, sync);
  return Array.isArray(r) ? r.map((h, i) => new Tensor(h, i)) : [new Tensor(r, 0)];
}

/** runOp for ops with one output. */
export function runOp1(name: string, inputs: readonly (Tensor | null | undefined)[], attrs: readonly number[] = [], sync = false): Tensor {
  return runOp(name, inputs, attrs, sync)[0];
}
