// torch.optim.SGD: momentum, dampening, Nesterov, L2 weight decay; one fused in-place update per
// parameter (sgdStep, native/ops/optim.h).
import { defineOp } from '../ops/run.js';
import type { Tensor } from '../tensor.js';
import { Optimizer, type ParamsInput } from './optimizer.js';

const sgdOp = defineOp('sgdStep');

export interface SGDOptions {
  lr: number;
  momentum?: number;
  dampening?: number;
  weightDecay?: number;
  nesterov?: boolean;
}

export class SGD extends Optimizer {
  constructor(params: ParamsInput, options: SGDOptions) {
    if (typeof options !== 'object' || options === null || typeof options.lr !== 'number') throw new TypeError('SGD: options.lr is required');
    super('SGD', params, {
      lr: options.lr, momentum: options.momentum ?? 0, dampening: options.dampening ?? 0,
      weightDecay: options.weightDecay ?? 0, nesterov: options.nesterov ? 1 : 0,
    });
  }

  protected validate(s: Record<string, number>, g: number): void {
    for (const k of ['lr', 'momentum', 'dampening', 'weightDecay']) if (!(s[k] >= 0)) throw new RangeError(`SGD: group ${g}: ${k} must be >= 0, got ${s[k]}`);
    if (s.nesterov && (s.momentum <= 0 || s.dampening !== 0)) throw new RangeError(`SGD: group ${g}: Nesterov momentum needs momentum > 0 and dampening 0`);
  }

  protected update(p: Tensor, grad: Tensor, s: Record<string, number>, st: { step: number; tensors: Record<string, Tensor> }): void {
    const buf = s.momentum !== 0 ? this.stateTensor(p, st, 'momentumBuffer') : null;
    const outs = sgdOp.run({ param: p, grad, momentumBuffer: buf }, {
      lr: s.lr, momentum: s.momentum, dampening: s.dampening, weightDecay: s.weightDecay, nesterov: s.nesterov, first: st.step === 1,
    });
    for (const t of outs) t.dispose();
  }
}
