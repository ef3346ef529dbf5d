// What every model family shares (timm's model API on secvit's runtime): the device and dtype the
// weights live on, checkpoint metadata (class names, preprocessing), input checks, train/eval and
// gradient-recording modes, forward / forwardFeatures / forwardHead / features, the state dict,
// saving, and disposal. A family (secvit.ts, swin.ts, vit.ts) supplies its module tree, its
// backbone and its head; checkpoints load through one loader (load.ts) for all of them.
import { isGradEnabled } from '../autograd/graph.js';
import { keep, tidy } from '../engine.js';
import { checkDevice, type Device, type DeviceChoice } from '../backends.js';
import { tensor, Tensor, type DType } from '../tensor.js';
import { linear } from '../ops/layers.js';
import { Rng } from '../nn/random.js';
import { Module, numelOf, parameterGeneration, parametersChanged } from '../nn/module.js';
import { loadStateDict, saveModel, type LoadStateDictOptions } from './load.js';
import type { StoredTensor } from '../io/source.js';

export type ModelFamily = 'secvit' | 'swin' | 'vit';
export type ModelDType = Extract<DType, 'float32' | 'bfloat16' | 'float16'>;

/** How one forward runs: recording gradients (nothing derived from parameters is cached then) and train mode. */
export interface Run {
  readonly live: boolean;
  readonly training: boolean;
}

/** Where SEC attention records its token orders when `clusters()` asks for them. */
export interface ClusterRecord {
  stage: number;
  block: number;
  /** The block's cluster count (<= 1: one cluster, global attention). */
  clusters: number;
  height: number;
  width: number;
  /** int32 [B, heads, L]: token indices in ascending score order; cluster c holds positions [floor(cL/C), floor((c+1)L/C)). */
  order: Tensor;
  /** Tokens before the height x width grid in the order's token numbering (ViT's class token: 1). */
  extraTokens?: number;
}

export interface BackboneOptions {
  features?: boolean;
  record?: ClusterRecord[];
}

/** timm-style pretrained configuration: what inputs a model's published weights expect. */
export interface PretrainedCfg {
  readonly inputSize: readonly [number, number, number];
  readonly mean: readonly number[];
  readonly std: readonly number[];
  /** crop = inputSize; resize = floor(crop / cropPct) unless `resize` is given. */
  readonly cropPct: number;
  readonly resize?: number;
  readonly interpolation: 'bicubic' | 'bilinear';
  readonly numClasses: number;
  readonly firstConv: string;
  readonly classifier: string;
}

export const IMAGENET_MEAN = Object.freeze([0.485, 0.456, 0.406] as const);
export const IMAGENET_STD = Object.freeze([0.229, 0.224, 0.225] as const);

/**
 * torchvision's IMAGENET1K_V1 evaluation transform, ImageClassification(crop_size=224,
 * resize_size=resize, interpolation), as a pretrained configuration.
 */
export function torchvisionCfg(resize: number, interpolation: 'bicubic' | 'bilinear', firstConv: string, classifier: string): PretrainedCfg {
  return { inputSize: [3, 224, 224], mean: IMAGENET_MEAN, std: IMAGENET_STD, cropPct: 224 / resize, resize, interpolation, numClasses: 1000, firstConv, classifier };
}

export interface ModelOptions {
  /** Default 'cpu'. 'auto': CUDA when usable, else the CPU. */
  device?: DeviceChoice;
  /** Weights and activations: 'float32' (default), or 'bfloat16'/'float16' (tensor cores on CUDA; elsewhere widened per op). */
  dtype?: ModelDType;
  /** Seed of the random initialisation (create only). Default 0. */
  seed?: number;
}

/** The options each model entry point takes: any other key is a mistake, and said to be one. */
export const LOAD_OPTION_KEYS = ['device', 'dtype', 'config', 'key', 'strict', 'onProgress'] as const;
export const CREATE_OPTION_KEYS = ['device', 'dtype', 'seed', 'numClasses', 'empty'] as const;

export function checkOptions(op: string, options: unknown, known?: readonly string[]): { device: Device; dtype: ModelDType; seed: number } {
  if (typeof options !== 'object' || options === null) throw new TypeError(`${op}: options must be an object`);
  const o = options as Record<string, unknown>;
  if (known) {
    const unknown = Object.keys(o).filter((k) => !known.includes(k));
    if (unknown.length) throw new RangeError(`${op}: unknown option${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `'${k.slice(0, 40)}'`).join(', ')}; expected ${known.join(', ')}`);
  }
  const device = checkDevice(o.device ?? 'cpu', `${op}: device`);
  const dtype = o.dtype ?? 'float32';
  if (dtype !== 'float32' && dtype !== 'bfloat16' && dtype !== 'float16')
    throw new TypeError(`${op}: dtype must be 'float32', 'bfloat16' or 'float16', got ${JSON.stringify(dtype)}`);
  const seed = o.seed ?? 0;
  if (typeof seed !== 'number' || !Number.isInteger(seed)) throw new TypeError(`${op}: seed must be an integer, got ${JSON.stringify(seed)}`);
  return { device, dtype, seed };
}

export abstract class VisionModel extends Module {
  abstract readonly family: ModelFamily;
  /** The model's name for messages ('SecViT', 'SwinTransformer', 'VisionTransformer'). */
  abstract readonly className: string;
  readonly device: Device;
  readonly dtype: ModelDType;
  /** The checkpoint's metadata when loaded from one (safetensors), else empty. */
  metadata: ReadonlyMap<string, string> = new Map();
  #disposed = false;
  readonly #constants = new Map<string, Tensor>();

  constructor(device: Device, dtype: ModelDType) {
    super();
    this.device = device;
    this.dtype = dtype;
  }

  abstract get numClasses(): number;
  abstract get pretrainedCfg(): PretrainedCfg;
  /** The config as the family's reference constructor names it (the `config` metadata `save` writes). */
  abstract referenceConfig(): object;
  /** Throws a RangeError naming `op` when the model cannot take an input of this size. */
  protected abstract checkInputSize(op: string, height: number, width: number): void;
  /** The backbone: pixels on the model's device and dtype -> the last features (and every stage's with `features`). */
  protected abstract runBackbone(x: Tensor, opts: BackboneOptions, run: Run): { last: Tensor; features: Tensor[] };
  /** The head on the backbone's last features (pooling, norm, classifier); `preLogits` stops before the classifier. */
  protected abstract runHead(last: Tensor, preLogits: boolean, run: Run): Tensor;
  /** Checks forwardHead's argument (a RangeError naming what was expected). */
  protected abstract checkHeadInput(features: Tensor): void;
  /** Drops the cached tensors derived from the parameters (after they change). */
  abstract releaseDerived(): void;

  get disposed(): boolean {
    return this.#disposed;
  }

  /** @internal A CPU float32 tensor moved to the model's device and dtype (the argument is consumed). */
  makeTensor(t: Tensor): Tensor {
    let out = t;
    if (this.device !== 'cpu') {
      out = t.toSync(this.device);
      t.dispose();
    }
    if (out.dtype !== this.dtype) {
      const c = out.cast(this.dtype);
      out.dispose();
      out = c;
    }
    return out;
  }

  /**
   * A constant tensor made once (a one-hot gather matrix, an index table) and kept until the model
   * is disposed; never a parameter, never in the state dict.
   */
  protected constant(key: string, make: () => Tensor): Tensor {
    let t = this.#constants.get(key);
    if (t === undefined) {
      t = keep(make());
      this.#constants.set(key, t);
    }
    return t;
  }

  /** @internal Fills every slot from a seeded generator, in slot order (parameters require grad). */
  initializeWeights(seed: number): void {
    this.initialize(new Rng(seed), (slot, values) => {
      const t = this.makeTensor(tensor(values, slot.shape));
      if (slot.kind === 'parameter') t.requiresGrad = true;
      return t;
    });
    this.#initialized = { seed, generation: parameterGeneration() };
  }

  #initialized: { seed: number; generation: number } | null = null;

  /**
   * Whether the weights are known to be random (untrained): the checkpoint's metadata says so
   * (`weights` or `source` naming random weights, as the goldens and untrained saves do), or the
   * model was created with random initialisation and no parameter has changed since. Predictions
   * of such a model mean nothing; the CLI and pipeline warn.
   */
  get randomWeights(): boolean {
    const said = [this.metadata.get('weights'), this.metadata.get('source')].some((v) => v !== undefined && /\brandom\b/i.test(v));
    return said || (this.#initialized !== null && this.#initialized.generation === parameterGeneration());
  }

  /** @internal The metadata an untrained save records (`weights`). */
  randomWeightsMetadata(): Record<string, string> {
    return this.#initialized !== null && this.#initialized.generation === parameterGeneration()
      ? { weights: `random initialisation (seed ${this.#initialized.seed}), untrained` } : {};
  }

  /** Class names from the checkpoint's metadata (`class_names`, as `secvit train` writes), if any. */
  get classNames(): string[] | undefined {
    const raw = this.metadata.get('class_names');
    if (raw === undefined) return undefined;
    try {
      const v: unknown = JSON.parse(raw);
      if (Array.isArray(v) && v.length === this.numClasses && v.every((x) => typeof x === 'string')) return v as string[];
    } catch { /* malformed metadata: no names */ }
    return undefined;
  }

  /**
   * The evaluation transform this model expects: from the checkpoint's metadata (input_size
   * [C, H, W], mean, std, interpolation, crop_pct, as `secvit train` writes them) where present
   * and well-formed, else the family's pretrained configuration.
   */
  preprocessing(): { size: number; resize: number; cropPct: number; interpolation: 'bicubic' | 'bilinear'; mean: readonly number[]; std: readonly number[] } {
    const cfg = this.pretrainedCfg;
    const json = (k: string): unknown => {
      const raw = this.metadata.get(k);
      if (raw === undefined) return undefined;
      try {
        return JSON.parse(raw);
      } catch {
        return undefined;
      }
    };
    const nums = (v: unknown, n: number) => Array.isArray(v) && v.length === n && v.every((x) => typeof x === 'number' && Number.isFinite(x));
    const input = json('input_size');
    let size = cfg.inputSize[1];
    if (nums(input, 3)) {
      const [, h, w] = input as number[];
      let fits = h === w && Number.isInteger(h) && h >= 1;
      if (fits) {
        try {
          this.checkInputSize('preprocessing', h, w);
        } catch {
          fits = false;
        }
      }
      if (fits) size = h;
    }
    const mean = json('mean'), std = json('std'), crop = json('crop_pct');
    const interp = this.metadata.get('interpolation');
    const fromMeta = typeof crop === 'number' && crop > 0 && crop <= 1;
    const cropPct = fromMeta ? crop : cfg.cropPct;
    return {
      size,
      resize: !fromMeta && cfg.resize !== undefined && size === cfg.inputSize[1] ? cfg.resize : Math.floor(size / cropPct),
      cropPct,
      interpolation: interp === 'bilinear' || interp === 'bicubic' ? interp : cfg.interpolation,
      mean: nums(mean, 3) ? (mean as number[]) : cfg.mean,
      std: nums(std, 3) && (std as number[]).every((x) => x > 0) ? (std as number[]) : cfg.std,
    };
  }

  protected checkPixels(op: string, pixels: unknown): Tensor {
    if (this.#disposed) throw new Error(`${op}: the model has been disposed`);
    if (!(pixels instanceof Tensor)) throw new TypeError(`${op}: pixels must be a Tensor [B, 3, H, W], got ${pixels === null ? 'null' : typeof pixels}`);
    const s = pixels.shape;
    if (s.length !== 4 || s[1] !== 3)
      throw new RangeError(`${op}: pixels must be [B, 3, H, W] (RGB, NCHW), got [${s.join(', ')}]`);
    if (s[0] < 1) throw new RangeError(`${op}: pixels has batch size 0`);
    this.checkInputSize(op, s[2], s[3]);
    if (pixels.dtype !== 'float32' && pixels.dtype !== this.dtype)
      throw new TypeError(`${op}: pixels must be float32 (or the model's ${this.dtype}), got ${pixels.dtype}`);
    pixels.handle(op, 'pixels');
    return pixels;
  }

  /** The input on the model's device and dtype (a new tensor, or the input itself). */
  protected toModel(x: Tensor): Tensor {
    let y = x;
    if (y.device !== this.device) y = y.toSync(this.device);
    if (y.dtype !== this.dtype) y = y.cast(this.dtype);
    return y;
  }

  /**
   * The classifier layer, in float32 whatever the model's dtype. Softmax reads the gaps between
   * logits, not their sizes; rounded to 16 bits the gaps are lost where logits are large
   * (bfloat16's spacing is 2 at 400, where a randomly initialised SecViT-T's logits sit: its top
   * score on the sample went from 86% to 99.75%). The pooled features and the weights are
   * widened per call (the head is a few hundred kFLOPs per image); gradients flow back through
   * the casts to the 16-bit weights.
   */
  protected classifier(x: Tensor, weight: Tensor, bias: Tensor | null): Tensor {
    if (this.dtype === 'float32') return linear(x, weight, bias);
    return linear(x.cast('float32'), weight.cast('float32'), bias === null ? null : bias.cast('float32'));
  }

  protected toFloat32(t: Tensor): Tensor {
    return t.dtype === 'float32' ? t : t.cast('float32');
  }

  /** How a forward called now runs. */
  protected mode(): Run {
    let live = false;
    if (isGradEnabled())
      for (const [, s] of this.namedSlots())
        if (s.kind === 'parameter' && s.tensor?.requiresGrad) {
          live = true;
          break;
        }
    // A train-mode forward may update batch norm's running statistics in place.
    if (this.training) parametersChanged();
    return { live, training: this.training };
  }

  /** The state of every slot, by checkpoint name (the model's own tensors: do not dispose them). */
  stateDict(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const [name, slot] of this.namedSlots()) if (slot.tensor) out.set(name, slot.tensor);
    return out;
  }

  /** Replaces the weights from a state dict (a checkpoint's stored tensors, or Tensors by name). */
  loadStateDict(state: Map<string, StoredTensor | Tensor>, options: LoadStateDictOptions = {}): void {
    loadStateDict(this, state, options);
    this.#initialized = null;
  }

  /** Writes the model as safetensors: the reference's names, shapes and dtype, family and config in the metadata. */
  save(path: string, metadata: Record<string, string> = {}): void {
    saveModel(this, path, { ...this.randomWeightsMetadata(), ...metadata });
  }

  /** Elements of every slot (parameters and buffers) for memory estimates. */
  get stateNumel(): number {
    let n = 0;
    for (const [, s] of this.namedSlots()) n += numelOf(s.shape);
    return n;
  }

  /**
   * Logits [B, numClasses] (float32). Queued on the model's device: returns at once; reading waits.
   * In train mode batch norm uses the batch's statistics and drop path is on; while gradients are
   * recorded the forward is recorded for backward().
   */
  forward(pixels: Tensor): Tensor {
    const p = this.checkPixels(`${this.className}.forward`, pixels);
    const run = this.mode();
    return tidy(() => this.toFloat32(this.runHead(this.runBackbone(this.toModel(p), {}, run).last, false, run)));
  }

  /** timm's forward_features: the last stage's output, before the head (float32). */
  forwardFeatures(pixels: Tensor): Tensor {
    const p = this.checkPixels(`${this.className}.forwardFeatures`, pixels);
    const run = this.mode();
    return tidy(() => this.toFloat32(this.runBackbone(this.toModel(p), {}, run).last));
  }

  /** timm's forward_head on forwardFeatures' output; `preLogits` stops before the classifier. */
  forwardHead(features: Tensor, options: { preLogits?: boolean } = {}): Tensor {
    const op = `${this.className}.forwardHead`;
    if (this.#disposed) throw new Error(`${op}: the model has been disposed`);
    if (!(features instanceof Tensor)) throw new TypeError(`${op}: features must be a Tensor`);
    this.checkHeadInput(features);
    const run = this.mode();
    return tidy(() => this.toFloat32(this.runHead(this.toModel(features), options.preLogits === true, run)));
  }

  /** Every stage's output (float32), as the family's reference keeps them. */
  features(pixels: Tensor): Tensor[] {
    const p = this.checkPixels(`${this.className}.features`, pixels);
    const run = this.mode();
    return tidy(() => this.runBackbone(this.toModel(p), { features: true }, run).features.map((f) => this.toFloat32(f)));
  }

  /**
   * The SEC token order of every SEC block, with the logits. Orders are int32 [B, heads, L]; the
   * caller disposes them (and the logits). Blocks without SEC attention record nothing.
   */
  clusters(pixels: Tensor): { logits: Tensor; blocks: ClusterRecord[] } {
    const p = this.checkPixels(`${this.className}.clusters`, pixels);
    const record: ClusterRecord[] = [];
    try {
      const run = this.mode();
      const logits = tidy(() => this.toFloat32(this.runHead(this.runBackbone(this.toModel(p), { record }, run).last, false, run)));
      return { logits, blocks: record };
    } catch (e) {
      for (const r of record) r.order.dispose();
      throw e;
    }
  }

  /** Frees every weight and constant. Work already queued completes; later calls throw. Idempotent. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.releaseDerived();
    for (const t of this.#constants.values()) t.dispose();
    this.#constants.clear();
    this.disposeSlots();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  /** `await using model = ...`: the same as dispose(). */
  async [Symbol.asyncDispose](): Promise<void> {
    this.dispose();
  }
}
