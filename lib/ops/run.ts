// The one path from a TypeScript op definition to the native registry. `defineOp(name)` is
// called once per op at module load; a call names its inputs and attributes (checked against
// the op's schema, lib/ops/schema.ts: unknown names and missing required ones are errors,
// absent attributes take the schema's defaults), makes one native call, and wraps the outputs.
// The op is queued on its inputs' device; results are Tensors at once, and reading them waits.
//
// Autograd: when gradients are recorded and an input requires grad, the call records a graph
// node with the op's gradient definition (registered next to its forward function with
// registerGradient). The definition may ask the forward op for more (a log-sum-exp, a
// pre-activation) and keep it for backward; the caller sees the op's usual outputs only. An op
// without a gradient records a node whose backward fails, naming the op: its forward still runs.
import { gradientOf, isGradEnabled, Node, type GradContext, type GradientDef } from '../autograd/graph.js';
import { native } from '../native.js';
import { edgeOf, handleOf, saveView, Tensor, tensorGrad } from '../tensor.js';
import { attrRecord, attrVector, inputVector, schemaOf, type AttrValues, type OpSchema } from './schema.js';

export type OpInputs = Readonly<Record<string, Tensor | null | undefined>>;

export interface Op {
  readonly name: string;
  /** Queues the op: inputs and attributes by name (absent optional inputs: null/undefined); `sync` runs and waits (kernel errors throw here). */
  run(inputs: OpInputs, attrs?: AttrValues, sync?: boolean): Tensor[];
  /** `run` for ops with one output (or the first of several). */
  run1(inputs: OpInputs, attrs?: AttrValues, sync?: boolean): Tensor;
}

export function defineOp(name: string): Op {
  let s: OpSchema | undefined;
  const run = (inputs: OpInputs, attrs: AttrValues = {}, sync = false): Tensor[] => {
    s ??= schemaOf(name);
    if (typeof inputs !== 'object' || inputs === null) throw new TypeError(`${name}: inputs must be an object of tensors by name`);
    const ins = inputVector(s, inputs);
    for (let i = 0; i < ins.length; i++) if (ins[i] === null && !s.optional[i]) handleOf(ins[i], name, s.inputs[i]);
    let vector = attrVector(s, attrs);
    const recording = isGradEnabled() && ins.some((t) => t instanceof Tensor && t.requiresGrad);
    const def = recording ? gradientOf(name) : undefined;
    let visible = -1;
    let needs: Record<string, boolean> = {};
    if (recording) {
      const skip = new Set(def?.nonDifferentiable ?? []);
      needs = Object.fromEntries(s.inputs.map((n, i) => [n, !skip.has(n) && ins[i] !== null && ins[i]!.requiresGrad]));
    }
    if (def?.record) {
      const r = def.record(attrRecord(s, vector), needs);
      if (r.attrs) vector = attrVector(s, { ...attrRecord(s, vector), ...r.attrs });
      if (r.visible !== undefined) visible = r.visible;
    }
    const handles = ins.map((t, i) => (t === null ? null : handleOf(t, name, s!.inputs[i])));
    const out = native.run(s.id, handles, vector, sync);
    const outs = Array.isArray(out) ? out.map((h, i) => new Tensor(h, i)) : [new Tensor(out, 0)];
    if (!recording) return outs;
    return recordOp(s, def, ins, vector, outs, visible < 0 ? outs.length : visible, needs);
  };
  return { name, run, run1: (inputs, attrs, sync) => run(inputs, attrs, sync)[0] };
}

/** The graph node of a recorded call; returns the visible outputs (hidden ones are only saved). */
function recordOp(s: OpSchema, def: GradientDef | undefined, ins: (Tensor | null)[], vector: number[], outs: Tensor[],
  visible: number, needs: Record<string, boolean>): Tensor[] {
  const attrs = attrRecord(s, vector);
  const edges = ins.map((t, i) => (needs[s.inputs[i]] ? edgeOf(t) : null));
  // Saved: the listed inputs (in the order listed), then the listed outputs.
  const spec = typeof def?.save === 'function' ? def.save(attrs, needs) : def?.save ?? {};
  const savedNames = spec.inputs ?? [];
  const savedInputs = savedNames.map((n) => {
    const i = s.inputs.indexOf(n);
    if (i < 0) throw new Error(`internal error: the gradient of ${s.name} saves an unknown input '${n}'`);
    return ins[i];
  });
  const savedOutputs = spec.outputs ?? [];
  const inputShapes = ins.map((t) => (t === null ? null : t.shape));
  const shapes: Record<string, readonly number[] | null> = {};
  s.inputs.forEach((n, i) => (shapes[n] = inputShapes[i]));
  const saved = [...savedInputs.filter((t): t is Tensor => t !== null), ...savedOutputs.map((i) => outs[i])].map(saveView);
  const present = savedInputs.map((t) => t !== null);
  for (let i = visible; i < outs.length; i++) outs[i].dispose();
  const backward = def === undefined
    ? () => {
      throw new Error(`backward: op '${s.name}' has no gradient (its rules say so); run it under noGrad() or on detached inputs`);
    }
    : (grads: (Tensor | null)[], kept: readonly Tensor[]) => {
      const inputs: Record<string, Tensor | null> = {};
      let k = 0;
      for (const [j, n] of savedNames.entries()) inputs[n] = present[j] ? kept[k++] : null;
      const outputs: Tensor[] = [];
      for (const i of savedOutputs) outputs[i] = kept[k++];
      const ctx: GradContext = { attrs, inputs, outputs, needs, shapes };
      const r = def.backward(grads, ctx);
      return s.inputs.map((n, i) => (edges[i] === null ? null : r[n] ?? null));
    };
  const node = new Node(s.name, edges, inputShapes, visible, saved, backward);
  const access = tensorGrad();
  const result = outs.slice(0, visible);
  result.forEach((o, i) => {
    if (o.dtype !== 'int32') access.attach(o, node, i);
  });
  // No float output to carry it: nothing can reach the node, free it now.
  if (!result.some((o) => o.dtype !== 'int32')) {
    node.retain();
    node.release();
  }
  return result;
}

/** Names of the public ops in the registry (not the internal ones, whose names start with '_'). */
export function listOps(): string[] {
  return native.opNames().filter((n) => !n.startsWith('_'));
}

// By name, for tests (the `Op` of each name is made once).
const byName = new Map<string, Op>();
export function opNamed(name: string): Op {
  let o = byName.get(name);
  if (!o) byName.set(name, (o = defineOp(name)));
  return o;
}
export function runOp1(name: string, inputs: OpInputs, attrs: AttrValues = {}, sync = false): Tensor {
  return opNamed(name).run1(inputs, attrs, sync);
}
