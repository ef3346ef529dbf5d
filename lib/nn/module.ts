// Modules in PyTorch's style: a tree of named children, each holding named parameters and
// buffers, so that `layers.2.blocks.5.attn.qkv.weight` is both a path through the tree and a
// checkpoint key. Loading a checkpoint is a walk over these names; so are saving,
// `parameterCount` and `dispose`.
//
// A slot knows its shape and kind before it holds a tensor: a model is built empty, then
// filled either by a seeded initialisation or by a checkpoint, without allocating twice.
import type { Tensor } from '../tensor.js';
import type { Rng } from './random.js';

/** 'parameter': learnable (counted by parameterCount); 'buffer': state such as running statistics. */
export type SlotKind = 'parameter' | 'buffer';

/** How a slot is filled by random initialisation. */
export type Init =
  | { kind: 'zeros' }
  | { kind: 'ones' }
  | { kind: 'constant'; value: number }
  /** Normal with this std, cut at +-2 std (timm's trunc_normal_). */
  | { kind: 'truncNormal'; std: number }
  /** Computed from the shape (e.g. RoPE angles). */
  | { kind: 'fn'; fill: (numel: number) => Float32Array };

export interface Slot {
  readonly name: string;
  readonly shape: readonly number[];
  readonly kind: SlotKind;
  readonly init: Init;
  tensor: Tensor | null;
}

/**
 * An int64 counter kept on the host (BatchNorm's `num_batches_tracked`): it is part of the state
 * dict, never of a computation.
 */
export interface Counter {
  readonly name: string;
  value: bigint;
}

/**
 * An integer table a model computes from its config and the reference stores in its state dict
 * (Swin's `relative_position_index`): kept on the host, saved as int64, and checked on loading
 * (a checkpoint whose table differs is not this model).
 */
export interface IndexTable {
  readonly name: string;
  readonly shape: readonly number[];
  readonly values: Int32Array;
}

export const numelOf = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

// A generation count of parameter values: bumped whenever weights or batch-norm statistics may
// have changed in place (an optimizer step, a train-mode forward, loading). Caches of tensors
// derived from parameters (folded batch norm, views) compare it and rebuild when it moved.
let generation = 0;

/** Marks every model's parameters as possibly changed (derived caches rebuild on next use). */
export function parametersChanged(): void {
  generation++;
}

/** The current parameter generation (see parametersChanged). */
export function parameterGeneration(): number {
  return generation;
}

export class Module {
  readonly #slots = new Map<string, Slot>();
  readonly #counters = new Map<string, Counter>();
  readonly #children = new Map<string, Module>();
  readonly #tables = new Map<string, IndexTable>();

  protected parameter(name: string, shape: readonly number[], init: Init): Slot {
    return this.#slot(name, shape, 'parameter', init);
  }

  protected buffer(name: string, shape: readonly number[], init: Init): Slot {
    return this.#slot(name, shape, 'buffer', init);
  }

  protected counter(name: string): Counter {
    const c: Counter = { name, value: 0n };
    this.#counters.set(name, c);
    return c;
  }

  protected indexTable(name: string, shape: readonly number[], values: Int32Array): IndexTable {
    const t: IndexTable = { name, shape: Object.freeze([...shape]), values };
    this.#tables.set(name, t);
    return t;
  }

  /** Every index table of the tree with its full name. */
  *namedIndexTables(prefix = ''): Generator<[string, IndexTable]> {
    for (const [n, t] of this.#tables) yield [prefix + n, t];
    for (const [n, c] of this.#children) yield* c.namedIndexTables(`${prefix}${n}.`);
  }

  protected child<M extends Module>(name: string | number, m: M): M {
    this.#children.set(String(name), m);
    return m;
  }

  #slot(name: string, shape: readonly number[], kind: SlotKind, init: Init): Slot {
    const s: Slot = { name, shape: Object.freeze([...shape]), kind, init, tensor: null };
    this.#slots.set(name, s);
    return s;
  }

  /** Every slot of the tree with its full name, in registration order (children after own). */
  *namedSlots(prefix = ''): Generator<[string, Slot]> {
    for (const [n, s] of this.#slots) yield [prefix + n, s];
    for (const [n, c] of this.#children) yield* c.namedSlots(`${prefix}${n}.`);
  }

  /** Every host counter with its full name. */
  *namedCounters(prefix = ''): Generator<[string, Counter]> {
    for (const [n, s] of this.#counters) yield [prefix + n, s];
    for (const [n, c] of this.#children) yield* c.namedCounters(`${prefix}${n}.`);
  }

  #training = false;

  /** Train mode (batch norm on batch statistics, drop path) or eval mode (the default). */
  get training(): boolean {
    return this.#training;
  }

  /** Sets train mode on this module and every child (PyTorch's train()); returns this. */
  train(mode = true): this {
    if (typeof mode !== 'boolean') throw new TypeError(`train: mode must be a boolean, got ${typeof mode}`);
    this.#training = mode;
    for (const c of this.#children.values()) c.train(mode);
    return this;
  }

  /** train(false). */
  eval(): this {
    return this.train(false);
  }

  /**
   * Whether this module's parameters (and its children's) require grad: false freezes them
   * (linear probing, fine-tuning a head). Returns this.
   */
  requiresGrad(flag = true): this {
    if (typeof flag !== 'boolean') throw new TypeError(`requiresGrad: expected a boolean, got ${typeof flag}`);
    for (const [, s] of this.namedSlots()) if (s.kind === 'parameter' && s.tensor) s.tensor.requiresGrad = flag;
    return this;
  }

  /**
   * Parameter names an optimizer built from this model exempts from weight decay (timm's
   * no_weight_decay). None by default, as in SecViT's reference (its 'absolute_pos_embed' does not
   * exist there); biases and 1-D parameters are exempt anyway.
   */
  noWeightDecay(): Set<string> {
    return new Set();
  }

  /** The learnable parameters (requiring grad or not), in namedParameters order. */
  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }

  /** [name, tensor] of every learnable parameter (PyTorch's named_parameters). */
  namedParameters(): [string, Tensor][] {
    return this.#tensors('parameter');
  }

  /** [name, tensor] of every buffer (running statistics, RoPE angles). */
  namedBuffers(): [string, Tensor][] {
    return this.#tensors('buffer');
  }

  #tensors(kind: SlotKind): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [n, s] of this.namedSlots()) if (s.kind === kind && s.tensor) out.push([n, s.tensor]);
    return out;
  }

  /** Learnable parameters as PyTorch counts them (sum of numel over parameters; buffers excluded). */
  get parameterCount(): number {
    let n = 0;
    for (const [, s] of this.namedSlots()) if (s.kind === 'parameter') n += numelOf(s.shape);
    return n;
  }

  /** Fills every slot from `rng` (in slot order, so a seed gives the same weights everywhere). */
  protected initialize(rng: Rng, make: (slot: Slot, values: Float32Array) => Tensor): void {
    for (const [, s] of this.namedSlots()) {
      s.tensor?.dispose();
      s.tensor = make(s, initValues(s.init, numelOf(s.shape), rng));
    }
  }

  /** Disposes every tensor of the tree (idempotent). */
  protected disposeSlots(): void {
    for (const [, s] of this.namedSlots()) {
      s.tensor?.dispose();
      s.tensor = null;
    }
  }
}

function initValues(init: Init, n: number, rng: Rng): Float32Array {
  switch (init.kind) {
    case 'zeros':
      return new Float32Array(n);
    case 'ones':
      return new Float32Array(n).fill(1);
    case 'constant':
      return new Float32Array(n).fill(init.value);
    case 'fn':
      return init.fill(n);
    case 'truncNormal': {
      const a = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        let v: number;
        do v = rng.normal(); while (v < -2 || v > 2);
        a[i] = v * init.std;
      }
      return a;
    }
  }
}
