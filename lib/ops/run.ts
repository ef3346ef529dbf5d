// The one path from a TypeScript op definition to the native registry. `defineOp(name)` is
// called once per op at module load; the op's id and input names are looked up on its first
// call and kept, so a call is: check the inputs (TypeError / DisposedError naming the op and the
// input), one native call with the id, wrap the outputs. The op is queued on its inputs'
// device; results are Tensors at once, and reading them waits.
import { native, type TensorHandle } from '../native.js';
import { handleOf, Tensor } from '../tensor.js';

export interface Op {
  readonly name: string;
  /** Queues the op: inputs in its order (null/undefined for an absent optional input), numeric attributes in its order; `sync` runs and waits (kernel errors throw here). */
  run(inputs: readonly (Tensor | null | undefined)[], attrs?: readonly number[], sync?: boolean): Tensor[];
  /** `run` for ops with one output. */
  run1(inputs: readonly (Tensor | null | undefined)[], attrs?: readonly number[], sync?: boolean): Tensor;
}

interface Resolved {
  id: number;
  inputs: string[];  // names, without the optional mark
  optional: boolean[];
}

function resolve(name: string): Resolved {
  const id = native.opNames().indexOf(name);
  if (id < 0) throw new Error(`secvit: this build has no op '${name}'`);
  const s = native.opSchema(id);
  return { id, inputs: s.inputs.map((x) => x.replace(/\?$/, '')), optional: s.inputs.map((x) => x.endsWith('?')) };
}

export function defineOp(name: string): Op {
  let r: Resolved | undefined;
  const run = (inputs: readonly (Tensor | null | undefined)[], attrs: readonly number[] = [], sync = false): Tensor[] => {
    r ??= resolve(name);
    const handles: (TensorHandle | null)[] = new Array(inputs.length);
    for (let i = 0; i < inputs.length; i++) {
      const t = inputs[i];
      if ((t === null || t === undefined) && r.optional[i]) handles[i] = null;
      else handles[i] = handleOf(t, name, r.inputs[i] ?? `input ${i}`);
    }
    const out = native.run(r.id, handles, attrs, sync);
    return Array.isArray(out) ? out.map((h, i) => new Tensor(h, i)) : [new Tensor(out, 0)];
  };
  return { name, run, run1: (inputs, attrs, sync) => run(inputs, attrs, sync)[0] };
}

/** Names of the public ops in the registry (not the internal ones, whose names start with '_'). */
export function listOps(): string[] {
  return native.opNames().filter((n) => !n.startsWith('_'));
}

// By name, for tests (the `Op` of each name is made once).
const byName = new Map<string, Op>();
function op(name: string): Op {
  let o = byName.get(name);
  if (!o) byName.set(name, (o = defineOp(name)));
  return o;
}
export function runOp1(name: string, inputs: readonly (Tensor | null | undefined)[], attrs: readonly number[] = [], sync = false): Tensor {
  return op(name).run1(inputs, attrs, sync);
}
