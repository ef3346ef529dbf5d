// torch.optim.AdamW: Adam with decoupled weight decay, one fused in-place update per parameter
// (adamwStep, native/ops/optim.h).
import { defineOp } from '../ops/run.js';
import type { Tensor } from '../tensor.js';
import { Optimizer, type ParamsInput } from './optimizer.js';

const adamwOp = defineOp('adamwStep');

export interface AdamWOptions {
  /** Default 1e-3. */
  lr?: number;
  /** Default [0.9, 0.999]. */
  betas?: readonly [number, number];
  /** Default 1e-8. */
  eps?: number;
  /** Default 0.01 (PyTorch's). Given a model, parameters of at most one dim, biases and noWeightDecay() names get 0 (timm's grouping). */
  weightDecay?: number;
}

export class AdamW extends Optimizer {
  constructor(params: ParamsInput, options: AdamWOptions = {}) {
    const betas = options.betas ?? [0.9, 0.999];
    if (!Array.isArray(betas) || betas.length !== 2) throw new TypeError('AdamW: betas must be [beta1, beta2]');
    super('AdamW', params, {
      lr: options.lr ?? 1e-3, beta1: betas[0], beta2: betas[1], eps: options.eps ?? 1e-8, weightDecay: options.weightDecay ?? 0.01,
    });
  }

  protected validate(s: Record<string, number>, g: number): void {
    if (!(s.lr >= 0)) throw new RangeError(`AdamW: group ${g}: lr must be >= 0, got ${s.lr}`);
    for (const b of ['beta1', 'beta2']) if (!(s[b] >= 0 && s[b] < 1)) throw new RangeError(`AdamW: group ${g}: ${b} must be in [0, 1), got ${s[b]}`);
    if (!(s.eps >= 0)) throw new RangeError(`AdamW: group ${g}: eps must be >= 0, got ${s.eps}`);
    if (!(s.weightDecay >= 0)) throw new RangeError(`AdamW: group ${g}: weightDecay must be >= 0, got ${s.weightDecay}`);
  }

  protected update(p: Tensor, grad: Tensor, s: Record<string, number>, st: { step: number; tensors: Record<string, Tensor> }): void {
    const outs = adamwOp.run({
      param: p, grad, expAvg: this.stateTensor(p, st, 'expAvg'), expAvgSq: this.stateTensor(p, st, 'expAvgSq'),
    }, { lr: s.lr, beta1: s.beta1, beta2: s.beta2, eps: s.eps, weightDecay: s.weightDecay, step: st.step });
    for (const t of outs) t.dispose();  // views of the updated tensors
  }
}
