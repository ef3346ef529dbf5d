// SecViT configurations: the published ones (SPEC 3.5) by our names and the authors' registry
// names, the authors' own config keys (snake_case, as in checkpoints' `config` metadata), and
// camelCase equivalents. Everything resolves to one normalised, validated SecViTConfig.
import { boundedInt, brief, MODEL_LIMITS, sameValue } from './limits.js';

/** A resolved SecViT configuration (four stages). */
export interface SecViTConfig {
  embedDims: number[];
  depths: number[];
  numHeads: number[];
  /** Cluster count of every block, per stage (C <= 1: one cluster, global attention). */
  numClusters: number[][];
  mlpRatios: number[];
  /** Whether each stage's blocks have layer scale (gamma_1, gamma_2). */
  layerScales: boolean[];
  /** Width of the head's 1x1 projection (P). */
  projection: number;
  numClasses: number;
  /** Initial layer-scale value for random initialisation (the reference uses 1e-6). */
  layerScaleInit: number;
  /**
   * Stochastic depth in train mode: block j of all n blocks drops its residual branches per
   * sample with probability dropPathRate * j / (n - 1) (the reference's linear rule). Published:
   * 0.1 / 0.15 / 0.4 / 0.5 (T, S, B, L); otherwise 0.1, the reference constructor's default.
   */
  dropPathRate: number;
  /**
   * The attention every block runs (default 'sec', the model's own). 'window': windows that cut
   * each stage's grid into as many equal rectangles as the block has clusters (ry x rx tiles,
   * ry the largest factor of C not above sqrt(C), rows first), so that group sizes match SEC's;
   * 'global': one group. For the paper's ablation (SEC against window and global attention).
   */
  attention?: 'sec' | 'window' | 'global';
}

/** The authors' config keys, as found in a checkpoint's `config` metadata. */
export interface ReferenceConfig {
  embed_dims: number[];
  depths: number[];
  num_heads: number[];
  num_clusterss: number[][];
  mlp_ratios?: number[];
  layerscales?: boolean[];
  projection?: number;
  num_classes?: number;
  layer_init_values?: number;
  drop_path_rate?: number;
  /** secvit's: 'window' or 'global' (absent: SEC, the reference's). */
  attention?: 'sec' | 'window' | 'global';
}

export type ConfigName =
  | 'secvit-t' | 'secvit-s' | 'secvit-b' | 'secvit-l' | 'secvit-fm'
  | 'KClusterFormerSimpleNew_T' | 'KClusterFormerSimpleNew_S' | 'KClusterFormerSimpleNew_M' | 'KClusterFormerSimpleNew_L'
  | 'SecViT_T' | 'SecViT_S' | 'SecViT_M' | 'SecViT_L';

export type ConfigInput = ConfigName | Partial<SecViTConfig> | ReferenceConfig | Record<string, unknown>;

/** The published cluster counts per stage: 32, 8, 2, then global attention. */
export const PUBLISHED_CLUSTERS: readonly number[] = [32, 8, 2, -1];

function published(embedDims: number[], depths: number[], numHeads: number[], layerScales: boolean[], dropPathRate: number): SecViTConfig {
  return {
    embedDims, depths, numHeads, layerScales,
    numClusters: depths.map((d, i) => new Array<number>(d).fill(PUBLISHED_CLUSTERS[i])),
    mlpRatios: [3, 3, 3, 3], projection: 1024, numClasses: 1000, layerScaleInit: 1e-6, dropPathRate,
  };
}

const PUBLISHED: Record<string, () => SecViTConfig> = {
  'secvit-t': () => published([64, 128, 256, 512], [2, 2, 9, 2], [2, 4, 8, 16], [false, false, false, false], 0.1),
  'secvit-s': () => published([64, 128, 256, 512], [3, 4, 18, 4], [2, 4, 8, 16], [false, false, false, false], 0.15),
  'secvit-b': () => published([80, 160, 320, 512], [4, 8, 26, 8], [5, 5, 10, 16], [false, false, true, true], 0.4),
  'secvit-l': () => published([112, 224, 448, 640], [4, 8, 26, 8], [7, 7, 14, 20], [false, false, true, true], 0.5),
};
// Configs of ours, for small data (not from the paper). secvit-fm: the bundled Fashion-MNIST
// model (32 x 32 input: 8 x 8 tokens in stage 0, 4 clusters of 16; 4 x 4 in stage 1, 2 of 8;
// global attention from stage 2 on, where 2 x 2 and 1 x 1 tokens are left).
PUBLISHED['secvit-fm'] = () => resolveConfig({
  embed_dims: [32, 64, 128, 256], depths: [1, 2, 3, 1], num_heads: [1, 2, 4, 8],
  num_clusterss: [[4], [2, 2], [1, 1, 1], [-1]], mlp_ratios: [3, 3, 3, 3], projection: 512, num_classes: 10, drop_path_rate: 0.05,
});

const ALIASES: Record<string, string> = {
  KClusterFormerSimpleNew_T: 'secvit-t', KClusterFormerSimpleNew_S: 'secvit-s',
  KClusterFormerSimpleNew_M: 'secvit-b', KClusterFormerSimpleNew_L: 'secvit-l',
  SecViT_T: 'secvit-t', SecViT_S: 'secvit-s', SecViT_M: 'secvit-b', SecViT_L: 'secvit-l',
};

/** Every name `resolveConfig` accepts. */
export const CONFIG_NAMES: readonly string[] = [...Object.keys(PUBLISHED), ...Object.keys(ALIASES)];

/** The canonical name ('secvit-t' ...) of a registry name, or undefined. */
export function canonicalName(name: string): string | undefined {
  if (Object.hasOwn(PUBLISHED, name)) return name;
  if (Object.hasOwn(ALIASES, name)) return ALIASES[name];
  const lower = name.toLowerCase().replace('_', '-');
  return Object.hasOwn(PUBLISHED, lower) ? lower : undefined;
}

const KEYS: [keyof SecViTConfig, string][] = [
  ['embedDims', 'embed_dims'], ['depths', 'depths'], ['numHeads', 'num_heads'], ['numClusters', 'num_clusterss'],
  ['mlpRatios', 'mlp_ratios'], ['layerScales', 'layerscales'], ['projection', 'projection'],
  ['numClasses', 'num_classes'], ['layerScaleInit', 'layer_init_values'], ['dropPathRate', 'drop_path_rate'],
  ['attention', 'attention'],
];

const W = 'SecViT config';

function intList(v: unknown, key: string, min: number, max: number): number[] {
  if (!Array.isArray(v) || v.length !== 4) throw new TypeError(`${W}: ${key} must be an array of 4 integers (one per stage), got ${brief(v)}`);
  return v.map((x, i) => boundedInt(x, `${key}[${i}]`, W, min, max));
}

function posInt(v: unknown, key: string, max: number): number {
  return boundedInt(v, key, W, 1, max);
}


/**
 * Resolves a name, a config object (reference snake_case keys or camelCase; absent optional keys
 * take the published values) or a JSON string of one, into a validated SecViTConfig.
 */
export function resolveConfig(input: ConfigInput | string): SecViTConfig {
  if (typeof input === 'string') {
    const name = canonicalName(input);
    if (name) return PUBLISHED[name]();
    if (input.trimStart().startsWith('{')) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(input);
      } catch (e) {
        throw new TypeError(`${W}: not valid JSON (${(e as Error).message})`);
      }
      return resolveConfig(parsed as Record<string, unknown>);
    }
    throw new RangeError(`${W}: unknown config name '${input}'; known: ${CONFIG_NAMES.join(', ')}`);
  }
  if (typeof input !== 'object' || input === null || Array.isArray(input))
    throw new TypeError(`${W}: expected a config name or object, got ${input === null ? 'null' : Array.isArray(input) ? 'an array' : typeof input}`);
  const src = input as Record<string, unknown>;
  const get = (camel: string, snake: string): unknown => {
    const a = Object.hasOwn(src, camel) ? src[camel] : undefined;
    const b = Object.hasOwn(src, snake) ? src[snake] : undefined;
    if (a !== undefined && b !== undefined && camel !== snake && !sameValue(a, b))
      throw new RangeError(`${W}: both ${camel} and ${snake} are given, with different values`);
    return a ?? b;
  };
  const known = new Set(KEYS.flat());
  const unknown = Object.keys(src).filter((k) => !known.has(k));
  if (unknown.length) throw new RangeError(`${W}: unknown keys ${unknown.join(', ')}; expected ${KEYS.map(([c, s]) => `${c} (${s})`).join(', ')}`);
  for (const [c, s] of KEYS.slice(0, 4))
    if (get(c, s) === undefined) throw new TypeError(`${W}: ${c} (${s}) is required`);

  const embedDims = intList(get('embedDims', 'embed_dims'), 'embedDims', 1, MODEL_LIMITS.width);
  const depths = intList(get('depths', 'depths'), 'depths', 1, MODEL_LIMITS.blocksPerStage);
  if (depths.reduce((a, b) => a + b, 0) > MODEL_LIMITS.blocks)
    throw new RangeError(`${W}: depths [${depths.join(', ')}] add up to more than ${MODEL_LIMITS.blocks} blocks`);
  const numHeads = intList(get('numHeads', 'num_heads'), 'numHeads', 1, MODEL_LIMITS.heads);
  for (let i = 0; i < 4; i++) {
    if (embedDims[i] % numHeads[i] !== 0)
      throw new RangeError(`${W}: embedDims[${i}] = ${embedDims[i]} is not divisible by numHeads[${i}] = ${numHeads[i]}`);
    const d = embedDims[i] / numHeads[i];
    if (d % 4 !== 0) throw new RangeError(`${W}: stage ${i}'s head dim ${d} must be a multiple of 4 (2-D RoPE)`);
  }
  const rawClusters = get('numClusters', 'num_clusterss');
  if (!Array.isArray(rawClusters) || rawClusters.length !== 4)
    throw new TypeError(`${W}: numClusters must have 4 entries (one per stage), got ${brief(rawClusters)}`);
  const numClusters = rawClusters.map((stage, i) => {
    // One count for the whole stage, or one per block (the reference's lists may be longer than
    // the depth; the first depth entries are used, as the reference does).
    const list = typeof stage === 'number' ? new Array<number>(depths[i]).fill(stage) : stage;
    if (!Array.isArray(list) || list.length < depths[i] || !list.every((c) => typeof c === 'number' && Number.isInteger(c)))
      throw new TypeError(`${W}: numClusters[${i}] must be an integer or at least ${depths[i]} integers (the stage's depth), got ${brief(stage)}`);
    return (list as number[]).slice(0, depths[i]);
  });
  const mlp = get('mlpRatios', 'mlp_ratios') ?? [3, 3, 3, 3];
  if (!Array.isArray(mlp) || mlp.length !== 4 || !mlp.every((r) => typeof r === 'number' && r > 0 && r <= MODEL_LIMITS.mlpRatio))
    throw new TypeError(`${W}: mlpRatios must be 4 numbers in (0, ${MODEL_LIMITS.mlpRatio}], got ${brief(mlp)}`);
  const ls = get('layerScales', 'layerscales') ?? [false, false, false, false];
  if (!Array.isArray(ls) || ls.length !== 4 || !ls.every((b) => typeof b === 'boolean'))
    throw new TypeError(`${W}: layerScales must be 4 booleans, got ${brief(ls)}`);
  const init = get('layerScaleInit', 'layer_init_values') ?? 1e-6;
  if (typeof init !== 'number' || !Number.isFinite(init)) throw new TypeError(`${W}: layerScaleInit must be a finite number`);
  const dpr = get('dropPathRate', 'drop_path_rate') ?? 0.1;
  if (typeof dpr !== 'number' || !(dpr >= 0 && dpr < 1)) throw new RangeError(`${W}: dropPathRate must be a number in [0, 1), got ${brief(dpr)}`);
  const attention = get('attention', 'attention') ?? 'sec';
  if (attention !== 'sec' && attention !== 'window' && attention !== 'global')
    throw new TypeError(`${W}: attention must be 'sec', 'window' or 'global', got ${brief(attention)}`);
  const config: SecViTConfig = {
    embedDims, depths, numHeads, numClusters, mlpRatios: mlp as number[], layerScales: ls as boolean[],
    projection: posInt(get('projection', 'projection') ?? 1024, 'projection', MODEL_LIMITS.width),
    numClasses: posInt(get('numClasses', 'num_classes') ?? 1000, 'numClasses', MODEL_LIMITS.classes),
    layerScaleInit: init, dropPathRate: dpr,
  };
  if (attention !== 'sec') config.attention = attention;
  for (let i = 0; i < 4; i++)
    if (hiddenDim(config, i) < 1) throw new RangeError(`${W}: stage ${i}'s FFN width int(${embedDims[i]} * ${config.mlpRatios[i]}) is 0`);
  return config;
}

/**
 * The window [wh, ww] that cuts an h x w grid into `clusters` tiles (SecViTConfig.attention
 * 'window'): ry x rx tiles with ry the largest factor of C not above sqrt(C), each side rounded
 * up (the window kernel pads the rest), at most the grid.
 */
export function windowFor(clusters: number, h: number, w: number): [number, number] {
  const c = Math.max(1, clusters);
  let ry = Math.floor(Math.sqrt(c));
  while (c % ry !== 0) ry--;
  const rx = c / ry;
  return [Math.min(h, Math.ceil(h / ry)), Math.min(w, Math.ceil(w / rx))];
}

/** The FFN width of stage i: int(E * r), as the reference computes it. */
export function hiddenDim(config: SecViTConfig, stage: number): number {
  return Math.floor(config.embedDims[stage] * config.mlpRatios[stage]);
}

/** The config in the reference's keys (what checkpoints' metadata holds). */
export function toReferenceConfig(c: SecViTConfig): ReferenceConfig {
  return {
    embed_dims: [...c.embedDims], depths: [...c.depths], num_heads: [...c.numHeads],
    num_clusterss: c.numClusters.map((s) => [...s]), mlp_ratios: [...c.mlpRatios],
    layerscales: [...c.layerScales], projection: c.projection, num_classes: c.numClasses,
    ...(c.attention && c.attention !== 'sec' ? { attention: c.attention } : {}),
  };
}

/**
 * `need(key)`: the shape of a state-dict entry a config is read off, or a RangeError
 * "`what`: the checkpoint has no 'key' (pass { config })".
 */
export function shapeReader(shapes: Map<string, readonly number[]>, what: string): (key: string) => readonly number[] {
  return (key) => {
    const s = shapes.get(key);
    if (!s) throw new RangeError(`${what}: the checkpoint has no '${key}' (pass { config })`);
    return s;
  };
}

/**
 * A config read off a state dict's shapes, for checkpoints that carry none: widths, depths,
 * heads (from the RoPE angle length, d/2), FFN ratios, layer scale, projection and classes.
 * Cluster counts cannot be seen in weights; the published schedule (32, 8, 2, global) is used.
 */
export function inferConfig(shapes: Map<string, readonly number[]>): SecViTConfig {
  const need = shapeReader(shapes, 'SecViT: cannot infer the config');
  const embedDims: number[] = [], depths: number[] = [], numHeads: number[] = [], mlpRatios: number[] = [], layerScales: boolean[] = [];
  for (let i = 0; i < 4; i++) {
    const e = need(`layers.${i}.blocks.0.attn.qkv.weight`)[1];
    let depth = 0;
    while (shapes.has(`layers.${i}.blocks.${depth}.attn.qkv.weight`)) depth++;
    const halfD = need(`layers.${i}.RoPE.angle`)[0];
    embedDims.push(e);
    depths.push(depth);
    numHeads.push(e / (2 * halfD));
    mlpRatios.push(need(`layers.${i}.blocks.0.ffn.fc1.weight`)[0] / e);
    layerScales.push(shapes.has(`layers.${i}.blocks.0.gamma_1`));
  }
  return resolveConfig({
    embedDims, depths, numHeads, mlpRatios, layerScales,
    numClusters: PUBLISHED_CLUSTERS.map((c) => c),
    projection: need('proj.weight')[0], numClasses: need('head.weight')[0],
  });
}
