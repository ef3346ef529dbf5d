// One call from images to labels, in the spirit of transformers.js:
//
//   const classify = await pipeline('image-classification', 'secvit_t.safetensors');
//   const [top] = await classify('cat.jpg');        // [{ label, index, score }, ...] (topK 5)
//   await classify.dispose();
//
// Weights are a path or bytes of a safetensors or .pth checkpoint (config from the file unless
// given), or a SecViT the caller made (the pipeline then does not dispose it); none: the bundled
// model (secvit-fm, trained on Fashion-MNIST). A checkpoint written by `secvit train` brings its
// own preprocessing (input size, mean, std, interpolation) and class names.
import { noGrad } from './autograd/graph.js';
import type { DeviceChoice } from './backends.js';
import { VisionModel } from './models/base.js';
import { loadModel, type ModelConfigInput } from './models/registry.js';
import { tidy } from './engine.js';
import { type Tensor } from './tensor.js';
import type { LoadProgress } from './models/load.js';
import { IMAGENET_CLASSES } from './vision/imagenet-classes.js';
import { bundledModelPath } from './models/bundled.js';
import type { ImageInput } from './vision/image.js';
import { preprocess, type PreprocessOptions } from './vision/preprocess.js';

export interface Prediction {
  /** Class name (ImageNet-1k: torchvision's names, class 0 is 'tench'). */
  label: string;
  index: number;
  /** Softmax probability. */
  score: number;
}

export interface ClassifyOptions {
  /** How many classes per image, best first. Default: the pipeline's topK (5). */
  topK?: number;
}

export interface ImageClassificationPipeline {
  /** One image: its predictions. Several (an array): one array of predictions per image. */
  (image: ImageInput, options?: ClassifyOptions): Promise<Prediction[]>;
  (images: readonly ImageInput[], options?: ClassifyOptions): Promise<Prediction[][]>;
  readonly model: VisionModel;
  readonly labels: readonly string[];
  /** Frees the model's weights (unless the caller passed the model). Idempotent. */
  dispose(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export interface PipelineOptions {
  /**
   * Called once when the model's weights are known to be random (untrained: its metadata says
   * so, or it was created and never trained), whose predictions mean nothing. Default:
   * process.emitWarning (type 'SecvitWarning', code 'SECVIT_RANDOM_WEIGHTS').
   */
  onWarning?: (message: string) => void;
  device?: DeviceChoice;
  dtype?: 'float32' | 'bfloat16' | 'float16';
  /** Default classes per image. Default 5. */
  topK?: number;
  /** Model config when the checkpoint does not name one (a name or the reference's keys). */
  config?: ModelConfigInput;
  /** Key of the weights in a .pth training checkpoint (default: timm's order). */
  key?: string;
  /** Class names, one per model output. Default: ImageNet-1k's for 1000 outputs, else 'class N'. */
  labels?: readonly string[];
  /** Preprocessing (default: the authors' evaluation transform). */
  preprocess?: Omit<PreprocessOptions, 'device'>;
  /** Follows the loading of the weights: `SecViT.load`'s `onProgress` (bytes read of the total). */
  onProgress?: LoadProgress;
}

function checkTopK(v: unknown, what: string, classes: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new RangeError(`${what}: topK must be a positive integer, got ${JSON.stringify(v)}`);
  return Math.min(v, classes);
}

/** Softmax of each row (in double) and its `k` best classes. */
export function topKPredictions(logits: Float32Array, classes: number, k: number, labels: readonly string[]): Prediction[][] {
  const rows = logits.length / classes;
  const out: Prediction[][] = [];
  for (let r = 0; r < rows; r++) {
    const row = logits.subarray(r * classes, (r + 1) * classes);
    let max = -Infinity;
    for (const v of row) if (v > max) max = v;
    let sum = 0;
    for (const v of row) sum += Math.exp(v - max);
    const idx = Array.from({ length: classes }, (_, i) => i).sort((a, b) => row[b] - row[a] || a - b).slice(0, k);
    out.push(idx.map((i) => ({ label: labels[i] ?? `class ${i}`, index: i, score: Math.exp(row[i] - max) / sum })));
  }
  return out;
}

/** A ready classifier: loads the model once; each call preprocesses, runs a batch, returns the top classes. */
export async function pipeline(task: 'image-classification', weights?: string | Uint8Array | VisionModel | null, options: PipelineOptions = {}): Promise<ImageClassificationPipeline> {
  if (task !== 'image-classification') throw new RangeError(`pipeline: the only task is 'image-classification', got '${String(task)}'`);
  if (typeof options !== 'object' || options === null) throw new TypeError('pipeline: options must be an object');
  // No weights: the bundled model (secvit-fm, Fashion-MNIST), with its own preprocessing and labels.
  if (weights === undefined || weights === null) weights = bundledModelPath();
  const owned = !(weights instanceof VisionModel);
  const model = weights instanceof VisionModel ? weights
    : loadModel(weights, { device: options.device, dtype: options.dtype, config: options.config, key: options.key, onProgress: options.onProgress });
  try {
    const classes = model.numClasses;
    if (model.randomWeights) {
      const what = typeof weights === 'string' ? `'${weights}'` : 'the model';
      const msg = `${what} holds random (untrained) weights, so its predictions mean nothing`;
      if (options.onWarning !== undefined) options.onWarning(msg);
      else process.emitWarning(msg, { type: 'SecvitWarning', code: 'SECVIT_RANDOM_WEIGHTS' });
    }
    const labels = options.labels ?? model.classNames ?? (classes === IMAGENET_CLASSES.length ? IMAGENET_CLASSES : []);
    if (!Array.isArray(labels) || labels.some((l) => typeof l !== 'string'))
      throw new TypeError('pipeline: labels must be an array of strings');
    if (labels.length !== 0 && labels.length !== classes)
      throw new RangeError(`pipeline: labels has ${labels.length} names, the model has ${classes} classes`);
    const defaultK = checkTopK(options.topK ?? 5, 'pipeline', classes);
    // The checkpoint's own transform (secvit train writes it) unless the caller gives one.
    const own = model.preprocessing();
    const pre = options.preprocess ?? { size: own.size, resize: own.resize, cropPct: own.cropPct, interpolation: own.interpolation, mean: own.mean, std: own.std };
    let disposed = false;
    const classify = (async (images: ImageInput | readonly ImageInput[], opts: ClassifyOptions = {}) => {
      if (disposed) throw new Error('pipeline: this pipeline has been disposed');
      const k = opts.topK === undefined ? defaultK : checkTopK(opts.topK, 'classify', classes);
      const x = await preprocess(images, { ...pre, device: model.device });
      let logits: Tensor | undefined;
      try {
        // Inference: nothing recorded for backward.
        logits = noGrad(() => tidy(() => {
          const y = model.forward(x);
          return y.dtype === 'float32' ? y : y.cast('float32');
        }));
        const data = (await logits.data()) as Float32Array;
        const preds = topKPredictions(data, classes, k, labels);
        return Array.isArray(images) ? preds : preds[0];
      } finally {
        x.dispose();
        logits?.dispose();
      }
    }) as ImageClassificationPipeline;
    const dispose = async () => {
      if (disposed) return;
      disposed = true;
      if (owned) model.dispose();
    };
    Object.defineProperties(classify, {
      model: { value: model, enumerable: true },
      labels: { value: labels, enumerable: true },
      dispose: { value: dispose },
      [Symbol.asyncDispose]: { value: dispose },
    });
    return classify;
  } catch (e) {
    if (owned) model.dispose();
    throw e;
  }
}
