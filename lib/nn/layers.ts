// The modules every model family builds from (PyTorch's names and parameter layouts, so that a
// module's slot names are checkpoint keys): Linear, Conv2d, LayerNorm, BatchNorm2d, ModuleList,
// and Derived, the cache of tensors made from parameters (folded batch norms, views, gathered
// position biases) that is rebuilt when the parameters change.
import { noGrad } from '../autograd/graph.js';
import { keep, tidy } from '../engine.js';
import { tensor, type Tensor } from '../tensor.js';
import { add, batchNorm, foldBatchNorm, mul, type Activation, type BatchNormParams } from '../ops/layers.js';
import { Module, parameterGeneration, type Counter, type Slot } from './module.js';

const BN_EPS = 1e-5;
const STD = 0.02;

/**
 * Tensors made once from the parameters (views, batch-norm scales and biases); dropped when they
 * change. A forward that records gradients (`live`) makes them afresh, uncached: its graph must
 * reach the parameters, and the enclosing scope disposes them.
 */
export class Derived {
  #items: Tensor[] = [];
  #cache = new Map<string, unknown>();
  #generation = parameterGeneration();
  get<T>(key: string, make: (own: <U extends Tensor>(t: U) => U) => T, live = false): T {
    if (live) return make((t) => t);
    // Parameters or running statistics changed in place since these were made (an optimizer
    // step, a train-mode forward): make them afresh.
    if (this.#generation !== parameterGeneration()) {
      this.release();
      this.#generation = parameterGeneration();
    }
    if (this.#cache.has(key)) return this.#cache.get(key) as T;
    const own = <U extends Tensor>(t: U): U => {
      keep(t);
      this.#items.push(t);
      return t;
    };
    const v = make(own);
    this.#cache.set(key, v);
    return v;
  }
  release(): void {
    for (const t of this.#items) t.dispose();
    this.#items = [];
    this.#cache.clear();
  }
}

export function value(slot: Slot): Tensor {
  if (!slot.tensor) throw new Error(`model: parameter '${slot.name}' is not loaded (the model was disposed?)`);
  return slot.tensor;
}

export class Conv2d extends Module {
  readonly weight: Slot;
  readonly bias: Slot;
  constructor(readonly inChannels: number, readonly outChannels: number, readonly kernel: number, readonly groups = 1) {
    super();
    this.weight = this.parameter('weight', [outChannels, inChannels / groups, kernel, kernel], { kind: 'truncNormal', std: STD });
    this.bias = this.parameter('bias', [outChannels], { kind: 'zeros' });
  }
}

export class BatchNorm2d extends Module {
  readonly weight: Slot;
  readonly bias: Slot;
  readonly runningMean: Slot;
  readonly runningVar: Slot;
  readonly numBatchesTracked: Counter;
  constructor(readonly channels: number) {
    super();
    this.weight = this.parameter('weight', [channels], { kind: 'ones' });
    this.bias = this.parameter('bias', [channels], { kind: 'zeros' });
    this.runningMean = this.buffer('running_mean', [channels], { kind: 'zeros' });
    this.runningVar = this.buffer('running_var', [channels], { kind: 'ones' });
    this.numBatchesTracked = this.counter('num_batches_tracked');
  }

  /**
   * conv followed by this batch norm, as a per-output-channel scale and bias on the conv's sum
   * (fusedConv2d's `scale`): scale = weight / sqrt(running_var + eps), bias = this.bias +
   * (conv.bias - running_mean) * scale. The model runs its batch norms this way in eval mode, so
   * that no folded copy of a conv weight sits next to the checkpoint's (8.6 MB for SecViT-T).
   * `live` (a forward recording gradients): the same from differentiable ops, so that gradients
   * reach weight, bias and conv.bias (the running statistics are constants).
   */
  affine(conv: Conv2d, live = false): { scale: Tensor; bias: Tensor } {
    const g = value(this.weight);
    const ones = tensor(new Float32Array(this.channels).fill(1), [this.channels, 1, 1, 1], { device: g.device, dtype: g.dtype });
    try {
      if (!live) {
        const f = foldBatchNorm(ones, value(conv.bias), this.#params);
        const scale = f.weight.reshape([this.channels]);
        f.weight.dispose();
        return { scale, bias: f.bias };
      }
      // 1 / sqrt(var + eps) and -mean / sqrt(var + eps): constants.
      const c = noGrad(() => foldBatchNorm(ones, null, { runningMean: value(this.runningMean), runningVar: value(this.runningVar), eps: BN_EPS }));
      return tidy(() => {
        const scale = mul(g, c.weight.reshape([this.channels]));
        const bias = add(add(value(this.bias), mul(value(conv.bias), scale)), mul(g, c.bias));
        c.weight.dispose();
        c.bias.dispose();
        return { scale, bias };
      });
    } finally {
      ones.dispose();
    }
  }

  /** Train mode: normalise x by its batch's statistics (updating the running ones), then `activation`. */
  forwardTrain(x: Tensor, activation: Activation = 'none'): Tensor {
    this.numBatchesTracked.value += 1n;
    return batchNorm(x, value(this.runningMean), value(this.runningVar), value(this.weight), value(this.bias), {
      training: true, momentum: 0.1, eps: BN_EPS, activation,
    });
  }

  /** conv followed by this batch norm, as one conv's weight and bias (a new weight tensor). */
  fold(conv: Conv2d): { weight: Tensor; bias: Tensor } {
    return foldBatchNorm(value(conv.weight), value(conv.bias), this.#params);
  }

  get #params(): BatchNormParams {
    return {
      runningMean: value(this.runningMean), runningVar: value(this.runningVar),
      weight: value(this.weight), bias: value(this.bias), eps: BN_EPS,
    };
  }
}

export class LayerNorm extends Module {
  readonly weight: Slot;
  readonly bias: Slot;
  /** eps: 1e-6 in SecViT and ViT, 1e-5 (PyTorch's default) in Swin. */
  constructor(readonly channels: number, readonly eps = 1e-6) {
    super();
    this.weight = this.parameter('weight', [channels], { kind: 'ones' });
    this.bias = this.parameter('bias', [channels], { kind: 'zeros' });
  }
  get options(): { weight: Tensor; bias: Tensor; eps: number } {
    return { weight: value(this.weight), bias: value(this.bias), eps: this.eps };
  }
}

/** A container whose children are named 0, 1, ... (nn.Sequential / nn.ModuleList). */
export class ModuleList<M extends Module> extends Module {
  constructor(readonly items: M[], indices: (number | string)[] = items.map((_, i) => i)) {
    super();
    items.forEach((m, i) => this.child(indices[i], m));
  }
}

/** nn.Linear: weight [out, in], bias [out] (or none). Initialised trunc_normal(0.02) and zeros, as timm and torchvision do. */
export class Linear extends Module {
  readonly weight: Slot;
  readonly bias: Slot | null = null;
  constructor(readonly inFeatures: number, readonly outFeatures: number, bias = true) {
    super();
    this.weight = this.parameter('weight', [outFeatures, inFeatures], { kind: 'truncNormal', std: STD });
    if (bias) this.bias = this.parameter('bias', [outFeatures], { kind: 'zeros' });
  }
  get w(): Tensor {
    return value(this.weight);
  }
  get b(): Tensor | null {
    return this.bias ? value(this.bias) : null;
  }
}
