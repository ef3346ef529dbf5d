// The optimizer base (torch.optim.Optimizer's shape): parameter groups with their own
// hyperparameters, per-parameter state tensors the optimizer owns (freed by dispose()),
// zeroGrad(), an async step() that queues one fused in-place update per parameter (native/ops/
// optim.h) and resolves once they are done, and stateDict()/loadStateDict() with parameters
// identified by their index across the groups, as PyTorch's.
import { noGrad } from '../autograd/graph.js';
import { keep } from '../engine.js';
import { Module, parametersChanged } from '../nn/module.js';
import { Tensor, zeros } from '../tensor.js';

/** A group of parameters with its own settings (the optimizer's defaults fill the rest). */
export interface ParamGroupInput {
  params: Tensor[];
  /** Names for messages and stateDict (optional). */
  names?: string[];
  [setting: string]: unknown;
}

export interface ParamGroup {
  readonly params: Tensor[];
  readonly names: string[];
  /** Hyperparameters of this group (lr, weightDecay, betas...). */
  readonly settings: Record<string, number>;
}

export type ParamsInput = Module | Tensor[] | ParamGroupInput[];

export interface OptimizerStateDict {
  /** Per parameter index: its step count and state tensors (the optimizer's own; copy them to keep). */
  state: Record<number, Record<string, Tensor | number>>;
  /** Each group's settings and its parameters' indices. */
  paramGroups: { params: number[]; [setting: string]: number | number[] }[];
}

/** The timm grouping of a model: no weight decay on parameters of at most one dim, biases and noWeightDecay() names. */
export function decayGroups(model: Module, weightDecay: number): ParamGroupInput[] {
  const skip = model.noWeightDecay();
  const decay: ParamGroupInput = { params: [], names: [], weightDecay };
  const plain: ParamGroupInput = { params: [], names: [], weightDecay: 0 };
  for (const [name, t] of model.namedParameters()) {
    if (!t.requiresGrad) continue;
    const g = t.shape.length <= 1 || name.endsWith('.bias') || skip.has(name) ? plain : decay;
    g.params.push(t);
    g.names!.push(name);
  }
  return [decay, plain].filter((g) => g.params.length > 0);
}

export abstract class Optimizer {
  readonly paramGroups: ParamGroup[];
  protected readonly state = new Map<Tensor, { step: number; tensors: Record<string, Tensor> }>();
  #disposed = false;

  constructor(readonly name: string, params: ParamsInput, defaults: Record<string, number>) {
    const groups: ParamGroupInput[] =
      params instanceof Module ? decayGroups(params, defaults.weightDecay ?? 0)
        : Array.isArray(params) && params.every((p) => p instanceof Tensor) ? [{ params: params as Tensor[] }]
          : (params as ParamGroupInput[]);
    if (!Array.isArray(groups) || groups.length === 0) throw new TypeError(`${name}: params must be a model, an array of Tensors, or parameter groups`);
    const seen = new Set<Tensor>();
    this.paramGroups = groups.map((g, gi) => {
      if (typeof g !== 'object' || g === null || !Array.isArray(g.params))
        throw new TypeError(`${name}: parameter group ${gi} must be { params: Tensor[], ...settings }`);
      const settings: Record<string, number> = { ...defaults };
      for (const [k, v] of Object.entries(g)) {
        if (k === 'params' || k === 'names') continue;
        if (!(k in defaults)) throw new RangeError(`${name}: unknown setting '${k}' in parameter group ${gi} (settings: ${Object.keys(defaults).join(', ')})`);
        if (typeof v !== 'number' || !Number.isFinite(v)) throw new TypeError(`${name}: group ${gi}'s ${k} must be a finite number, got ${String(v)}`);
        settings[k] = v;
      }
      g.params.forEach((p, i) => {
        if (!(p instanceof Tensor)) throw new TypeError(`${name}: group ${gi}'s params[${i}] must be a Tensor`);
        if (seen.has(p)) throw new RangeError(`${name}: a parameter appears twice (group ${gi}, index ${i})`);
        if (!p.requiresGrad || !p.isLeaf) throw new RangeError(`${name}: group ${gi}'s params[${i}] must be a leaf tensor that requires grad`);
        if (p.dtype !== 'float32') throw new TypeError(`${name}: parameters must be float32 (master weights), got ${p.dtype} at group ${gi} index ${i}`);
        seen.add(p);
      });
      this.validate(settings, gi);
      return { params: [...g.params], names: g.names ? [...g.names] : g.params.map((_, i) => `group${gi}.${i}`), settings };
    });
  }

  /** Checks one group's settings (RangeError naming the setting). */
  protected abstract validate(settings: Record<string, number>, group: number): void;

  /** Queues the update of one parameter (its .grad is present). */
  protected abstract update(p: Tensor, grad: Tensor, settings: Record<string, number>, state: { step: number; tensors: Record<string, Tensor> }): void;

  /** The learning rate (of the first group); assigning sets every group's. */
  get lr(): number {
    return this.paramGroups[0].settings.lr;
  }

  set lr(v: number) {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new RangeError(`${this.name}: lr must be a finite number >= 0, got ${v}`);
    for (const g of this.paramGroups) g.settings.lr = v;
  }

  /** Clears every parameter's gradient: null (default, as PyTorch's set_to_none), or zeros. */
  zeroGrad(options: { setToNone?: boolean } = {}): void {
    this.#check('zeroGrad');
    for (const g of this.paramGroups)
      for (const p of g.params) {
        if (p.disposed || p.grad === null) continue;
        p.grad = options.setToNone === false ? keep(zeros(p.shape, { dtype: p.dtype, device: p.device })) : null;
      }
  }

  /** Queues every parameter's update (those with a gradient) and resolves once they are applied. */
  async step(): Promise<void> {
    this.#check('step');
    parametersChanged();
    const updated: Tensor[] = [];
    noGrad(() => {
      for (const g of this.paramGroups)
        for (const [i, p] of g.params.entries()) {
          p.handle(`${this.name}.step`, `parameter ${g.names[i]}`);
          const grad = p.grad;
          if (grad === null) continue;
          let st = this.state.get(p);
          if (!st) this.state.set(p, (st = { step: 0, tensors: {} }));
          st.step++;
          this.update(p, grad, g.settings, st);
          updated.push(p);
        }
    });
    await Promise.all(updated.map((p) => p.ready()));
  }

  /** A state tensor of `p` (zeros on first use), owned by the optimizer. */
  protected stateTensor(p: Tensor, st: { tensors: Record<string, Tensor> }, key: string): Tensor {
    return (st.tensors[key] ??= keep(zeros(p.shape, { dtype: 'float32', device: p.device })));
  }

  /** The optimizer's state, parameters by index over the groups (PyTorch's layout). */
  stateDict(): OptimizerStateDict {
    this.#check('stateDict');
    const state: OptimizerStateDict['state'] = {};
    const groups: OptimizerStateDict['paramGroups'] = [];
    let index = 0;
    for (const g of this.paramGroups) {
      const ids: number[] = [];
      for (const p of g.params) {
        const st = this.state.get(p);
        if (st) state[index] = { step: st.step, ...st.tensors };
        ids.push(index++);
      }
      groups.push({ ...g.settings, params: ids });
    }
    return { state, paramGroups: groups };
  }

  /** Restores settings and state saved by stateDict (of an optimizer over the same parameters, in the same order); the tensors are copied. */
  loadStateDict(sd: OptimizerStateDict): void {
    this.#check('loadStateDict');
    if (typeof sd !== 'object' || sd === null || !Array.isArray(sd.paramGroups) || typeof sd.state !== 'object')
      throw new TypeError(`${this.name}.loadStateDict: expected { state, paramGroups }`);
    if (sd.paramGroups.length !== this.paramGroups.length)
      throw new RangeError(`${this.name}.loadStateDict: ${sd.paramGroups.length} parameter groups, this optimizer has ${this.paramGroups.length}`);
    const all = this.paramGroups.flatMap((g) => g.params);
    sd.paramGroups.forEach((g, gi) => {
      if (g.params.length !== this.paramGroups[gi].params.length)
        throw new RangeError(`${this.name}.loadStateDict: group ${gi} has ${g.params.length} parameters, this optimizer's ${this.paramGroups[gi].params.length}`);
    });
    const next = new Map<Tensor, { step: number; tensors: Record<string, Tensor> }>();
    try {
      for (const [key, entry] of Object.entries(sd.state)) {
        const p = all[Number(key)];
        if (!p) throw new RangeError(`${this.name}.loadStateDict: state for parameter ${key}, which does not exist`);
        const tensors: Record<string, Tensor> = {};
        let step = 0;
        for (const [k, v] of Object.entries(entry)) {
          if (k === 'step') {
            if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new TypeError(`${this.name}.loadStateDict: state[${key}].step must be an integer`);
            step = v;
          } else {
            if (!(v instanceof Tensor) || v.shape.length !== p.shape.length || v.shape.some((s, i) => s !== p.shape[i]))
              throw new RangeError(`${this.name}.loadStateDict: state[${key}].${k} must be a Tensor of the parameter's shape [${p.shape.join(', ')}]`);
            tensors[k] = keep(v.device === p.device ? v.cast('float32') : v.toSync(p.device).cast('float32'));
          }
        }
        next.set(p, { step, tensors });
      }
    } catch (e) {
      for (const st of next.values()) for (const t of Object.values(st.tensors)) t.dispose();
      throw e;
    }
    sd.paramGroups.forEach((g, gi) => {
      for (const [k, v] of Object.entries(g)) if (k !== 'params' && typeof v === 'number') this.paramGroups[gi].settings[k] = v;
    });
    this.#freeState();
    for (const [p, st] of next) this.state.set(p, st);
  }

  /** Frees the state tensors; the optimizer can no longer be used. Idempotent. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#freeState();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  #freeState(): void {
    for (const st of this.state.values()) for (const t of Object.values(st.tensors)) t.dispose();
    this.state.clear();
  }

  #check(what: string): void {
    if (this.#disposed) throw new Error(`${this.name}.${what}: the optimizer has been disposed`);
  }
}
