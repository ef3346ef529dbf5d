// An exponential moving average of a model's weights (timm's ModelEmaV2): after every optimizer
// step, ema = decay * ema + (1 - decay) * weight, for the parameters and the buffers (batch
// norm's running statistics). Kept in float64 on the host, so the average does not lose the
// small updates a float32 running sum with decay near 1 would round away.
import { tensor, type Tensor } from '../tensor.js';
import type { VisionModel } from '../models/base.js';

export class ModelEma {
  readonly names: string[];
  readonly shapes: number[][];
  readonly values: Float64Array[];

  constructor(model: VisionModel) {
    const sd = [...model.stateDict()];
    this.names = sd.map(([n]) => n);
    this.shapes = sd.map(([, t]) => [...t.shape]);
    this.values = sd.map(([, t]) => Float64Array.from(t.dataSync() as Float32Array));
  }

  update(model: VisionModel, decay: number): void {
    const sd = model.stateDict();
    const d = decay, e = 1 - decay;
    this.names.forEach((n, i) => {
      const w = sd.get(n)!.dataSync() as Float32Array;
      const v = this.values[i];
      for (let k = 0; k < v.length; k++) v[k] = d * v[k] + e * w[k];
    });
  }

  /** The averaged weights as float32 tensors by name (the caller disposes them). */
  tensors(): Map<string, Tensor> {
    return new Map(this.names.map((n, i) => [n, tensor(Float32Array.from(this.values[i]), this.shapes[i])]));
  }

  /** Replaces the average (a checkpoint's). */
  load(values: Map<string, Float64Array>): void {
    this.names.forEach((n, i) => {
      const v = values.get(n);
      if (!v || v.length !== this.values[i].length) throw new RangeError(`ModelEma: the checkpoint's EMA lacks '${n}' or has another size`);
      this.values[i].set(v);
    });
  }
}
