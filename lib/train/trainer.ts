// Training as a product (`secvit train`, `fit`): data from IDX or image folders, DeiT's recipe
// (each part switchable), exact resume, atomic checkpoints, a JSON line per epoch.
//
// Determinism: the image order of an epoch depends on (seed, epoch), a batch's augmentation on
// (seed, epoch, batch), drop path's masks on the dropout generator's counter (saved), the
// initial weights on the seed. So the same seed and threads give the same weights bit for bit on
// the CPU, and resuming from a checkpoint (epoch and batch, model, EMA, optimizer, counters,
// generator) continues exactly where the run stopped.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setNumThreads, type DeviceChoice } from '../backends.js';
import { tidy } from '../engine.js';
import { encodeSafetensors, readSafetensors, type TensorBytes } from '../io/safetensors.js';
import { writeFileAtomic } from '../io/atomic.js';
import { readCheckpoint } from '../models/load.js';
import { createModel, familyOf, resolveModelConfig, type ModelConfig, type ModelConfigInput } from '../models/registry.js';
import type { VisionModel } from '../models/base.js';
import { MIN_INPUT_SIZE } from '../models/secvit.js';
import { getRandomState, manualSeed, setRandomState } from '../ops/dropout.js';
import { crossEntropy } from '../ops/loss.js';
import { AdamW } from '../optim/adamw.js';
import { clipGradNorm } from '../optim/clip.js';
import type { OptimizerStateDict } from '../optim/optimizer.js';
import { tensor, type Tensor } from '../tensor.js';
import type { AugmentOptions, ImageTransform, MixOptions } from '../data/augment.js';
import { pixelStats, resizeSet, subset, type ImageSet } from '../data/dataset.js';
import { DataError } from '../data/idx.js';
import { BatchLoader } from '../data/loader.js';
import { loadImageData } from '../data/sources.js';
// backward() on Tensor is installed by the autograd engine: make sure it is loaded.
import '../autograd/backward.js';
import { ModelEma } from './ema.js';
import { evaluate, type EvalResult } from './evaluate.js';
import { learningRate } from './schedule.js';

/** The recipe: DeiT's defaults (timm's names in comments), each switchable. */
export interface Recipe {
  /** Base learning rate for a batch of 512; the rate used is lr * batchSize / 512 (DeiT's rule). 5e-4. */
  lr: number;
  weightDecay: number;         // 0.05
  warmupEpochs: number;        // 5
  warmupLr: number;            // 1e-6
  minLr: number;               // 1e-5
  smoothing: number;           // 0.1
  /** Stochastic depth; null: the config's. */
  dropPath: number | null;
  /** EMA decay of the weights (model_ema_decay 0.99996); 0 disables the EMA. */
  ema: number;
  mixup: number;               // 0.8
  cutmix: number;              // 1.0
  mixupProb: number;           // 1.0
  mixupSwitchProb: number;     // 0.5
  /** RandomResizedCrop's scale ([0.08, 1]); null: no crop. */
  cropScale: [number, number] | null;
  flip: number;                // 0.5 (hflip)
  randAugment: string | null;  // 'rand-m9-mstd0.5-inc1'
  reprob: number;              // 0.25
  /** Gradient clipping's max norm (clip_grad); null: none (DeiT's default). */
  clipGrad: number | null;
}

export const DEIT_RECIPE: Readonly<Recipe> = Object.freeze({
  lr: 5e-4, weightDecay: 0.05, warmupEpochs: 5, warmupLr: 1e-6, minLr: 1e-5, smoothing: 0.1, dropPath: null,
  ema: 0.99996, mixup: 0.8, cutmix: 1.0, mixupProb: 1.0, mixupSwitchProb: 0.5,
  cropScale: [0.08, 1] as [number, number], flip: 0.5, randAugment: 'rand-m9-mstd0.5-inc1', reprob: 0.25, clipGrad: null,
});

export interface TrainOptions extends Partial<Recipe> {
  /** A dataset folder: IDX files (MNIST / Fashion-MNIST) or an ImageFolder tree (train/, val/). */
  data: string;
  /** Output folder (model.safetensors, checkpoint.safetensors, log.jsonl, curves.png). */
  out?: string;
  /** Total epochs (a resumed run continues up to this). Default 10. */
  epochs?: number;
  batchSize?: number;
  /**
   * The model: a registered name ('secvit-fm', 'swin-t', 'sec-vit-b-16', ...) or a config object
   * of any family; default 'secvit-fm'. The class count follows the data.
   */
  config?: ModelConfigInput;
  seed?: number;
  /** Train on the first N training images only. */
  limit?: number;
  /** Hold out the last N training images for validation (valTop1 in the log). */
  holdout?: number;
  /** Evaluate on the test split every N epochs (and after the last); 0: after the last only. Default 1. */
  evalEvery?: number;
  /** Input side; default: the config's data default (32 for 28x28 IDX data, else 224). */
  inputSize?: number;
  resume?: string;
  finetune?: string;
  /** With finetune: train the head only (a linear probe). */
  linearProbe?: boolean;
  threads?: number;
  device?: DeviceChoice;
  /** Data worker threads. Default 1. */
  workers?: number;
  /** A line per epoch (and a live line on a terminal) through this; default: none. */
  log?: (line: string, live: boolean) => void;
  /** The command line that ran this (the model's provenance). */
  command?: string;
  /** Checked between steps: when it returns true the run saves a checkpoint and stops. */
  shouldStop?: () => boolean;
}

export interface EpochLog {
  epoch: number;
  trainLoss: number;
  lr: number;
  valTop1?: number;
  valLoss?: number;
  testTop1?: number;
  testTop5?: number;
  testLoss?: number;
  imagesPerSecond: number;
  /** Fraction of the epoch's wall time the model waited for data. */
  dataWait: number;
  seconds: number;
}

export interface TrainResult {
  log: EpochLog[];
  /** The test-split evaluation after the last epoch (of the EMA when it is on), if there is a test split. */
  test?: EvalResult;
  /** Whether the run stopped early (shouldStop) after saving a checkpoint. */
  stopped: boolean;
  outDir?: string;
}

export class TrainingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TrainingError';
  }
}

function configFor(c: ModelConfigInput | undefined): ModelConfig {
  return resolveModelConfig(c ?? 'secvit-fm').config;
}

/** The config with the data's class count and, where the family has one, the recipe's drop-path rate. */
function trainConfig(config: ModelConfig, classes: number, dropPath: number | null): ModelConfig {
  const f = familyOf(config);
  if (f === 'swin') {
    const c = config as Extract<ModelConfig, { family: 'swin' }>;
    return { ...c, numClasses: classes, stochasticDepthProb: dropPath ?? c.stochasticDepthProb };
  }
  if (f === 'vit') return { ...config, numClasses: classes };
  const c = config as Extract<ModelConfig, { dropPathRate: number }>;
  return { ...c, numClasses: classes, dropPathRate: dropPath ?? c.dropPathRate };
}

/** What a training checkpoint records of the model (and a resume compares): the family's reference config. */
function configRecord(model: VisionModel): Record<string, unknown> {
  const ref = model.referenceConfig() as Record<string, unknown>;
  if (model.family === 'secvit') return { ...ref, drop_path_rate: (model as unknown as { config: { dropPathRate: number } }).config.dropPathRate };
  return ref;
}

const posInt = (op: string, name: string, v: unknown, min = 1): number => {
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new TypeError(`${op}: ${name} must be an integer, got ${JSON.stringify(v)}`);
  if (v < min) throw new RangeError(`${op}: ${name} must be >= ${min}, got ${v}`);
  return v;
};

const round = (v: number, digits = 6) => Number(v.toPrecision(digits));

interface CheckpointMeta {
  version: 1;
  config: Record<string, unknown>;
  /** Epochs finished, and batches finished of the next one. */
  epoch: number;
  batch: number;
  /** What must match for an exact resume. */
  fixed: Record<string, unknown>;
  random: { seed: number; counter: number };
  optimizer: { paramGroups: OptimizerStateDict['paramGroups']; steps: Record<string, number> };
  counters: Record<string, string>;
  running: { lossSum: number; seen: number; seconds: number; waitMs: number };
  log: EpochLog[];
}

const f32Bytes = (a: Float32Array): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** Trains a SecViT; see TrainOptions. Resolves when the last epoch is done (or the run was stopped). */
export async function fit(givenOptions: TrainOptions): Promise<TrainResult> {
  let options = givenOptions;
  const op = 'fit';
  if (typeof options !== 'object' || options === null) throw new TypeError(`${op}: options must be an object`);
  if (typeof options.data !== 'string') throw new TypeError(`${op}: data must be a folder path, got ${typeof options.data}`);
  // A resume takes the checkpoint's settings for whatever is not given (given and different:
  // refused below, naming it), so `--resume FILE --epochs N` alone continues a run.
  if (options.resume !== undefined) options = { ...settingsOf(options.resume), ...definedOnly(options) } as TrainOptions;
  const recipe: Recipe = { ...DEIT_RECIPE };
  for (const k of Object.keys(DEIT_RECIPE) as (keyof Recipe)[]) if (options[k] !== undefined) (recipe as unknown as Record<string, unknown>)[k] = options[k];
  const epochs = posInt(op, 'epochs', options.epochs ?? 10);
  const batchSize = posInt(op, 'batchSize', options.batchSize ?? 128);
  const seed = posInt(op, 'seed', options.seed ?? 0, 0);
  const evalEvery = posInt(op, 'evalEvery', options.evalEvery ?? 1, 0);
  const log = options.log ?? (() => {});
  if (options.threads !== undefined) setNumThreads(posInt(op, 'threads', options.threads));

  // Data.
  const data = await loadImageData(options.data, { size: options.inputSize ?? 224 });
  for (const sk of data.skipped) log(`skipped ${sk.file}: ${sk.error}`, false);
  let train = data.train;
  const holdout = posInt(op, 'holdout', options.holdout ?? 0, 0);
  if (holdout >= train.count) throw new RangeError(`${op}: holdout ${holdout} leaves no training images (${train.count})`);
  const val = holdout > 0 ? subset(train, Int32Array.from({ length: holdout }, (_, i) => train.count - holdout + i)) : null;
  const usable = train.count - holdout;
  const limit = options.limit === undefined ? usable : Math.min(posInt(op, 'limit', options.limit), usable);
  if (limit < train.count) train = subset(train, Int32Array.from({ length: limit }, (_, i) => i));

  // Model.
  const config = trainConfig(configFor(options.config), data.classes.length, recipe.dropPath);
  const family = familyOf(config);
  // ViT's position embedding fixes its input size; the others take the data's default.
  const fixedSize = family === 'vit' ? (config as { imageSize: number }).imageSize : undefined;
  const inputSize = options.inputSize ?? fixedSize ?? (data.train.height <= 32 && data.train.width <= 32 ? 32 : 224);
  posInt(op, 'inputSize', inputSize, family === 'secvit' ? MIN_INPUT_SIZE : 1);
  if (fixedSize !== undefined && inputSize !== fixedSize)
    throw new RangeError(`${op}: inputSize ${inputSize} does not fit the ViT's position embedding (imageSize ${fixedSize})`);
  const stats = pixelStats(data.train);
  const mean = stats.mean.length === 1 ? [stats.mean[0], stats.mean[0], stats.mean[0]] : stats.mean;
  const std = stats.std.length === 1 ? [stats.std[0], stats.std[0], stats.std[0]] : stats.std;
  const meanR = mean.map((v) => round(v, 4)), stdR = std.map((v) => round(v, 4));
  const interpolation = 'bilinear' as const;
  const augment: Required<AugmentOptions> = {
    cropScale: recipe.cropScale, cropRatio: [3 / 4, 4 / 3], flip: recipe.flip, randAugment: recipe.randAugment, reprob: recipe.reprob,
  };
  const transform: ImageTransform = { size: inputSize, outChannels: 3, mean: meanR, std: stdR, train: true, augment };
  const mix: MixOptions | null = recipe.mixup > 0 || recipe.cutmix > 0
    ? { mixup: recipe.mixup, cutmix: recipe.cutmix, prob: recipe.mixupProb, switchProb: recipe.mixupSwitchProb, smoothing: recipe.smoothing } : null;
  const prepared = (s: ImageSet) => resizeSet(s, inputSize, interpolation);

  const fixed = {
    seed, batchSize, data: data.train.name, trainCount: train.count, holdout, inputSize, recipe: JSON.stringify(recipe),
    finetune: options.finetune ?? null, linearProbe: options.linearProbe === true,
  };

  const model = createModel(config, { seed, device: options.device });
  const disposeLater: { dispose(): void }[] = [model];
  let loader: BatchLoader | null = null;
  try {
    if (options.finetune) finetuneFrom(model, options.finetune);
    if (options.linearProbe) {
      if (!options.finetune) throw new RangeError(`${op}: linearProbe needs finetune (a checkpoint to probe)`);
      for (const [name, t] of model.namedParameters()) if (!name.startsWith('head.')) t.requiresGrad = false;
    }
    // A resume's weights go in before the optimizer is made (loading replaces the parameter
    // tensors); its optimizer state after.
    const resume = options.resume ? readResume(options.resume, configRecord(model), fixed) : null;
    let startEpoch = 0, startBatch = 0;
    let running = { lossSum: 0, seen: 0, seconds: 0, waitMs: 0 };
    const history: EpochLog[] = [];
    if (resume) resume.loadModel(model);
    model.train();
    const opt = new AdamW(model, { lr: (recipe.lr * batchSize) / 512, weightDecay: recipe.weightDecay });
    disposeLater.push(opt);
    const ema = recipe.ema > 0 ? new ModelEma(model) : null;
    // The EMA is evaluated in a model of its own: loading it into the trained one would replace
    // the tensors the optimizer holds.
    const emaModel = ema ? createModel(config, { device: options.device }) : null;
    if (emaModel) disposeLater.push(emaModel);
    manualSeed(seed);
    if (resume) {
      const r = resume.loadRest(opt, ema);
      startEpoch = r.epoch;
      startBatch = r.batch;
      running = r.running;
      history.push(...r.log);
      if (startEpoch >= epochs && startBatch === 0) log(`${options.resume}: already trained ${startEpoch} epochs (--epochs ${epochs})`, false);
    }

    const out = options.out;
    if (out) mkdirSync(out, { recursive: true });
    const logFile = out ? path.join(out, 'log.jsonl') : null;
    const writeLog = () => {
      if (logFile) writeFileAtomic(logFile, Buffer.from(history.map((h) => JSON.stringify(h)).join('\n') + (history.length ? '\n' : '')));
    };
    const schedule = { lr: (recipe.lr * batchSize) / 512, epochs, warmupEpochs: recipe.warmupEpochs, warmupLr: recipe.warmupLr, minLr: recipe.minLr };

    loader = new BatchLoader(prepared(train), { batchSize, transform, mix, workers: options.workers ?? 1, dropLast: train.count >= batchSize });
    const steps = loader.length;
    const evalSets = { val: val ? prepared(val) : null, test: data.test ? prepared(data.test) : null };
    const saveCheckpoint = (epoch: number, batch: number) => {
      if (!out) return;
      writeFileAtomic(path.join(out, 'checkpoint.safetensors'), encodeCheckpoint(model, opt, ema, fixed, epoch, batch, running, history));
    };
    const evalWith = async (set: ImageSet): Promise<EvalResult> => {
      if (ema && emaModel) loadEma(emaModel, ema, model);
      return evaluate(emaModel ?? model, set, transform, { workers: options.workers ?? 1 });
    };

    let stopped = false;
    let test: EvalResult | undefined;
    for (let epoch = startEpoch; epoch < epochs && !stopped; epoch++) {
      const t0 = performance.now() - running.seconds * 1000;
      loader.waitMs = running.waitMs;
      let b = epoch === startEpoch ? startBatch : 0;
      for await (const batch of loader.epoch(epoch, seed, true, b)) {
        const n = batch.labels.length;
        const lr = learningRate(schedule, epoch + b / steps);
        opt.lr = lr;
        const loss = tidy(() => {
          const x = tensor(batch.x, [n, 3, inputSize, inputSize]);
          const logits = model.forward(x);
          if (batch.targets) return crossEntropy(logits, tensor(batch.targets, [n, model.numClasses], { device: model.device }));
          return crossEntropy(logits, batch.labels, { labelSmoothing: recipe.smoothing });
        });
        await loss.backward();
        const value = (await loss.data())[0];
        loss.dispose();
        if (!Number.isFinite(value)) {
          opt.zeroGrad();
          throw new TrainingError(`${op}: the loss is ${value} at epoch ${epoch + 1}, step ${b + 1} of ${steps}; stopped.${out ? ` The last good checkpoint is ${path.join(out, 'checkpoint.safetensors')}.` : ''} Try a lower --lr or --clip-grad.`);
        }
        if (recipe.clipGrad !== null) await clipGradNorm(model, recipe.clipGrad);
        await opt.step();
        opt.zeroGrad();
        ema?.update(model, recipe.ema);
        running.lossSum += value * n;
        running.seen += n;
        b++;
        const elapsed = (performance.now() - t0) / 1000;
        if (b % 10 === 0 || b === steps) {
          const ips = running.seen / elapsed;
          const eta = ((steps - b) * elapsed) / b + (epochs - epoch - 1) * (steps * elapsed) / b;
          log(`epoch ${epoch + 1}/${epochs} step ${b}/${steps} loss ${(running.lossSum / running.seen).toFixed(4)} ${ips.toFixed(0)} img/s eta ${formatSeconds(eta)}`, true);
        }
        if (options.shouldStop?.() && b < steps) {
          running.seconds = elapsed;
          running.waitMs = loader.waitMs;
          saveCheckpoint(epoch, b);
          stopped = true;
          break;
        }
      }
      if (stopped) break;
      const seconds = (performance.now() - t0) / 1000;
      const row: EpochLog = {
        epoch: epoch + 1, trainLoss: round(running.lossSum / Math.max(running.seen, 1)), lr: round(opt.lr),
        imagesPerSecond: round(running.seen / seconds, 4), dataWait: round(loader.waitMs / 1000 / seconds, 3), seconds: round(seconds, 4),
      };
      const evalStart = performance.now();
      if (evalSets.val) {
        const r = await evalWith(evalSets.val);
        row.valTop1 = round(r.top1);
        row.valLoss = round(r.loss);
      }
      const last = epoch + 1 === epochs;
      if (evalSets.test && (last || (evalEvery > 0 && (epoch + 1) % evalEvery === 0))) {
        const r = await evalWith(evalSets.test);
        row.testTop1 = round(r.top1);
        row.testTop5 = round(r.top5);
        row.testLoss = round(r.loss);
        if (last) test = r;
      }
      row.seconds = round(seconds + (performance.now() - evalStart) / 1000, 4);
      history.push(row);
      running = { lossSum: 0, seen: 0, seconds: 0, waitMs: 0 };
      saveCheckpoint(epoch + 1, 0);
      writeLog();
      log(formatEpoch(row, epochs), false);
      if (options.shouldStop?.()) stopped = epoch + 1 < epochs;
    }
    if (out && !stopped) {
      const meta: Record<string, string> = {
        input_size: JSON.stringify([3, inputSize, inputSize]), mean: JSON.stringify(meanR), std: JSON.stringify(stdR),
        interpolation, crop_pct: '1', class_names: JSON.stringify(data.classes),
        provenance: JSON.stringify({
          data: data.train.name, trainImages: train.count, holdout, epochs, batchSize, seed, recipe,
          finalTestTop1: test?.top1, finalTestTop5: test?.top5, finalTestCount: test?.count, command: options.command ?? null, weights: ema ? 'ema' : 'model',
        }),
      };
      if (ema && emaModel) loadEma(emaModel, ema, model);
      (emaModel ?? model).save(path.join(out, 'model.safetensors'), meta);
      writeFileSync(path.join(out, 'curves.png'), (await import('../vision/charts.js')).trainingCurves(history));
    }
    return { log: history, test, stopped, outDir: out };
  } finally {
    await loader?.close();
    for (const d of disposeLater.reverse()) d.dispose();
  }
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** A training checkpoint opened, its secvit_checkpoint metadata parsed (errors name the file). */
function openTrainingCheckpoint(file: string): ReturnType<typeof readSafetensors> & { meta: CheckpointMeta } {
  if (!existsSync(file)) throw new DataError(`resume ${file}: no such file`);
  const ck = readSafetensors(file);
  try {
    const raw = ck.metadata.get('secvit_checkpoint');
    if (!raw) throw new TrainingError(`resume ${file}: not a training checkpoint (no secvit_checkpoint metadata); to start from weights use --finetune`);
    try {
      return Object.assign(ck, { meta: JSON.parse(raw) as CheckpointMeta });
    } catch (e) {
      throw new TrainingError(`resume ${file}: its secvit_checkpoint metadata is not JSON (${(e as Error).message})`);
    }
  } catch (e) {
    ck.close();
    throw e;
  }
}

/** The settings a training checkpoint was made with, as TrainOptions (its header only is read). */
function settingsOf(file: string): Partial<TrainOptions> {
  if (typeof file !== 'string') throw new TypeError(`fit: resume must be a file path, got ${typeof file}`);
  const ck = openTrainingCheckpoint(file);
  try {
    const meta = ck.meta;
    const f = meta.fixed ?? {};
    let recipe: Partial<Recipe> = {};
    try {
      recipe = typeof f.recipe === 'string' ? (JSON.parse(f.recipe) as Partial<Recipe>) : {};
    } catch { /* compared (and refused) below */ }
    return {
      ...recipe, config: meta.config as ModelConfigInput,
      seed: f.seed as number | undefined, batchSize: f.batchSize as number | undefined, holdout: f.holdout as number | undefined,
      inputSize: f.inputSize as number | undefined, limit: f.trainCount as number | undefined,
      finetune: (f.finetune as string | null) ?? undefined, linearProbe: f.linearProbe === true ? true : undefined,
    };
  } finally {
    ck.close();
  }
}

function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const m = Math.floor(s / 60);
  return m > 0 ? `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${s.toFixed(0)}s`;
}

function formatEpoch(r: EpochLog, epochs: number): string {
  const pct = (v?: number) => (v === undefined ? '' : ` ${(v * 100).toFixed(2)}%`);
  return `epoch ${r.epoch}/${epochs}: loss ${r.trainLoss.toFixed(4)} lr ${r.lr.toExponential(2)}` +
    (r.valTop1 !== undefined ? ` val${pct(r.valTop1)}` : '') + (r.testTop1 !== undefined ? ` test${pct(r.testTop1)}` : '') +
    ` ${r.imagesPerSecond.toFixed(0)} img/s data-wait ${(r.dataWait * 100).toFixed(1)}% ${formatSeconds(r.seconds)}`;
}

/** The EMA's weights (and the trained model's batch-norm counters) into `target`. */
function loadEma(target: VisionModel, ema: ModelEma, model: VisionModel): void {
  const avg = ema.tensors();
  try {
    target.loadStateDict(avg, { strict: true });
  } finally {
    for (const t of avg.values()) t.dispose();
  }
  const counters = new Map(target.namedCounters());
  for (const [n, c] of model.namedCounters()) counters.get(n)!.value = c.value;
}

function encodeCheckpoint(model: VisionModel, opt: AdamW, ema: ModelEma | null, fixed: Record<string, unknown>,
  epoch: number, batch: number, running: CheckpointMeta['running'], log: EpochLog[]): Uint8Array {
  const tensors: [string, TensorBytes][] = [];
  for (const [name, t] of model.stateDict()) tensors.push([`model.${name}`, { dtype: 'F32', shape: t.shape, data: f32Bytes(t.dataSync() as Float32Array) }]);
  if (ema) ema.names.forEach((n, i) => tensors.push([`ema.${n}`, { dtype: 'F64', shape: ema.shapes[i], data: new Uint8Array(ema.values[i].buffer) }]));
  const sd = opt.stateDict();
  const steps: Record<string, number> = {};
  for (const [index, entry] of Object.entries(sd.state))
    for (const [k, v] of Object.entries(entry)) {
      if (typeof v === 'number') steps[index] = v;
      else tensors.push([`optim.${index}.${k}`, { dtype: 'F32', shape: v.shape, data: f32Bytes(v.dataSync() as Float32Array) }]);
    }
  const counters: Record<string, string> = {};
  for (const [n, c] of model.namedCounters()) counters[n] = c.value.toString();
  const meta: CheckpointMeta = {
    version: 1, config: configRecord(model), epoch, batch, fixed,
    random: getRandomState(), optimizer: { paramGroups: sd.paramGroups, steps }, counters, running, log,
  };
  return encodeSafetensors(tensors, { format: 'secvit-train', secvit_checkpoint: JSON.stringify(meta) });
}

interface Resume {
  /** The checkpoint's weights and counters into the model (before the optimizer is made). */
  loadModel(model: VisionModel): void;
  /** The optimizer's state, the EMA, the generator; what the run had reached. */
  loadRest(opt: AdamW, ema: ModelEma | null): { epoch: number; batch: number; running: CheckpointMeta['running']; log: EpochLog[] };
}

function readResume(file: string, record: Record<string, unknown>, fixed: Record<string, unknown>): Resume {
  const what = `resume ${file}`;
  const ck = openTrainingCheckpoint(file);
  const meta = ck.meta;
  try {
    const theirs = JSON.stringify(meta.config), ours = JSON.stringify(record);
    if (theirs !== ours) throw new TrainingError(`${what}: the checkpoint is of another config (${theirs}); this run's is ${ours}`);
    const differ = Object.keys(fixed).filter((k) => JSON.stringify(meta.fixed?.[k]) !== JSON.stringify(fixed[k]));
    if (differ.length) throw new TrainingError(`${what}: the checkpoint was trained with other settings: ${differ.map((k) => `${k} ${JSON.stringify(meta.fixed?.[k])} (now ${JSON.stringify(fixed[k])})`).join(', ')}; resume needs the same ones`);
  } catch (e) {
    ck.close();
    throw e;
  }
  const prefixed = (p: string) => new Map([...ck.tensors].filter(([k]) => k.startsWith(p)).map(([k, v]) => [k.slice(p.length), v]));
  return {
    loadModel(model) {
      try {
        model.loadStateDict(prefixed('model.'), { strict: true });
        for (const [n, c] of model.namedCounters()) if (meta.counters[n] !== undefined) c.value = BigInt(meta.counters[n]);
      } catch (e) {
        ck.close();
        throw e;
      }
    },
    loadRest(opt, ema) {
      try {
        if (ema) {
          const values = new Map<string, Float64Array>();
          for (const [k, st] of prefixed('ema.')) {
            const bytes = st.read();
            values.set(k, new Float64Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)));
          }
          ema.load(values);
        }
        const state: OptimizerStateDict['state'] = {};
        const made: Tensor[] = [];
        try {
          for (const [index, step] of Object.entries(meta.optimizer.steps)) state[Number(index)] = { step };
          for (const [k, st] of prefixed('optim.')) {
            const [index, key] = k.split('.');
            const bytes = st.read();
            const t = tensor(new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)), st.shape);
            made.push(t);
            (state[Number(index)] ??= {})[key] = t;
          }
          opt.loadStateDict({ state, paramGroups: meta.optimizer.paramGroups });
        } finally {
          for (const t of made) t.dispose();
        }
        setRandomState(meta.random);
        return { epoch: meta.epoch, batch: meta.batch, running: meta.running, log: meta.log };
      } finally {
        ck.close();
      }
    },
  };
}

/**
 * Copies a checkpoint's weights (safetensors, the authors' .pth) into `model`: every tensor whose
 * name and shape match; the head is left at its initialisation when the class count differs
 * (the authors' main.py --finetune drops head.weight/head.bias then).
 */
export function finetuneFrom(model: VisionModel, file: string): { loaded: number; skipped: string[] } {
  const ck = readCheckpoint(file, {});
  try {
    const ours = model.stateDict();
    const take = new Map<string, (typeof ck.tensors extends Map<string, infer V> ? V : never)>();
    const skipped: string[] = [];
    for (const [name, st] of ck.tensors) {
      const t = ours.get(name);
      if (t && t.shape.length === st.shape.length && t.shape.every((s, i) => s === st.shape[i])) take.set(name, st);
      else if (t || name.startsWith('head.')) skipped.push(name);
    }
    const trunk = [...ours.keys()].filter((n) => !n.startsWith('head.'));
    const missing = trunk.filter((n) => !take.has(n));
    if (missing.length) throw new TrainingError(`finetune ${file}: the checkpoint does not fit this config: ${missing.length} tensors missing or of other shapes (first: '${missing[0]}')`);
    model.loadStateDict(take, { strict: false });
    return { loaded: take.size, skipped };
  } finally {
    ck.close();
  }
}
