// Evaluation of a classifier on an image set: top-1, top-5, mean cross-entropy (in double, from
// the float32 logits) and the confusion matrix, batch by batch in eval mode without a graph.
import { noGrad } from '../autograd/graph.js';
import { tidy } from '../engine.js';
import type { VisionModel } from '../models/base.js';
import { tensor } from '../tensor.js';
import type { ImageTransform } from '../data/augment.js';
import type { ImageSet } from '../data/dataset.js';
import { BatchLoader } from '../data/loader.js';

export interface EvalResult {
  /** Fractions in [0, 1]. */
  top1: number;
  top5: number;
  /** Mean cross-entropy. */
  loss: number;
  count: number;
  /** confusion[truth * classes + predicted]. */
  confusion: Int32Array;
}

export async function evaluate(model: VisionModel, set: ImageSet, transform: ImageTransform, options: { batchSize?: number; workers?: number } = {}): Promise<EvalResult> {
  const classes = model.numClasses;
  if (set.classes.length > classes) throw new RangeError(`evaluate: the data has ${set.classes.length} classes, the model ${classes}`);
  const loader = new BatchLoader(set, { batchSize: options.batchSize ?? 256, transform: { ...transform, train: false }, workers: options.workers ?? 1 });
  const wasTraining = model.training;
  model.eval();
  let top1 = 0, top5 = 0, loss = 0, count = 0;
  const confusion = new Int32Array(classes * classes);
  try {
    for await (const b of loader.epoch(0, 0, false)) {
      const n = b.labels.length;
      const logits = noGrad(() => tidy(() => {
        const x = tensor(b.x, [n, transform.outChannels, transform.size, transform.size]);
        const y = model.forward(x);
        return y.dtype === 'float32' ? y : y.cast('float32');
      }));
      const data = (await logits.data()) as Float32Array;
      logits.dispose();
      for (let i = 0; i < n; i++) {
        const row = data.subarray(i * classes, (i + 1) * classes);
        const t = b.labels[i];
        let max = -Infinity, arg = 0;
        for (let k = 0; k < classes; k++) if (row[k] > max) { max = row[k]; arg = k; }
        let z = 0, above = 0;
        for (let k = 0; k < classes; k++) {
          z += Math.exp(row[k] - max);
          if (row[k] > row[t] || (row[k] === row[t] && k < t)) above++;
        }
        loss += Math.log(z) + max - row[t];
        if (arg === t) top1++;
        if (above < 5) top5++;
        confusion[t * classes + arg]++;
        count++;
      }
    }
  } finally {
    await loader.close();
    model.train(wasTraining);
  }
  return { top1: top1 / count, top5: top5 / count, loss: loss / count, count, confusion };
}
