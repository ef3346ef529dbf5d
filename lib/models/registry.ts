// One registry for every model family (timm's register_model / create_model): names to
// configs, configs to modules, checkpoints to models (the family read off the checkpoint's
// metadata or keys).
//
//   createModel('swin-t', { numClasses: 10 })        random weights, seeded
//   createModel('vit-l-16', { empty: true })          the module tree only: parameterCount, no memory
//   loadModel('swin_t-704ceda3.pth')                  torchvision's file; family and config inferred
//   listModels()                                      names, families, parameter counts
//
// Configs: a registered name, or an object with `family` ('secvit' when absent) and the family's
// constructor arguments, camelCase or as the reference names them (torchvision's snake_case for
// Swin and ViT, the authors' for SecViT).
import { boundedInt, brief, MODEL_LIMITS, sameValue } from './limits.js';
import { SecViT } from './secvit.js';
import { SwinTransformer, SWIN_PRETRAINED, swinWindowCounts, type SwinConfig } from './swin.js';
import { VisionTransformer, VIT_PRETRAINED, type VitConfig } from './vit.js';
import { canonicalName, CONFIG_NAMES, inferConfig, resolveConfig, shapeReader, type SecViTConfig } from './config.js';
import { checkOptions, CREATE_OPTION_KEYS, LOAD_OPTION_KEYS, type ModelFamily, type ModelOptions, type PretrainedCfg, type VisionModel } from './base.js';
import { familyOfKeys, fillFromCheckpoint, readCheckpoint, type Checkpoint, type LoadOptions } from './load.js';

export { familyOfKeys };

export type ModelConfig = (SecViTConfig & { family?: 'secvit' }) | SwinConfig | VitConfig;

interface Entry {
  family: ModelFamily;
  description: string;
  config: () => ModelConfig;
  pretrained?: PretrainedCfg;
}

const REGISTRY = new Map<string, Entry>();

function swin(embedDim: number, depths: number[], numHeads: number[], sd: number, attention: 'window' | 'sec'): SwinConfig {
  const base = { patchSize: [4, 4] as [number, number], depths, windowSize: [7, 7] as [number, number], imageSize: 224 };
  return {
    family: 'swin', ...base, embedDim, numHeads, mlpRatio: 4, numClasses: 1000, stochasticDepthProb: sd, attention,
    numClusters: swinWindowCounts(base),
  };
}

function vit(patchSize: number, numLayers: number, numHeads: number, hiddenDim: number, mlpDim: number, attention: 'global' | 'sec'): VitConfig {
  return { family: 'vit', imageSize: 224, patchSize, numLayers, numHeads, hiddenDim, mlpDim, numClasses: 1000, attention, numClusters: 4 };
}

for (const n of ['secvit-t', 'secvit-s', 'secvit-b', 'secvit-l', 'secvit-fm'])
  REGISTRY.set(n, {
    family: 'secvit',
    description: n === 'secvit-fm' ? 'SecViT for 32x32 inputs (the bundled Fashion-MNIST model\'s config)' : `SecViT-${n.slice(7).toUpperCase()} (the paper's)`,
    config: () => resolveConfig(n),
  });
const SWINS: [string, number, number[], number[], number][] = [
  ['t', 96, [2, 2, 6, 2], [3, 6, 12, 24], 0.2],
  ['s', 96, [2, 2, 18, 2], [3, 6, 12, 24], 0.3],
  ['b', 128, [2, 2, 18, 2], [4, 8, 16, 32], 0.5],
];
for (const [size, e, d, h, sd] of SWINS) {
  REGISTRY.set(`swin-${size}`, { family: 'swin', description: `torchvision's swin_${size}`, config: () => swin(e, d, h, sd, 'window'), pretrained: SWIN_PRETRAINED[`swin-${size}`] });
  REGISTRY.set(`sec-swin-${size}`, {
    family: 'swin', description: `SEC-Swin-${size.toUpperCase()}: swin_${size} with SEC attention (64, 16, 4, 1 clusters: each stage's window count at 224)`,
    config: () => swin(e, d, h, sd, 'sec'), pretrained: SWIN_PRETRAINED[`swin-${size}`],
  });
}
const VITS: [string, number, number, number, number, number][] = [
  ['b-16', 16, 12, 12, 768, 3072],
  ['b-32', 32, 12, 12, 768, 3072],
  ['l-16', 16, 24, 16, 1024, 4096],
];
for (const [size, p, l, h, e, m] of VITS) {
  REGISTRY.set(`vit-${size}`, { family: 'vit', description: `torchvision's vit_${size.replace('-', '_')}`, config: () => vit(p, l, h, e, m, 'global'), pretrained: VIT_PRETRAINED[`vit-${size}`] });
  REGISTRY.set(`sec-vit-${size}`, {
    family: 'vit', description: `SEC-ViT-${size.toUpperCase()}: vit_${size.replace('-', '_')} with SEC attention, 4 clusters over the ${(224 / p) ** 2 + 1} tokens`,
    config: () => vit(p, l, h, e, m, 'sec'), pretrained: VIT_PRETRAINED[`vit-${size}`],
  });
}

/** Every registered name. */
export function modelNames(): string[] {
  return [...REGISTRY.keys()];
}

export interface ModelInfo {
  name: string;
  family: ModelFamily;
  attention: string;
  parameters: number;
  description: string;
}

/** The registered models with their families and parameter counts (built empty: no weights allocated). */
export function listModels(): ModelInfo[] {
  return [...REGISTRY].map(([name, e]) => {
    const m = createModel(name, { empty: true });
    const c = (m as unknown as { config: { attention?: string } }).config;
    return { name, family: e.family, attention: c.attention ?? 'sec', parameters: m.parameterCount, description: e.description };
  });
}

// ---- configs -----------------------------------------------------------------------------------

type Raw = Record<string, unknown>;

function pick(src: Raw, camel: string, snake: string, where: string): unknown {
  const a = Object.hasOwn(src, camel) ? src[camel] : undefined;
  const b = Object.hasOwn(src, snake) ? src[snake] : undefined;
  if (a !== undefined && b !== undefined && camel !== snake && !sameValue(a, b))
    throw new RangeError(`${where}: both ${camel} and ${snake} are given, with different values`);
  return a ?? b;
}

function int(v: unknown, name: string, where: string, min = 1, max = Number.MAX_SAFE_INTEGER): number {
  return boundedInt(v, name, where, min, max);
}

function ints(v: unknown, name: string, where: string, len?: number, max?: number, maxLen: number = MODEL_LIMITS.blocks): number[] {
  if (!Array.isArray(v) || v.length === 0 || (len !== undefined && v.length !== len) || v.length > maxLen)
    throw new TypeError(`${where}: ${name} must be an array of ${len ?? `1 to ${maxLen}`} integers, got ${brief(v)}`);
  return v.map((x, i) => int(x, `${name}[${i}]`, where, 1, max));
}

function pair(v: unknown, name: string, where: string, max: number): [number, number] {
  if (typeof v === 'number') return [int(v, name, where, 1, max), v];
  const a = ints(v, name, where, 2, max);
  return [a[0], a[1]];
}

function checkKeys(src: Raw, keys: [string, string][], where: string): void {
  const known = new Set(['family', ...keys.flat()]);
  const unknown = Object.keys(src).filter((k) => !known.has(k));
  if (unknown.length) throw new RangeError(`${where}: unknown keys ${unknown.join(', ')}; expected ${keys.map(([c, s]) => c === s ? c : `${c} (${s})`).join(', ')}`);
}

const SWIN_KEYS: [string, string][] = [
  ['patchSize', 'patch_size'], ['embedDim', 'embed_dim'], ['depths', 'depths'], ['numHeads', 'num_heads'], ['windowSize', 'window_size'],
  ['mlpRatio', 'mlp_ratio'], ['numClasses', 'num_classes'], ['stochasticDepthProb', 'stochastic_depth_prob'], ['attention', 'attention'],
  ['numClusters', 'num_clusters'], ['imageSize', 'image_size'],
];

export function resolveSwinConfig(src: Raw): SwinConfig {
  const W = 'Swin config';
  checkKeys(src, SWIN_KEYS, W);
  const g = (c: string, s: string) => pick(src, c, s, W);
  for (const [c, s] of SWIN_KEYS.slice(0, 5)) if (g(c, s) === undefined) throw new TypeError(`${W}: ${c} (${s}) is required`);
  const depths = ints(g('depths', 'depths'), 'depths', W, undefined, MODEL_LIMITS.blocksPerStage, MODEL_LIMITS.stages);
  if (depths.reduce((a, b) => a + b, 0) > MODEL_LIMITS.blocks) throw new RangeError(`${W}: depths [${depths.join(', ')}] add up to more than ${MODEL_LIMITS.blocks} blocks`);
  const numHeads = ints(g('numHeads', 'num_heads'), 'numHeads', W, depths.length, MODEL_LIMITS.heads);
  const embedDim = int(g('embedDim', 'embed_dim'), 'embedDim', W, 1, MODEL_LIMITS.width);
  depths.forEach((_, i) => {
    const dim = embedDim * 2 ** i;
    if (dim > MODEL_LIMITS.width) throw new RangeError(`${W}: stage ${i}'s width ${dim} is more than ${MODEL_LIMITS.width}`);
    if (dim % numHeads[i] !== 0) throw new RangeError(`${W}: stage ${i}'s width ${dim} is not divisible by numHeads[${i}] = ${numHeads[i]}`);
  });
  const attention = g('attention', 'attention') ?? 'window';
  if (attention !== 'window' && attention !== 'sec' && attention !== 'global')
    throw new TypeError(`${W}: attention must be 'window', 'sec' or 'global', got ${brief(attention)}`);
  const mlpRatio = g('mlpRatio', 'mlp_ratio') ?? 4;
  if (typeof mlpRatio !== 'number' || !(mlpRatio > 0 && mlpRatio <= MODEL_LIMITS.mlpRatio)) throw new TypeError(`${W}: mlpRatio must be a number in (0, ${MODEL_LIMITS.mlpRatio}], got ${brief(mlpRatio)}`);
  const sd = g('stochasticDepthProb', 'stochastic_depth_prob') ?? 0.1;
  if (typeof sd !== 'number' || !(sd >= 0 && sd < 1)) throw new RangeError(`${W}: stochasticDepthProb must be in [0, 1), got ${brief(sd)}`);
  const base = {
    patchSize: pair(g('patchSize', 'patch_size'), 'patchSize', W, MODEL_LIMITS.imageSize), depths,
    windowSize: pair(g('windowSize', 'window_size'), 'windowSize', W, MODEL_LIMITS.imageSize),
    imageSize: int(g('imageSize', 'image_size') ?? 224, 'imageSize', W, 1, MODEL_LIMITS.imageSize),
  };
  const rawClusters = g('numClusters', 'num_clusters');
  const numClusters = rawClusters === undefined ? swinWindowCounts(base) : ints(rawClusters, 'numClusters', W, depths.length);
  return {
    family: 'swin', ...base, embedDim, numHeads, mlpRatio, numClasses: int(g('numClasses', 'num_classes') ?? 1000, 'numClasses', W, 1, MODEL_LIMITS.classes),
    stochasticDepthProb: sd, attention, numClusters,
  };
}

const VIT_KEYS: [string, string][] = [
  ['imageSize', 'image_size'], ['patchSize', 'patch_size'], ['numLayers', 'num_layers'], ['numHeads', 'num_heads'], ['hiddenDim', 'hidden_dim'],
  ['mlpDim', 'mlp_dim'], ['numClasses', 'num_classes'], ['attention', 'attention'], ['numClusters', 'num_clusters'],
];

export function resolveVitConfig(src: Raw): VitConfig {
  const W = 'ViT config';
  checkKeys(src, VIT_KEYS, W);
  const g = (c: string, s: string) => pick(src, c, s, W);
  for (const [c, s] of VIT_KEYS.slice(0, 6)) if (g(c, s) === undefined) throw new TypeError(`${W}: ${c} (${s}) is required`);
  const hiddenDim = int(g('hiddenDim', 'hidden_dim'), 'hiddenDim', W, 1, MODEL_LIMITS.width);
  const numHeads = int(g('numHeads', 'num_heads'), 'numHeads', W, 1, MODEL_LIMITS.heads);
  if (hiddenDim % numHeads !== 0) throw new RangeError(`${W}: hiddenDim ${hiddenDim} is not divisible by numHeads ${numHeads}`);
  const imageSize = int(g('imageSize', 'image_size'), 'imageSize', W, 1, MODEL_LIMITS.imageSize);
  const patchSize = int(g('patchSize', 'patch_size'), 'patchSize', W, 1, imageSize);
  if (imageSize % patchSize !== 0) throw new RangeError(`${W}: imageSize ${imageSize} must be a multiple of patchSize ${patchSize}`);
  const attention = g('attention', 'attention') ?? 'global';
  if (attention !== 'global' && attention !== 'sec') throw new TypeError(`${W}: attention must be 'global' or 'sec', got ${brief(attention)}`);
  const tokens = (imageSize / patchSize) ** 2 + 1;
  const numClusters = int(g('numClusters', 'num_clusters') ?? 4, 'numClusters', W);
  if (numClusters > tokens) throw new RangeError(`${W}: numClusters ${numClusters} is more than the ${tokens} tokens`);
  return {
    family: 'vit', imageSize, patchSize, numLayers: int(g('numLayers', 'num_layers'), 'numLayers', W, 1, MODEL_LIMITS.blocksPerStage), numHeads, hiddenDim,
    mlpDim: int(g('mlpDim', 'mlp_dim'), 'mlpDim', W, 1, MODEL_LIMITS.width),
    numClasses: int(g('numClasses', 'num_classes') ?? 1000, 'numClasses', W, 1, MODEL_LIMITS.classes),
    attention, numClusters,
  };
}

export type ModelConfigInput = string | Raw | ModelConfig;

/** A name, a JSON string or a config object (any family) -> a resolved config and its registry entry (if named). */
export function resolveModelConfig(input: ModelConfigInput): { config: ModelConfig; entry?: Entry; name?: string } {
  if (typeof input === 'string') {
    const key = input.toLowerCase().replace(/_/g, '-');
    const e = REGISTRY.get(key) ?? REGISTRY.get(canonicalName(input) ?? '');
    if (e) return { config: e.config(), entry: e, name: REGISTRY.get(key) ? key : canonicalName(input) };
    if (input.trimStart().startsWith('{')) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(input);
      } catch (err) {
        throw new TypeError(`model config: not valid JSON (${(err as Error).message})`);
      }
      return resolveModelConfig(parsed as Raw);
    }
    throw new RangeError(`createModel: unknown model '${input}'; known: ${[...REGISTRY.keys(), ...CONFIG_NAMES.filter((n) => !REGISTRY.has(n))].join(', ')}`);
  }
  if (typeof input !== 'object' || input === null || Array.isArray(input))
    throw new TypeError(`createModel: expected a model name or config object, got ${input === null ? 'null' : Array.isArray(input) ? 'an array' : typeof input}`);
  const src = input as Raw;
  const family = src.family ?? 'secvit';
  if (family === 'swin') return { config: resolveSwinConfig(src) };
  if (family === 'vit') return { config: resolveVitConfig(src) };
  if (family === 'secvit') {
    const { family: _f, ...rest } = src;
    return { config: resolveConfig(rest) };
  }
  throw new RangeError(`createModel: unknown family ${brief(family)}; expected 'secvit', 'swin' or 'vit'`);
}

export interface CreateModelOptions extends ModelOptions {
  /** Replaces the config's class count (a new head). */
  numClasses?: number;
  /** Build the module tree without allocating any weight (parameterCount, names, shapes). */
  empty?: boolean;
}

/** The family of a resolved config (SecViT's carry none). */
export function familyOf(c: ModelConfig): ModelFamily {
  return (c as { family?: ModelFamily }).family ?? 'secvit';
}

/** @internal A model of a resolved config, slots empty. */
export function buildModel(config: ModelConfig, device: VisionModel['device'], dtype: VisionModel['dtype'], entry?: Entry): VisionModel {
  const f = familyOf(config);
  if (f === 'swin') {
    const m = new SwinTransformer(config as SwinConfig, device, dtype);
    if (entry?.pretrained) m.pretrainedCfgOverride = { ...entry.pretrained, numClasses: m.numClasses };
    return m;
  }
  if (f === 'vit') {
    const m = new VisionTransformer(config as VitConfig, device, dtype);
    if (entry?.pretrained) m.pretrainedCfgOverride = { ...entry.pretrained, numClasses: m.numClasses };
    return m;
  }
  return new SecViT(config as SecViTConfig, device, dtype);
}

/** A model by name or config: random weights from `seed`, or none with `empty`. */
export function createModel(model: ModelConfigInput, options: CreateModelOptions = {}): VisionModel {
  const { device, dtype, seed } = checkOptions('createModel', options, CREATE_OPTION_KEYS);
  const r = resolveModelConfig(model);
  let config = r.config;
  if (options.numClasses !== undefined) config = { ...config, numClasses: int(options.numClasses, 'numClasses', 'createModel') };
  if (options.empty !== undefined && typeof options.empty !== 'boolean') throw new TypeError(`createModel: empty must be a boolean, got ${typeof options.empty}`);
  const m = buildModel(config, device, dtype, r.entry);
  if (m.parameterCount > MODEL_LIMITS.parameters) {
    m.dispose();
    throw new RangeError(`createModel: the config implies ${m.parameterCount.toLocaleString('en-US')} parameters, more than the limit of ${MODEL_LIMITS.parameters.toLocaleString('en-US')}`);
  }
  if (!options.empty) m.initializeWeights(seed);
  return m;
}

// ---- checkpoints -------------------------------------------------------------------------------

/** A Swin config read off torchvision's state dict shapes (window attention). */
function inferSwin(shapes: Map<string, readonly number[]>): SwinConfig {
  const need = shapeReader(shapes, 'loadModel: cannot infer the Swin config');
  const conv = need('features.0.0.weight');
  const embedDim = conv[0];
  const depths: number[] = [], numHeads: number[] = [];
  let window = 0;
  for (let i = 0; shapes.has(`features.${2 * i + 1}.0.norm1.weight`); i++) {
    let d = 0;
    while (shapes.has(`features.${2 * i + 1}.${d}.norm1.weight`)) d++;
    depths.push(d);
    const table = need(`features.${2 * i + 1}.0.attn.relative_position_bias_table`);
    numHeads.push(table[1]);
    window = (Math.round(Math.sqrt(table[0])) + 1) / 2;
  }
  const mlp = need('features.1.0.mlp.0.weight')[0] / embedDim;
  return resolveSwinConfig({ patchSize: [conv[2], conv[3]], embedDim, depths, numHeads, windowSize: [window, window], mlpRatio: mlp, numClasses: need('head.weight')[0] });
}

// torchvision's ViTs by width: the head count is not in the weights.
const VIT_HEADS: Record<number, number> = { 768: 12, 1024: 16, 1280: 16 };

function inferVit(shapes: Map<string, readonly number[]>): VitConfig {
  const need = shapeReader(shapes, 'loadModel: cannot infer the ViT config');
  const conv = need('conv_proj.weight');
  const hiddenDim = conv[0], patchSize = conv[2];
  const seq = need('encoder.pos_embedding')[1];
  const grid = Math.round(Math.sqrt(seq - 1));
  let numLayers = 0;
  while (shapes.has(`encoder.layers.encoder_layer_${numLayers}.ln_1.weight`)) numLayers++;
  const numHeads = VIT_HEADS[hiddenDim];
  if (numHeads === undefined)
    throw new RangeError(`loadModel: a ViT of width ${hiddenDim} is not one of torchvision's; its head count is not in the weights (pass { config } with numHeads)`);
  return resolveVitConfig({
    imageSize: grid * patchSize, patchSize, numLayers, numHeads, hiddenDim,
    mlpDim: need('encoder.layers.encoder_layer_0.mlp.0.weight')[0], numClasses: need('heads.head.weight')[0],
  });
}

/** The config of a checkpoint: `given`, else its metadata, else read off its keys and shapes. */
export function checkpointConfig(ck: Checkpoint, given?: ModelConfigInput): { config: ModelConfig; entry?: Entry } {
  if (given !== undefined) return resolveModelConfig(given);
  const meta = ck.metadata.get('config');
  const model = ck.metadata.get('model');
  const entryOf = (name: string | undefined) => (name ? REGISTRY.get(name) : undefined);
  if (meta !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(meta);
    } catch (err) {
      throw new RangeError(`loadModel: the checkpoint's config metadata is not valid JSON (${(err as Error).message})`);
    }
    return { config: resolveModelConfig(parsed as Raw).config, entry: entryOf(model) };
  }
  if (model !== undefined && (REGISTRY.has(model) || canonicalName(model))) return resolveModelConfig(model);
  const shapes = new Map([...ck.tensors].map(([k, t]) => [k, t.shape]));
  const family = familyOfKeys(shapes.keys());
  if (family === 'swin') return { config: inferSwin(shapes) };
  if (family === 'vit') return { config: inferVit(shapes) };
  return { config: inferConfig(shapes) };
}

/** A new model with the weights of a checkpoint already read (`ck` stays open). */
export function modelFromCheckpointAny(ck: Checkpoint, options: Omit<LoadOptions, 'key' | 'config'> & { config?: ModelConfigInput } = {}): VisionModel {
  const { device, dtype } = checkOptions('loadModel', options);
  const { config, entry } = checkpointConfig(ck, options.config);
  return fillFromCheckpoint(buildModel(config, device, dtype, entry), ck, options);
}


export interface LoadModelOptions extends Omit<LoadOptions, 'config'> {
  /** The model name or config (default: the checkpoint's metadata, else inferred from its keys and shapes). */
  config?: ModelConfigInput;
}

/**
 * Loads a checkpoint (a path or bytes: safetensors, or a PyTorch `.pth` zip through the safe
 * unpickler) into a new model of its family: SecViT, Swin (torchvision's keys) or ViT
 * (torchvision's keys).
 */
export function loadModel(weights: string | Uint8Array, options: LoadModelOptions = {}): VisionModel {
  checkOptions('loadModel', options, LOAD_OPTION_KEYS);
  const ck = readCheckpoint(weights, { key: options.key });
  try {
    return modelFromCheckpointAny(ck, options);
  } finally {
    ck.close();
  }
}
