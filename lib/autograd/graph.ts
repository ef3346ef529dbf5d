// The autograd graph: what a recorded op leaves behind for backward(), and when it goes away.
//
// Recording. While gradients are enabled (not inside noGrad) an op, view or copy whose inputs
// include a tensor that requires grad records a Node: which inputs lead on (an Edge to the node
// that made each input, or to a leaf that accumulates .grad), the tensors its backward reads
// (`saved`: views owned by the node, so disposing or scoping away the caller's tensors never
// invalidates them) and its backward function. Outputs point at their node (`gradFn`).
//
// Lifetime, exactly, without the garbage collector: a node counts its references, one per live
// output tensor that points at it and one per edge from a node that follows it. When the count
// reaches zero (the last such tensor was disposed: tidy() releasing intermediates, the caller
// disposing the loss) its saved tensors are released and its own edges let go of the nodes
// before it. A backward() releases the saved tensors of every node it runs through (unless it is
// asked to retain the graph), so activations are freed while backward consumes them. There is
// no global tape: a graph is reachable only from tensors, so the GC backstop of tensors a program
// forgets also reaches the graphs hanging off them.
//
// No Tensor import here (types only): tensor.ts builds on this file.
import { AsyncLocalStorage } from 'node:async_hooks';
import type { Tensor } from '../tensor.js';

// ---- gradient mode -----------------------------------------------------------------------------

const mode = new AsyncLocalStorage<boolean>();

/** Whether ops record the graph here (false inside noGrad). */
export function isGradEnabled(): boolean {
  return mode.getStore() ?? true;
}

/**
 * Runs `fn` without recording gradients (torch.no_grad): ops inside make tensors that do not
 * require grad. Async functions work: the mode follows `fn`'s own awaited continuations.
 */
export function noGrad<T>(fn: () => T): T {
  if (typeof fn !== 'function') throw new TypeError('noGrad: fn must be a function');
  return mode.run(false, fn);
}

/** Runs `fn` with recording on (inside a noGrad, for example), as torch.enable_grad. */
export function enableGrad<T>(fn: () => T): T {
  if (typeof fn !== 'function') throw new TypeError('enableGrad: fn must be a function');
  return mode.run(true, fn);
}

// ---- nodes -------------------------------------------------------------------------------------

/** Where the gradient of one input goes: the node that made it (output `index`), or a leaf. */
export type Edge = { node: Node; index: number; leaf?: undefined } | { leaf: Tensor; node?: undefined; index?: undefined };

/**
 * Gradients of the node's outputs (null where none arrived) -> gradients of its inputs, in the
 * node's input order (null or undefined where an input needs none). Runs with recording off.
 */
export type BackwardFn = (grads: (Tensor | null)[], saved: readonly Tensor[]) => (Tensor | null | undefined)[];

export class Node {
  /** The op (or view) that recorded it, for error messages. */
  readonly name: string;
  /** Per input: where its gradient goes, or null (the input needs none). */
  readonly edges: readonly (Edge | null)[];
  /** The shapes of the inputs, to check what backward returns. */
  readonly inputShapes: readonly (readonly number[] | null)[];
  readonly numOutputs: number;
  #saved: Tensor[] | null;
  #backward: BackwardFn | null;
  #refs = 0;
  /** Why backward can no longer run through this node (its saved tensors are gone). */
  #gone: 'consumed' | 'released' | null = null;

  constructor(name: string, edges: (Edge | null)[], inputShapes: (readonly number[] | null)[], numOutputs: number,
    saved: Tensor[], backward: BackwardFn) {
    this.name = name;
    this.edges = edges;
    this.inputShapes = inputShapes;
    this.numOutputs = numOutputs;
    this.#saved = saved;
    this.#backward = backward;
    for (const e of edges) if (e?.node) e.node.#refs++;
  }

  /** A new output tensor points at this node. */
  retain(): void {
    this.#refs++;
  }

  /** An output tensor that pointed here was disposed (or an edge from a later node let go). */
  release(): void {
    if (--this.#refs > 0) return;
    this.#free('released');
    for (const e of this.edges) e?.node?.release();
  }

  /** Runs the backward function (recording off is the caller's job). */
  run(grads: (Tensor | null)[], retain: boolean): (Tensor | null | undefined)[] {
    if (this.#backward === null) {
      throw new Error(this.#gone === 'consumed'
        ? `backward: the graph through '${this.name}' was freed by an earlier backward(); pass { retainGraph: true } to the first call to run backward twice`
        : `backward: the graph through '${this.name}' was released (its output tensors were disposed)`);
    }
    const out = this.#backward(grads, this.#saved ?? []);
    if (!retain) this.#free('consumed');
    return out;
  }

  get runnable(): boolean {
    return this.#backward !== null;
  }

  #free(why: 'consumed' | 'released'): void {
    if (this.#saved) for (const t of this.#saved) t.dispose();
    this.#saved = null;
    if (this.#backward !== null) this.#gone = why;
    this.#backward = null;
  }
}

// ---- gradient definitions of ops ---------------------------------------------------------------

/** What a gradient function of an op is given. */
export interface GradContext {
  /** The op's attributes (as recorded, by name). */
  readonly attrs: Readonly<Record<string, number>>;
  /** Saved inputs by name (those the definition lists in `save.inputs`; null for an absent optional one). */
  readonly inputs: Readonly<Record<string, Tensor | null>>;
  /** Saved outputs, by their index among all the op's outputs (hidden ones included). */
  readonly outputs: readonly Tensor[];
  /** Which inputs need a gradient (by name). */
  readonly needs: Readonly<Record<string, boolean>>;
  /** Every input's shape (null for an absent optional one), by name. */
  readonly shapes: Readonly<Record<string, readonly number[] | null>>;
}

/**
 * How an op is differentiated: registered next to the op's forward function (tfjs's
 * registerGradient). The forward op of a recorded call may be asked for more (its attributes
 * changed by `record`, e.g. to also return a log-sum-exp); outputs past `visible` are saved
 * for backward and not returned.
 */
export interface SaveSpec {
  inputs?: readonly string[];
  outputs?: readonly number[];
}

export interface GradientDef {
  /**
   * Inputs backward reads (kept alive until backward or release), and outputs by index; or a
   * function of the (recorded) attributes and of which inputs need a gradient.
   */
  save?: SaveSpec | ((attrs: Readonly<Record<string, number>>, needs: Readonly<Record<string, boolean>>) => SaveSpec);
  /** For a recorded call: attribute changes and how many outputs the caller sees. */
  record?: (attrs: Readonly<Record<string, number>>, needs: Readonly<Record<string, boolean>>) =>
    { attrs?: Record<string, number | boolean>; visible?: number };
  /** Input names whose gradient is never defined (int tensors, buffers): a call needs none for them. */
  nonDifferentiable?: readonly string[];
  /** Gradients of the visible outputs (null where none arrived) -> gradients of the inputs by name. */
  backward(dy: readonly (Tensor | null)[], ctx: GradContext): Record<string, Tensor | null | undefined>;
}

const gradients = new Map<string, GradientDef>();

/** Registers the gradient of op `name` (once). */
export function registerGradient(name: string, def: GradientDef): void {
  if (gradients.has(name)) throw new Error(`registerGradient: '${name}' already has a gradient`);
  gradients.set(name, def);
}

export function gradientOf(name: string): GradientDef | undefined {
  return gradients.get(name);
}

/** Names of the ops with a registered gradient. */
export function differentiableOps(): string[] {
  return [...gradients.keys()].sort();
}
