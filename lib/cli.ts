// The `secvit` command line. Each command parses its own options strictly (node:util parseArgs):
// an unknown command or option exits 2 with one line; a bad value names the option and what it
// expects; runtime failures exit 1 with one line (the stack with --verbose). Results go to
// stdout, progress and messages to stderr (progress only on a TTY, never with --no-progress).
import { createHash } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { backends, selectDevice, setNumThreads } from './backends.js';
import { loadImageData } from './data/sources.js';
import { resizeSet } from './data/dataset.js';
import { parseRandAugment } from './data/augment.js';
import { bundledModelPath, bundledModels } from './models/bundled.js';
import { fit, type Recipe } from './train/trainer.js';
import { evaluate } from './train/evaluate.js';
import { confusionPicture } from './vision/charts.js';
import { addonOrigin, packageRoot } from './native.js';
import { buildModel, checkpointConfig, listModels, loadModel, modelFromCheckpointAny, resolveModelConfig } from './models/registry.js';
import type { VisionModel } from './models/base.js';
import { readCheckpoint, type LoadProgress } from './models/load.js';
import { pipeline, type ImageClassificationPipeline, type Prediction } from './pipeline.js';
import { clusterPicture } from './vision/clusters.js';
import { loadSharp } from './vision/image.js';

/** A mistake in how the command was called: exit code 2, one line. */
export class UsageError extends Error {}

type Options = NonNullable<ParseArgsConfig['options']>;
const COMMON: Options = {
  help: { type: 'boolean', short: 'h' },
  verbose: { type: 'boolean' },
  'no-progress': { type: 'boolean' },
};

interface Command {
  summary: string;
  usage: string;
  options: Options;
  /** Lines describing each option, for --help. */
  help: string[];
  /** Resolves to the exit code when it is not 0 (e.g. 130: interrupted). */
  run(values: Record<string, unknown>, positionals: string[], io: Io): Promise<void | number>;
}

export interface Io {
  /** A line of the result (stdout). */
  out: (s: string) => void;
  /** A line of a message (stderr). */
  err: (s: string) => void;
  /** Text for stderr as is, no newline added: progress bars redraw their line with '\r'. */
  write: (s: string) => void;
  /** Progress and status lines are shown (stderr is a TTY and --no-progress was not given). */
  progress: boolean;
}

export interface ProgressBarOptions {
  /** Characters of the bar. Default 24. */
  width?: number;
  /** The counts are bytes: shown as MB ('12.3/57.2 MB'). */
  bytes?: boolean;
}

/** A one-line progress bar on stderr (`io.write`), redrawn in place (only when `io.progress`). */
export function progressBar(io: Io, total: number, options: ProgressBarOptions = {}): { update(done: number, label: string): void; done(): void } {
  const width = options.width ?? 24;
  const count = options.bytes ? (n: number) => (n / 1e6).toFixed(1) : String;
  const unit = options.bytes ? ' MB' : '';
  let drawn = '';
  // Visible width of the line (+1 for its '\r'); a terminal that reports no width (0) counts as 80.
  const cols = Math.max(Math.min(process.stderr.columns || 80, 120), 20) - 1;
  return {
    update(done, label) {
      if (!io.progress) return;
      const fill = Math.min(Math.max(Math.round((done / Math.max(total, 1)) * width), 0), width);
      const head = `\r[${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${count(done)}/${count(total)}${unit} `;
      // A label too long for the line keeps its end (a path's file name), after an ellipsis.
      const room = cols + 1 - head.length;
      const shown = label.length <= room ? label : room > 1 ? '…' + label.slice(label.length - (room - 1)) : '';
      const line = (head + shown).slice(0, cols + 1).padEnd(cols + 1);
      if (line === drawn) return; // unchanged: no redraw
      io.write(line);
      drawn = line;
    },
    done() {
      if (drawn) io.write('\r' + ' '.repeat(cols) + '\r');
    },
  };
}

/**
 * A "loading weights" bar for SecViT.load's `onProgress` (MB read of the weights' total); no
 * callback at all unless `io.progress`. `done()` clears the bar's line.
 */
export function weightsBar(io: Io): { onProgress?: LoadProgress; done(): void } {
  if (!io.progress) return { done() {} };
  let bar: ReturnType<typeof progressBar> | undefined;
  return {
    onProgress(done, total) {
      bar ??= progressBar(io, total, { bytes: true });
      bar.update(done, 'loading weights');
    },
    done() {
      bar?.done();
    },
  };
}

function parse(cmd: string, spec: Command, argv: string[]) {
  try {
    return parseArgs({ args: argv, options: { ...COMMON, ...spec.options }, allowPositionals: true, strict: true });
  } catch (e) {
    const msg = (e as Error).message.replace(/\. To specify a positional argument.*$/s, '').replace(/^Unknown option/, 'unknown option');
    throw new UsageError(`${cmd}: ${msg} (see secvit ${cmd} --help)`);
  }
}

function intOption(values: Record<string, unknown>, name: string, cmd: string, min: number, fallback?: number): number | undefined {
  const v = values[name];
  if (v === undefined) return fallback;
  const n = Number(v);
  if (typeof v !== 'string' || !/^-?\d+$/.test(v) || n < min)
    throw new UsageError(`${cmd}: --${name} expects an integer >= ${min}, got '${String(v)}'`);
  return n;
}

function choice<T extends string>(values: Record<string, unknown>, name: string, cmd: string, allowed: readonly T[], fallback: T): T {
  const v = values[name];
  if (v === undefined) return fallback;
  if (!allowed.includes(v as T)) throw new UsageError(`${cmd}: --${name} expects one of ${allowed.join(', ')}, got '${String(v)}'`);
  return v as T;
}

const DEVICES = ['auto', 'cpu', 'cuda', 'cuda-emu'] as const;
const DTYPES = ['float32', 'bfloat16', 'float16'] as const;

// The options of every command that loads a model, and their help lines.
const MODEL_OPTIONS: Options = {
  weights: { type: 'string', short: 'w' }, model: { type: 'string', short: 'm' }, config: { type: 'string' }, key: { type: 'string' },
  device: { type: 'string' },
};
const MODEL_HELP = [
  '--weights, -w FILE  a .safetensors or .pth checkpoint (required)',
  '--model, -m NAME    the model when the file does not say: secvit-t/s/b/l/fm, swin-t/s/b, vit-b-16/b-32/l-16, sec-swin-*, sec-vit-*, or a config as JSON (default: the file\'s metadata, else its keys say the family: SecViT, torchvision\'s Swin or ViT)',
  '--config NAME|JSON  the same as --model',
  '--key KEY           .pth: the entry holding the weights (default: model_ema, state_dict, model, ...)',
  '--device D          auto (default: CUDA when usable, else the CPU), cpu, cuda, cuda-emu',
];

/** --model NAME|JSON, or its older spelling --config (both: they must agree). */
function modelChoice(values: Record<string, unknown>, cmd: string): string | undefined {
  const m = values.model as string | undefined, c = values.config as string | undefined;
  if (m !== undefined && c !== undefined && m !== c) throw new UsageError(`${cmd}: --model and --config name different models ('${m}', '${c}'); give one`);
  return m ?? c;
}

/** The checkpoint and load options a command's --weights, --model (--config), --key and --device name. */
function modelOptions(values: Record<string, unknown>, cmd: string, bundled = false) {
  if (typeof values.weights !== 'string' && !bundled) throw new UsageError(`${cmd}: --weights FILE is required`);
  return {
    weights: typeof values.weights === 'string' ? values.weights : bundledModelPath(),
    options: { device: choice(values, 'device', cmd, DEVICES, 'auto'), config: modelChoice(values, cmd), key: values.key as string | undefined },
  };
}

// What 16 bits mean, device by device (README, Models: dtype): on CUDA the tensor cores; on the CPU
// half the weight memory but no speed, every op widening to float32 and rounding its output.
const DTYPE_HELP = [
  '--dtype T           float32 (default), bfloat16 or float16: weights and activations in 16 bits,',
  '                    logits in float32. CUDA: tensor cores. CPU: half the weight memory, not faster;',
  '                    each layer rounds its output (logits ~1e-2 (bf16), ~5e-3 (fp16) from float32)',
];

const classify: Command = {
  summary: 'classify images (the bundled Fashion-MNIST model, or a checkpoint: its class names, else ImageNet-1k\'s)',
  usage: 'secvit classify <images...> [--weights FILE] [--model NAME] [--key KEY] [--top-k 5] [--device auto] [--dtype float32] [--json]',
  options: { ...MODEL_OPTIONS, 'top-k': { type: 'string', short: 'k' }, dtype: { type: 'string' }, json: { type: 'boolean' } },
  help: [
    ...MODEL_HELP.map((h) => h.replace('(required)', '(default: the bundled secvit-fm model, Fashion-MNIST)')),
    '--top-k, -k N       classes per image, best first (default 5)',
    ...DTYPE_HELP,
    '--json              one JSON array on stdout: [{ image, predictions: [{ index, label, score }] }]',
  ],
  async run(values, images, io) {
    if (images.length === 0) throw new UsageError('classify: give at least one image (see secvit classify --help)');
    const { weights, options } = modelOptions(values, 'classify', true);
    const topK = intOption(values, 'top-k', 'classify', 1, 5)!;
    const dtype = choice(values, 'dtype', 'classify', DTYPES, 'float32');
    const loading = weightsBar(io);
    let classifier: ImageClassificationPipeline;
    try {
      classifier = await pipeline('image-classification', weights, {
        ...options, dtype, topK, onProgress: loading.onProgress, onWarning: (m) => io.err(`secvit classify: warning: ${m}`),
      });
    } finally {
      loading.done();
    }
    try {
      const results: { image: string; predictions: Prediction[] }[] = [];
      const bar = progressBar(io, images.length);
      try {
        for (const [i, image] of images.entries()) {
          bar.update(i, image);
          results.push({ image, predictions: await classifier(image) });
        }
      } finally {
        bar.done();
      }
      if (values.json) {
        io.out(JSON.stringify(results.map((r) => ({ image: r.image, predictions: r.predictions.map(({ index, label, score }) => ({ index, label, score })) }))));
      } else {
        for (const r of results) {
          io.out(r.image);
          for (const p of r.predictions) io.out(`  ${(p.score * 100).toFixed(2).padStart(6)}%  ${String(p.index).padStart(4)}  ${p.label}`);
        }
      }
    } finally {
      await classifier.dispose();
    }
  },
};

const clusters: Command = {
  summary: 'picture how SEC clustered an image\'s tokens (the paper\'s figure 4) as a PNG (SecViT, SEC-Swin, SEC-ViT)',
  usage: 'secvit clusters <image> --weights FILE -o out.png [--stage S] [--block B] [--head H] [--model NAME] [--device auto]',
  options: { ...MODEL_OPTIONS, output: { type: 'string', short: 'o' }, stage: { type: 'string' }, block: { type: 'string' }, head: { type: 'string' } },
  help: [
    ...MODEL_HELP,
    '--output, -o FILE   the picture to write: .png, .jpg or .webp (required)',
    '--stage S           one stage only (default: a panel for each of stages 0, 1, 2)',
    '--block B           block within the stage (default 0)',
    '--head H            attention head (default 0)',
  ],
  async run(values, positionals, io) {
    if (positionals.length !== 1) throw new UsageError(`clusters: expects one image, got ${positionals.length} (see secvit clusters --help)`);
    const { weights, options } = modelOptions(values, 'clusters');
    if (typeof values.output !== 'string') throw new UsageError('clusters: -o/--output FILE.png is required');
    // The format the extension names (PNG bytes in a .jpg would mislead every viewer).
    const ext = path.extname(values.output).toLowerCase();
    const format = ({ '.png': 'png', '.jpg': 'jpeg', '.jpeg': 'jpeg', '.webp': 'webp' } as const)[ext as '.png'];
    if (format === undefined) throw new UsageError(`clusters: -o must name a .png, .jpg or .webp file, got '${values.output}'`);
    const stage = intOption(values, 'stage', 'clusters', 0);
    const block = intOption(values, 'block', 'clusters', 0);
    const head = intOption(values, 'head', 'clusters', 0);
    const sharp = loadSharp('clusters');
    const loading = weightsBar(io);
    let model: VisionModel;
    try {
      model = loadModel(weights, { ...options, onProgress: loading.onProgress });
    } finally {
      loading.done();
    }
    if (model.randomWeights) io.err(`secvit clusters: warning: '${weights}' holds random (untrained) weights, so its clusters mean little`);
    try {
      let picture;
      try {
        picture = await clusterPicture(model, positionals[0], { stage, block, head });
      } catch (e) {
        if (e instanceof RangeError) throw new UsageError(e.message);
        throw e;
      }
      const { image } = picture;
      const raw = sharp(image.data as Uint8Array, { raw: { width: image.width, height: image.height, channels: 3 } } as Record<string, unknown>);
      await (format === 'png' ? raw.png() : format === 'jpeg' ? raw.jpeg({ quality: 95 }) : raw.webp({ lossless: true })).toFile(values.output);
      io.out(`${values.output}: ${picture.panels.map((p) => p.caption).join('; ')}`);
    } finally {
      model.dispose();
    }
  },
};

const convert: Command = {
  summary: 'convert a PyTorch .pth checkpoint to safetensors (config and provenance in the metadata)',
  usage: 'secvit convert <in.pth> <out.safetensors> [--key model_ema] [--model NAME] [--dtype T]',
  options: { key: { type: 'string' }, model: { type: 'string', short: 'm' }, config: { type: 'string' }, dtype: { type: 'string' } },
  help: [
    '--dtype T           float32, bfloat16 or float16 (default: the checkpoint\'s own: a float16 file stays float16; float64 becomes float32)',
    '--key KEY           the entry holding the weights (default: timm\'s order: state_dict_ema, model_ema, state_dict, model)',
    '--model, -m NAME    the model (a name or config JSON) when the checkpoint does not name one; default: inferred from its keys (SecViT, torchvision\'s Swin or ViT)',
    '--config NAME|JSON  the same as --model',
  ],
  async run(values, positionals, io) {
    if (positionals.length !== 2) throw new UsageError(`convert: expects <in.pth> <out.safetensors>, got ${positionals.length} argument(s) (see secvit convert --help)`);
    const [src, dst] = positionals;
    // The same file by another name (a symlink, a hard link, a path through a linked folder) is
    // the same device and inode. (The output is written to a temporary file and renamed anyway,
    // so even a link to the input would be replaced, not the input written through.)
    const same = (() => {
      if (path.resolve(src) === path.resolve(dst)) return true;
      try {
        const a = statSync(src), b = statSync(dst);
        return a.dev === b.dev && a.ino === b.ino;
      } catch {
        return false; // the output does not exist yet (or the input does not: reading says so)
      }
    })();
    if (same) throw new UsageError(`convert: the output ${dst} is the input ${src} (the same file)`);
    const key = values.key as string | undefined;
    const ck = readCheckpoint(src, { key });
    const chosenKey = ck.key;
    // The checkpoint's own floating dtype (the most common among its tensors) unless asked.
    let dtype = values.dtype === undefined ? undefined : choice(values, 'dtype', 'convert', DTYPES, 'float32');
    if (dtype === undefined) {
      const count = { F32: 0, F16: 0, BF16: 0 } as Record<string, number>;
      for (const t of ck.tensors.values()) if (t.dtype === 'F16' || t.dtype === 'BF16' || t.dtype === 'F32' || t.dtype === 'F64') count[t.dtype === 'F64' ? 'F32' : t.dtype] += t.numel;
      const top = Object.entries(count).sort((a, b) => b[1] - a[1])[0][0];
      dtype = ({ F32: 'float32', F16: 'float16', BF16: 'bfloat16' } as const)[top as 'F32'];
    }
    const loading = weightsBar(io);
    let model: VisionModel;
    try {
      model = modelFromCheckpointAny(ck, { config: modelChoice(values, 'convert'), dtype, onProgress: loading.onProgress });
    } finally {
      loading.done();
      ck.close();
    }
    try {
      const sha256 = createHash('sha256').update(readFileSync(src)).digest('hex');
      model.save(dst, { source: path.basename(src), source_sha256: sha256, ...(chosenKey ? { source_key: chosenKey } : {}), converted_by: `secvit ${version()}` });
      io.out(`${dst}: ${model.parameterCount.toLocaleString('en-US')} parameters, config ${JSON.stringify(model.referenceConfig())}${chosenKey ? `, from '${chosenKey}'` : ''}`);
    } finally {
      model.dispose();
    }
  },
};

const info: Command = {
  summary: 'version, backends (and why one is unavailable), CPU features, threads, models: what a bug report needs; or one model\'s family, config and size',
  usage: 'secvit info [--json] [--model NAME | --weights FILE]',
  options: { json: { type: 'boolean' }, model: { type: 'string', short: 'm' }, weights: { type: 'string', short: 'w' }, key: { type: 'string' } },
  help: [
    '--json              the same as one JSON object',
    '--model, -m NAME    one model (a name or config JSON): family, config, parameters, preprocessing (no weights allocated)',
    '--weights, -w FILE  the same for a checkpoint: its family and config as loading would infer them (no weights read)',
  ],
  async run(values, positionals, io) {
    if (positionals.length) throw new UsageError(`info: takes no arguments, got '${positionals[0]}'`);
    if (values.model !== undefined || values.weights !== undefined) {
      let m: VisionModel;
      try {
        if (typeof values.weights === 'string') {
          const ck = readCheckpoint(values.weights, { key: values.key as string | undefined });
          try {
            const r = checkpointConfig(ck, values.model as string | undefined);
            m = buildModel(r.config, 'cpu', 'float32', r.entry);
          } finally {
            ck.close();
          }
        } else {
          const r = resolveModelConfig(values.model as string);
          m = buildModel(r.config, 'cpu', 'float32', r.entry);
        }
      } catch (e) {
        if (e instanceof RangeError || e instanceof TypeError) throw new UsageError(`info: ${e.message}`);
        throw e;
      }
      const d = {
        family: m.family, class: m.className, parameters: m.parameterCount, config: m.referenceConfig(), preprocessing: m.preprocessing(),
      };
      if (values.json) io.out(JSON.stringify(d, null, 2));
      else {
        io.out(`${d.class} (${d.family}): ${d.parameters.toLocaleString('en-US')} parameters`);
        io.out(`config ${JSON.stringify(d.config)}`);
        const p = d.preprocessing;
        io.out(`preprocessing: resize ${p.resize} ${p.interpolation}, crop ${p.size}, mean [${p.mean.join(', ')}], std [${p.std.join(', ')}]`);
      }
      return;
    }
    const auto = selectDevice('auto');
    const report = {
      secvit: version(),
      node: process.version,
      napi: process.versions.napi,
      platform: `${os.platform()} ${os.arch()} (${os.release()})`,
      cpu: `${os.cpus()[0]?.model ?? 'unknown'} x ${os.availableParallelism?.() ?? os.cpus().length}`,
      addon: addonOrigin(),
      backends: backends(),
      auto,
      bundledModels: bundledModels().map((m) => ({ name: m.name, path: m.path, data: m.data, classes: m.classes, inputSize: m.inputSize, testTop1: m.testTop1, command: m.command })),
      models: listModels().map(({ name, family, attention, parameters }) => ({ name, family, attention, parameters })),
    };
    if (values.json) {
      io.out(JSON.stringify(report, null, 2));
      return;
    }
    io.out(`secvit ${report.secvit}, Node ${report.node} (N-API ${report.napi}), ${report.platform}`);
    io.out(`CPU: ${report.cpu}`);
    io.out(`addon: ${report.addon.kind === 'prebuilt' ? 'prebuilt' : report.addon.kind === 'source' ? 'built from source' : 'SECVIT_ADDON_PATH'} (${report.addon.file})`);
    for (const b of report.backends) io.out(`  ${b.name.padEnd(9)} ${b.available ? `available: ${b.description ?? ''}` : `unavailable: ${b.reason ?? ''}`}`);
    io.out(`device 'auto' picks: ${JSON.stringify(auto)}`);
    for (const m of report.bundledModels)
      io.out(`bundled model ${m.name}: ${m.data ?? '?'}, ${m.classes.length} classes${m.testTop1 !== null ? `, test top-1 ${(m.testTop1 * 100).toFixed(2)}%` : ''} (${m.path})`);
    io.out(`models: ${report.models.map((m) => `${m.name} (${(m.parameters / 1e6).toFixed(1)}M)`).join(', ')}`);
  },
};

function version(): string {
  return (JSON.parse(readFileSync(path.join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
}

function numOption(values: Record<string, unknown>, name: string, cmd: string, ok: (n: number) => boolean, expects: string): number | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (typeof v !== 'string' || v.trim() === '' || !Number.isFinite(n) || !ok(n)) throw new UsageError(`${cmd}: --${name} expects ${expects}, got '${String(v)}'`);
  return n;
}

// The recipe's switches: flag -> Recipe key, parser.
const RECIPE_FLAGS: [string, keyof Recipe, string][] = [
  ['weight-decay', 'weightDecay', 'X      AdamW weight decay (0.05)'],
  ['warmup-epochs', 'warmupEpochs', 'N     linear warmup epochs (5)'],
  ['warmup-lr', 'warmupLr', 'X         the warmup\'s first rate (1e-6)'],
  ['min-lr', 'minLr', 'X            the cosine schedule\'s floor (1e-5)'],
  ['smoothing', 'smoothing', 'X         label smoothing (0.1)'],
  ['drop-path', 'dropPath', 'X         stochastic depth rate (default: the config\'s)'],
  ['ema', 'ema', 'DECAY           EMA of the weights (0.99996); 0: none'],
  ['mixup', 'mixup', 'ALPHA         mixup Beta alpha (0.8); 0: off'],
  ['cutmix', 'cutmix', 'ALPHA        cutmix Beta alpha (1.0); 0: off'],
  ['mixup-prob', 'mixupProb', 'P        probability of mixing a batch (1.0)'],
  ['mixup-switch-prob', 'mixupSwitchProb', 'P  cutmix instead of mixup (0.5)'],
  ['flip', 'flip', 'P              horizontal flip probability (0.5)'],
  ['reprob', 'reprob', 'P            random erasing probability (0.25)'],
  ['clip-grad', 'clipGrad', 'NORM      gradient clipping (default: none)'],
];

const train: Command = {
  summary: 'train or fine-tune a model (SecViT, Swin, ViT, their SEC variants) on IDX files (MNIST, Fashion-MNIST) or an image folder',
  usage: 'secvit train --data DIR --out DIR [--epochs N] [--batch-size N] [--lr X] [--model NAME|JSON] [--seed N] [--limit N] [--resume FILE] [--finetune FILE] [--threads N] [--device cpu] [recipe switches]',
  options: {
    data: { type: 'string' }, out: { type: 'string' }, epochs: { type: 'string' }, 'batch-size': { type: 'string' }, lr: { type: 'string' },
    model: { type: 'string', short: 'm' }, config: { type: 'string' }, seed: { type: 'string' }, limit: { type: 'string' },
    resume: { type: 'string' }, finetune: { type: 'string' }, 'linear-probe': { type: 'boolean' }, threads: { type: 'string' }, device: { type: 'string' }, holdout: { type: 'string' },
    'eval-every': { type: 'string' }, 'input-size': { type: 'string' }, workers: { type: 'string' },
    'crop-scale': { type: 'string' }, 'rand-augment': { type: 'string' },
    ...Object.fromEntries(RECIPE_FLAGS.map(([f]) => [f, { type: 'string' as const }])),
  },
  help: [
    '--data DIR          IDX files (train-images-idx3-ubyte[.gz], ...) or an image folder (DIR/train/<class>/*, DIR/val/<class>/*)',
    '--out DIR           model.safetensors, checkpoint.safetensors, log.jsonl, curves.png (required)',
    '--epochs N          total epochs (a resumed run trains up to N) (10)',
    '--batch-size N      (128)',
    '--lr X              base rate for a batch of 512: the rate used is X * batch / 512 (5e-4, DeiT\'s)',
    '--model, -m NAME    secvit-fm (default), secvit-t/s/b/l, swin-t/s/b, vit-b-16/b-32/l-16, sec-swin-*, sec-vit-*, or a config as JSON (any family: {"family":"swin",...}); the class count follows the data',
    '--config NAME|JSON  the same as --model',
    '--seed N            weights, order, augmentation and drop path all follow it (0)',
    '--limit N           train on the first N training images only',
    '--holdout N         hold out the last N training images for validation (valTop1 in the log)',
    '--eval-every N      evaluate the test split every N epochs and after the last; 0: after the last only (1)',
    '--resume FILE       continue a run from its checkpoint.safetensors: its settings (seed, batch, recipe, config...) apply; ones given must match; --epochs may grow',
    '--finetune FILE     start from a checkpoint (.safetensors, the authors\' .pth); the head is new when the class count differs',
    '--linear-probe      with --finetune: train the head only',
    '--threads N         CPU threads (default: all cores)',
    '--device D          cpu (default), cuda, cuda-emu, auto',
    '--workers N         data worker threads (1)',
    '--input-size N      the model\'s input side (32 for 28x28 IDX data, else 224)',
    '--crop-scale A,B    random resized crop area range (0.08,1); none: no crop',
    '--rand-augment S    RandAugment, timm\'s string (rand-m9-mstd0.5-inc1); none: off',
    ...RECIPE_FLAGS.map(([f, , h]) => `--${f} ${h}`),
  ],
  async run(values, positionals, io) {
    const cmd = 'train';
    if (positionals.length) throw new UsageError(`train: takes no positional arguments, got '${positionals[0]}'`);
    if (typeof values.data !== 'string') throw new UsageError('train: --data DIR is required');
    if (typeof values.out !== 'string') throw new UsageError('train: --out DIR is required');
    const recipe: Partial<Recipe> = {};
    for (const [flag, key] of RECIPE_FLAGS) {
      const v = numOption(values, flag, cmd, (n) => n >= 0, 'a number >= 0');
      if (v !== undefined) (recipe as Record<string, number>)[key] = v;
    }
    if (recipe.clipGrad === 0) recipe.clipGrad = null;
    const lr = numOption(values, 'lr', cmd, (n) => n > 0, 'a positive number');
    if (lr !== undefined) recipe.lr = lr;
    if (typeof values['crop-scale'] === 'string') {
      const v = values['crop-scale'];
      if (v === 'none') recipe.cropScale = null;
      else {
        const parts = v.split(',').map(Number);
        if (parts.length !== 2 || !parts.every((x) => x > 0 && x <= 1) || parts[0] > parts[1]) throw new UsageError(`train: --crop-scale expects A,B with 0 < A <= B <= 1, or none, got '${v}'`);
        recipe.cropScale = [parts[0], parts[1]];
      }
    }
    if (typeof values['rand-augment'] === 'string') {
      const v = values['rand-augment'];
      if (v === 'none') recipe.randAugment = null;
      else {
        try {
          parseRandAugment(v);
        } catch (e) {
          throw new UsageError(`train: --rand-augment: ${(e as Error).message}`);
        }
        recipe.randAugment = v;
      }
    }
    let stop = false;
    const onSigint = () => {
      if (stop) process.exit(130);
      stop = true;
      io.err('secvit train: interrupted; saving a checkpoint at the next step (Ctrl-C again to quit without it)');
    };
    process.on('SIGINT', onSigint);
    const started = performance.now();
    let live = false;
    try {
      const result = await fit({
        ...recipe, data: values.data, out: values.out,
        epochs: intOption(values, 'epochs', cmd, 1), batchSize: intOption(values, 'batch-size', cmd, 1), config: modelChoice(values, cmd),
        seed: intOption(values, 'seed', cmd, 0), limit: intOption(values, 'limit', cmd, 1), holdout: intOption(values, 'holdout', cmd, 0),
        evalEvery: intOption(values, 'eval-every', cmd, 0), inputSize: intOption(values, 'input-size', cmd, 32),
        resume: values.resume as string | undefined, finetune: values.finetune as string | undefined, linearProbe: values['linear-probe'] === true,
        threads: intOption(values, 'threads', cmd, 1), workers: intOption(values, 'workers', cmd, 0),
        device: choice(values, 'device', cmd, DEVICES, 'cpu'),
        command: ['secvit', 'train', ...process.argv.slice(3)].join(' '),
        shouldStop: () => stop,
        log: (line, isLive) => {
          if (isLive) {
            if (!io.progress) return;
            io.write(`\r${line.slice(0, Math.max((process.stderr.columns || 80) - 1, 20)).padEnd(Math.max((process.stderr.columns || 80) - 1, 20))}`);
            live = true;
            return;
          }
          if (live) io.write('\r' + ' '.repeat(Math.max((process.stderr.columns || 80) - 1, 20)) + '\r');
          live = false;
          io.err(line);
        },
      });
      if (live) io.write('\n');
      const minutes = ((performance.now() - started) / 60000).toFixed(1);
      if (result.stopped) {
        io.err(`secvit train: stopped; resume with --resume ${path.join(values.out, 'checkpoint.safetensors')}`);
        return 130;
      }
      const t = result.test;
      io.out(`${path.join(values.out, 'model.safetensors')}: ${result.log.length} epoch${result.log.length === 1 ? '' : 's'} in ${minutes} min` +
        (t ? `, test top-1 ${(t.top1 * 100).toFixed(2)}% top-5 ${(t.top5 * 100).toFixed(2)}% (${t.count} images)` : ''));
    } catch (e) {
      if (e instanceof RangeError || e instanceof TypeError) throw new UsageError(`train: ${e.message}`);
      throw e;
    } finally {
      process.off('SIGINT', onSigint);
    }
  },
};

const evalCommand: Command = {
  summary: 'evaluate a classifier on a dataset: top-1, top-5, loss (the bundled model without --weights)',
  usage: 'secvit eval --data DIR [--weights FILE] [--split test] [--json] [--confusion FILE.png] [--batch-size 256] [--device auto] [--dtype float32]',
  options: { ...MODEL_OPTIONS, data: { type: 'string' }, split: { type: 'string' }, json: { type: 'boolean' }, confusion: { type: 'string' }, 'batch-size': { type: 'string' }, threads: { type: 'string' }, dtype: { type: 'string' } },
  help: [
    '--data DIR          IDX files or an image folder (DIR/val/<class>/*)',
    '--weights, -w FILE  a checkpoint (default: the bundled secvit-fm model)',
    '--split S           test (default) or train',
    '--json              one object on stdout: { top1, top5, loss, count } (fractions)',
    '--confusion FILE    the confusion matrix as a PNG',
    '--batch-size N      (256)',
    '--device D          auto (default), cpu, cuda, cuda-emu',
    ...DTYPE_HELP,
    '--threads N         CPU threads',
  ],
  async run(values, positionals, io) {
    const cmd = 'eval';
    if (positionals.length) throw new UsageError(`eval: takes no positional arguments, got '${positionals[0]}'`);
    if (typeof values.data !== 'string') throw new UsageError('eval: --data DIR is required');
    const split = choice(values, 'split', cmd, ['test', 'train'] as const, 'test');
    const threads = intOption(values, 'threads', cmd, 1);
    if (threads !== undefined) setNumThreads(threads);
    const weights = typeof values.weights === 'string' ? values.weights : bundledModelPath();
    const dtype = choice(values, 'dtype', cmd, DTYPES, 'float32');
    const model = loadModel(weights, { device: choice(values, 'device', cmd, DEVICES, 'auto'), dtype, config: modelChoice(values, cmd), key: values.key as string | undefined });
    try {
      const cfg = model.preprocessing();
      const data = await loadImageData(values.data, { size: cfg.size, resize: cfg.resize, interpolation: cfg.interpolation, split });
      const set = split === 'test' ? data.test ?? data.train : data.train;
      const size = cfg.size;
      const prepared = resizeSet(set, size, cfg.interpolation);
      const r = await evaluate(model, prepared, { size, outChannels: 3, mean: [...cfg.mean], std: [...cfg.std], train: false, augment: { cropScale: null, cropRatio: [1, 1], flip: 0, randAugment: null, reprob: 0 } },
        { batchSize: intOption(values, 'batch-size', cmd, 1, 256) });
      if (typeof values.confusion === 'string') writeFileSync(values.confusion, confusionPicture(r.confusion, model.classNames ?? set.classes));
      if (values.json) io.out(JSON.stringify({ top1: r.top1, top5: r.top5, loss: r.loss, count: r.count }));
      else io.out(`${weights} on ${values.data} (${split}): top-1 ${(r.top1 * 100).toFixed(2)}%, top-5 ${(r.top5 * 100).toFixed(2)}%, loss ${r.loss.toFixed(4)}, ${r.count} images`);
    } finally {
      model.dispose();
    }
  },
};

export const COMMANDS: Record<string, Command> = { classify, clusters, convert, info, train, eval: evalCommand };

/** Commands implemented outside this file (the benchmark suite lives in bench/). */
export const EXTERNAL: Record<string, string> = {
  bench: 'run the benchmarks (secvit bench --help)',
};

function topHelp(): string {
  const lines = ['usage: secvit <command> [options]', '', 'commands:'];
  for (const [name, c] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(9)} ${c.summary}`);
  for (const [name, s] of Object.entries(EXTERNAL)) lines.push(`  ${name.padEnd(9)} ${s}`);
  lines.push('', 'secvit <command> --help shows its options. --verbose prints stack traces; --no-progress silences progress.');
  return lines.join('\n');
}

function commandHelp(name: string, c: Command): string {
  return [`usage: ${c.usage}`, '', c.summary, '', 'options:', ...c.help.map((h) => `  ${h}`), '  --no-progress       no progress bars on stderr (shown only when it is a terminal)', '  --verbose           stack traces on errors', '  --help, -h          this help'].join('\n');
}

/** Runs the CLI; returns the exit code (0 ok, 1 failure, 2 usage). */
export async function main(argv: string[], io: Partial<Io> = {}): Promise<number> {
  const out = io.out ?? ((s: string) => void process.stdout.write(s + '\n'));
  const err = io.err ?? ((s: string) => void process.stderr.write(s + '\n'));
  const write = io.write ?? ((s: string) => void process.stderr.write(s));
  const [name, ...rest] = argv;
  const verbose = argv.includes('--verbose');
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    out(topHelp());
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-v') {
    out(version());
    return 0;
  }
  const cmd = COMMANDS[name];
  if (!cmd) {
    err(`secvit: unknown command '${name}' (commands: ${[...Object.keys(COMMANDS), ...Object.keys(EXTERNAL)].join(', ')})`);
    return 2;
  }
  try {
    const { values, positionals } = parse(name, cmd, rest);
    if (values.help) {
      out(commandHelp(name, cmd));
      return 0;
    }
    const progress = !values['no-progress'] && (io.progress ?? Boolean(process.stderr.isTTY));
    return (await cmd.run(values, positionals, { out, err, write, progress })) ?? 0;
  } catch (e) {
    // One line, as promised: messages of parseArgs, sharp and the loaders may span several.
    const oneLine = (m: string) => m.replace(/\s*\n\s*/g, ' ').trim();
    if (e instanceof UsageError) {
      err(`secvit ${oneLine(e.message)}`);
      return 2;
    }
    const error = e as Error;
    err(`secvit ${name}: ${oneLine(error?.message ?? String(e))}`);
    if (verbose && error?.stack) err(error.stack);
    return 1;
  }
}
