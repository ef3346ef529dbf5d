// Swin Transformer (Liu et al. 2021) as torchvision 0.14 builds it (`SwinTransformer`, V1), with
// torchvision's parameter names, so that its checkpoints load as they are; and SEC-Swin, the
// SecViT paper's variant: each block's window attention replaced by SEC attention with as many
// clusters as the stage has windows, nothing else added (no position bias, no shift).
//
// Layout. Activations are tokens [B, H, W, C], contiguous, as torchvision keeps them.
//   features.0      patch embedding: conv p x p stride p -> [B, H/p, W/p, C] -> LayerNorm
//   features.1,3,5,7  the stages' blocks; features.2,4,6 patch merging
//   norm, mean over H and W, head
// Block (torchvision's SwinTransformerBlock):
//   x = x + drop_path(proj(attn(pad(LN1(x)))))      window attention on the padded grid, cropped
//   x = x + drop_path(fc2(GELU(fc1(LN2(x)))))
// Window attention: torchvision pads the normalised tokens with zeros to a multiple of the
// window, so padded tokens are keys (with k = v = the qkv bias); secvit does the same pad before
// the projection and runs the fused windowAttention kernel on the padded grid, with the relative
// position bias [heads, N, N] gathered from the table (a one-hot matmul: differentiable, cached
// in eval mode) and Swin's shift masks. The shift is dropped on an axis whose padded size fits
// in one window (torchvision's rule). q is scaled by d^-0.5 (secvit's attention ops apply no
// scale). Fusion: LN1 into the qkv projection when there is no padding, LN2 into fc1, GELU into
// fc1, the residual adds into proj and fc2; patch merging's LayerNorm into its reduction.
import { keep, tidy } from '../engine.js';
import type { Device } from '../backends.js';
import { tensor, type Tensor } from '../tensor.js';
import { globalAttention, secAttention, windowAttention } from '../ops/attention.js';
import { dropPath } from '../ops/dropout.js';
import { add, conv2d, fusedLinear, globalAvgPool2d, layerNorm, linear, mul } from '../ops/layers.js';
import { matmul } from '../ops/matmul.js';
import { pad } from '../ops/reduce.js';
import { Module, type Slot } from '../nn/module.js';
import { Conv2d, Derived, LayerNorm, Linear, ModuleList, value } from '../nn/layers.js';
import {
  torchvisionCfg, VisionModel,
  type BackboneOptions, type ClusterRecord, type ModelDType, type PretrainedCfg, type Run,
} from './base.js';

const LN_EPS = 1e-5;  // torchvision: partial(nn.LayerNorm, eps=1e-5)

export type SwinAttention = 'window' | 'sec' | 'global';

/** A resolved Swin configuration (torchvision's constructor arguments, camelCase). */
export interface SwinConfig {
  family: 'swin';
  patchSize: [number, number];
  embedDim: number;
  depths: number[];
  numHeads: number[];
  windowSize: [number, number];
  mlpRatio: number;
  numClasses: number;
  stochasticDepthProb: number;
  /** 'window' (Swin), 'sec' (SEC-Swin) or 'global'. */
  attention: SwinAttention;
  /** SEC: clusters of every block per stage (default: the stage's window count at `imageSize`). */
  numClusters: number[];
  /** The input side the default cluster counts are computed for (and the pretrained input size). */
  imageSize: number;
}

/** How many windows each stage has at `imageSize` (torchvision pads the grid to a multiple of the window). */
export function swinWindowCounts(c: Pick<SwinConfig, 'patchSize' | 'depths' | 'windowSize' | 'imageSize'>): number[] {
  let h = Math.floor(c.imageSize / c.patchSize[0]);
  let w = Math.floor(c.imageSize / c.patchSize[1]);
  return c.depths.map(() => {
    const n = Math.ceil(h / c.windowSize[0]) * Math.ceil(w / c.windowSize[1]);
    h = Math.ceil(h / 2);
    w = Math.ceil(w / 2);
    return n;
  });
}

/** One stage's relative_position_index (torchvision's): index[i * N + j] into the bias table. */
export function relativePositionIndex(wh: number, ww: number): Int32Array {
  const n = wh * ww;
  const out = new Int32Array(n * n);
  for (let i = 0; i < n; i++) {
    const yi = Math.floor(i / ww), xi = i % ww;
    for (let j = 0; j < n; j++) {
      const yj = Math.floor(j / ww), xj = j % ww;
      out[i * n + j] = (yi - yj + wh - 1) * (2 * ww - 1) + (xi - xj + ww - 1);
    }
  }
  return out;
}

interface BlockContext {
  /** The one-hot float32 [T, N*N] matrix that gathers a bias table into [heads, N, N] (a model constant). */
  gather: () => Tensor;
  stage: number;
  block: number;
  /** Where SEC blocks record their token orders (clusters()). */
  record?: ClusterRecord[];
}

export class ShiftedWindowAttention extends Module {
  readonly qkv: Linear;
  readonly proj: Linear;
  readonly relativePositionBiasTable: Slot | null = null;
  readonly headDim: number;
  readonly #derived = new Derived();
  constructor(readonly dim: number, readonly heads: number, readonly window: [number, number], readonly shift: [number, number],
    readonly attention: SwinAttention, readonly clusters: number) {
    super();
    this.headDim = dim / heads;
    this.qkv = this.child('qkv', new Linear(dim, 3 * dim));
    this.proj = this.child('proj', new Linear(dim, dim));
    if (attention === 'window') {
      const [wh, ww] = window;
      this.relativePositionBiasTable = this.parameter('relative_position_bias_table', [(2 * wh - 1) * (2 * ww - 1), heads],
        { kind: 'truncNormal', std: 0.02 });
      this.indexTable('relative_position_index', [wh * ww * wh * ww], relativePositionIndex(wh, ww));
    }
  }

  /**
   * The bias [heads, N, N] from the table, float32 whatever the model's dtype (the attention op
   * takes a float32 bias): a gather as a matmul with a one-hot matrix, so it is differentiable;
   * cached outside gradient recording.
   */
  #bias(ctx: BlockContext, live: boolean): Tensor {
    const n = this.window[0] * this.window[1];
    return this.#derived.get('bias', (own) => {
      const table = value(this.relativePositionBiasTable!);
      const t32 = table.dtype === 'float32' ? table : table.cast('float32');
      return own(matmul(t32.permute([1, 0]), ctx.gather()).reshape([this.heads, n, n]));
    }, live);
  }

  /**
   * x [B, H, W, C] (the block's input, contiguous) -> `residual + proj(attn(LN1(x)))` (residual
   * null: without it). `norm` is the block's LN1.
   */
  forwardTokens(x: Tensor, norm: LayerNorm, residual: Tensor | null, ctx: BlockContext, run: Run): Tensor {
    const [b, h, w, c] = x.shape;
    const heads = this.heads, d = this.headDim;
    const [wh, ww] = this.window;
    const windowed = this.attention === 'window';
    const padB = windowed ? (wh - (h % wh)) % wh : 0;
    const padR = windowed ? (ww - (w % ww)) % ww : 0;
    const hp = h + padB, wp = w + padR;
    let qkv: Tensor;
    if (padB === 0 && padR === 0) {
      qkv = fusedLinear(x, this.qkv.w, this.qkv.b, { norm: norm.options });
    } else {
      // torchvision pads after LN1: padded tokens are zeros, their q, k, v the qkv bias.
      let t = layerNorm(x, norm.options.weight, norm.options.bias, { eps: norm.eps });
      if (padB > 0) t = pad(t, 1, 0, padB);
      if (padR > 0) t = pad(t, 2, 0, padR);
      qkv = linear(t, this.qkv.w, this.qkv.b);
    }
    const L = hp * wp;
    const split = qkv.reshape([b, L, 3 * heads, d]).permute([0, 2, 1, 3]);
    const q = mul(split.narrow(1, 0, heads), d ** -0.5);
    const k = split.narrow(1, heads, heads);
    const v = split.narrow(1, 2 * heads, heads);
    let o: Tensor;
    if (windowed) {
      const sh = wh >= hp ? 0 : this.shift[0];
      const sw = ww >= wp ? 0 : this.shift[1];
      o = windowAttention(q, k, v, { height: hp, width: wp, window: [wh, ww], shift: [sh, sw], bias: this.#bias(ctx, run.live) });
    } else if (this.attention === 'sec') {
      if (this.clusters > L)
        throw new RangeError(`SwinTransformer.forward: SEC attention with ${this.clusters} clusters needs at least as many tokens, got a ${h}x${w} grid; use a larger input`);
      if (ctx.record) {
        const r = secAttention(q, k, v, { clusters: this.clusters, returnOrder: true });
        ctx.record.push({ stage: ctx.stage, block: ctx.block, clusters: this.clusters, height: h, width: w, order: keep(r.order) });
        o = r.out;
      } else {
        o = secAttention(q, k, v, { clusters: this.clusters });
      }
    } else {
      o = globalAttention(q, k, v);
    }
    let tokens = o.permute([0, 2, 1, 3]).reshape([b, hp, wp, c]);
    if (padB > 0) tokens = tokens.narrow(1, 0, h);
    if (padR > 0) tokens = tokens.narrow(2, 0, w);
    return fusedLinear(tokens, this.proj.w, this.proj.b, { residual });
  }

  releaseDerived(): void {
    this.#derived.release();
  }
}

export class SwinTransformerBlock extends Module {
  readonly norm1: LayerNorm;
  readonly attn: ShiftedWindowAttention;
  readonly norm2: LayerNorm;
  readonly mlp: ModuleList<Linear>;
  constructor(readonly dim: number, heads: number, window: [number, number], shift: [number, number], mlpRatio: number,
    readonly dropPath: number, attention: SwinAttention, clusters: number) {
    super();
    this.norm1 = this.child('norm1', new LayerNorm(dim, LN_EPS));
    this.attn = this.child('attn', new ShiftedWindowAttention(dim, heads, window, shift, attention, clusters));
    this.norm2 = this.child('norm2', new LayerNorm(dim, LN_EPS));
    const hidden = Math.trunc(dim * mlpRatio);
    // torchvision's MLP: Linear, GELU, Dropout, Linear, Dropout (keys mlp.0, mlp.3).
    this.mlp = this.child('mlp', new ModuleList([new Linear(dim, hidden), new Linear(hidden, dim)], [0, 3]));
  }

  forward(x: Tensor, ctx: BlockContext, run: Run): Tensor {
    return tidy(() => {
      const p = run.training ? this.dropPath : 0;
      const branch = (residual: Tensor, f: (residual: Tensor | null) => Tensor): Tensor =>
        p === 0 ? f(residual) : add(residual, dropPath(f(null), p));
      const x1 = branch(x, (r) => this.attn.forwardTokens(x, this.norm1, r, ctx, run));
      const [fc1, fc2] = this.mlp.items;
      return branch(x1, (r) => {
        const hdn = fusedLinear(x1, fc1.w, fc1.b, { norm: this.norm2.options, activation: 'gelu' });
        return fusedLinear(hdn, fc2.w, fc2.b, { residual: r });
      });
    });
  }
}

/** torchvision's PatchMerging: pad to even H and W, concatenate 2x2 neighbours, LayerNorm, linear to 2C. */
export class PatchMerging extends Module {
  readonly reduction: Linear;
  readonly norm: LayerNorm;
  constructor(readonly dim: number) {
    super();
    this.reduction = this.child('reduction', new Linear(4 * dim, 2 * dim, false));
    this.norm = this.child('norm', new LayerNorm(4 * dim, LN_EPS));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      let t = x;
      const [b, h, w, c] = t.shape;
      if (h % 2) t = pad(t, 1, 0, 1);
      if (w % 2) t = pad(t, 2, 0, 1);
      const h2 = (h + (h % 2)) / 2, w2 = (w + (w % 2)) / 2;
      // [B, H/2, dy, W/2, dx, C] -> [B, H/2, W/2, dx, dy, C]: torchvision's order x0 (0,0),
      // x1 (dy 1), x2 (dx 1), x3 (1,1) is channel block dx * 2 + dy.
      const merged = t.reshape([b, h2, 2, w2, 2, c]).permute([0, 1, 3, 4, 2, 5]).contiguous().reshape([b, h2, w2, 4 * c]);
      return fusedLinear(merged, this.reduction.w, null, { norm: this.norm.options });
    });
  }
}

/** features.0: Conv2d(3, C, p, stride p), Permute, LayerNorm (keys features.0.0, features.0.2). */
class PatchEmbed extends Module {
  readonly proj: Conv2d;
  readonly norm: LayerNorm;
  constructor(readonly patch: number, dim: number) {
    super();
    this.proj = this.child(0, new Conv2d(3, dim, patch));
    this.norm = this.child(2, new LayerNorm(dim, LN_EPS));
  }
  forward(pixels: Tensor): Tensor {
    return tidy(() => {
      const y = conv2d(pixels, value(this.proj.weight), value(this.proj.bias), { stride: this.patch });
      const t = y.permute([0, 2, 3, 1]).contiguous();
      return layerNorm(t, this.norm.options.weight, this.norm.options.bias, { eps: LN_EPS });
    });
  }
}

class Stage extends ModuleList<SwinTransformerBlock> {}

export const SWIN_PRETRAINED: Record<string, PretrainedCfg> = {
  'swin-t': torchvisionCfg(232, 'bicubic', 'features.0.0', 'head'),
  'swin-s': torchvisionCfg(246, 'bicubic', 'features.0.0', 'head'),
  'swin-b': torchvisionCfg(238, 'bicubic', 'features.0.0', 'head'),
};

export class SwinTransformer extends VisionModel {
  readonly family = 'swin' as const;
  readonly className = 'SwinTransformer';
  readonly config: SwinConfig;
  readonly features_: ModuleList<Module>;
  readonly norm: LayerNorm;
  readonly head: Linear;
  readonly #embed: PatchEmbed;
  readonly #stages: Stage[] = [];
  readonly #merges: PatchMerging[] = [];
  /** The pretrained configuration (a named config's; else Swin-T's transform at the config's image size). */
  pretrainedCfgOverride: PretrainedCfg | null = null;

  /** @internal Use createModel or loadModel. The slots are empty until filled. */
  constructor(config: SwinConfig, device: Device, dtype: ModelDType) {
    super(device, dtype);
    this.config = config;
    const c = config;
    if (c.patchSize[0] !== c.patchSize[1]) throw new RangeError(`SwinTransformer: only square patches are supported, got [${c.patchSize.join(', ')}]`);
    this.#embed = new PatchEmbed(c.patchSize[0], c.embedDim);
    const items: Module[] = [this.#embed];
    const total = c.depths.reduce((a, b) => a + b, 0);
    let blockId = 0;
    c.depths.forEach((depth, i) => {
      const dim = c.embedDim * 2 ** i;
      const blocks: SwinTransformerBlock[] = [];
      for (let j = 0; j < depth; j++) {
        const sd = total > 1 ? (c.stochasticDepthProb * blockId) / (total - 1) : 0;
        const shift: [number, number] = j % 2 === 0 || c.attention !== 'window' ? [0, 0] : [Math.floor(c.windowSize[0] / 2), Math.floor(c.windowSize[1] / 2)];
        blocks.push(new SwinTransformerBlock(dim, c.numHeads[i], c.windowSize, shift, c.mlpRatio, sd, c.attention, c.numClusters[i]));
        blockId++;
      }
      const stage = new Stage(blocks);
      this.#stages.push(stage);
      items.push(stage);
      if (i < c.depths.length - 1) {
        const m = new PatchMerging(dim);
        this.#merges.push(m);
        items.push(m);
      }
    });
    this.features_ = this.child('features', new ModuleList(items));
    const last = c.embedDim * 2 ** (c.depths.length - 1);
    this.norm = this.child('norm', new LayerNorm(last, LN_EPS));
    this.head = this.child('head', new Linear(last, c.numClasses));
  }

  get numClasses(): number {
    return this.config.numClasses;
  }

  get pretrainedCfg(): PretrainedCfg {
    if (this.pretrainedCfgOverride) return this.pretrainedCfgOverride;
    const s = this.config.imageSize;
    return { ...SWIN_PRETRAINED['swin-t'], inputSize: [3, s, s], resize: undefined, cropPct: 224 / 232, numClasses: this.config.numClasses };
  }

  referenceConfig(): Record<string, unknown> {
    const c = this.config;
    return {
      family: 'swin', patch_size: c.patchSize, embed_dim: c.embedDim, depths: c.depths, num_heads: c.numHeads,
      window_size: c.windowSize, mlp_ratio: c.mlpRatio, num_classes: c.numClasses, stochastic_depth_prob: c.stochasticDepthProb,
      ...(c.attention !== 'window' ? { attention: c.attention } : {}),
      ...(c.attention === 'sec' ? { num_clusters: c.numClusters } : {}),
      image_size: c.imageSize,
    };
  }

  protected checkInputSize(op: string, height: number, width: number): void {
    const p = this.config.patchSize[0];
    if (height < p || width < p) throw new RangeError(`${op}: pixels must be at least ${p}x${p} (one patch), got ${height}x${width}`);
  }

  protected checkHeadInput(features: Tensor): void {
    const last = this.config.embedDim * 2 ** (this.config.depths.length - 1);
    if (features.shape.length !== 4 || features.shape[3] !== last)
      throw new RangeError(`SwinTransformer.forwardHead: features must be [B, H, W, ${last}], got [${features.shape.join(', ')}]`);
  }

  #gather(wh: number, ww: number): Tensor {
    return this.constant(`relpos:${wh}x${ww}`, () => {
      const idx = relativePositionIndex(wh, ww);
      const t = (2 * wh - 1) * (2 * ww - 1);
      const onehot = new Float32Array(t * idx.length);
      idx.forEach((r, e) => (onehot[r * idx.length + e] = 1));
      // float32 on the model's device (the bias is float32 in every dtype).
      const host = tensor(onehot, [t, idx.length]);
      if (this.device === 'cpu') return host;
      const dev = host.toSync(this.device);
      host.dispose();
      return dev;
    });
  }

  protected runBackbone(x: Tensor, opts: BackboneOptions, run: Run): { last: Tensor; features: Tensor[] } {
    const [wh, ww] = this.config.windowSize;
    const gather = () => this.#gather(wh, ww);
    const features: Tensor[] = [];
    let h = this.#embed.forward(x);
    this.#stages.forEach((stage, i) => {
      for (const [j, block] of stage.items.entries()) {
        const y = block.forward(h, { gather, stage: i, block: j, record: opts.record }, run);
        h.dispose();
        h = y;
      }
      if (opts.features) features.push(h);
      if (i < this.#merges.length) {
        const y = this.#merges[i].forward(h);
        if (!opts.features) h.dispose();
        h = y;
      }
    });
    return { last: h, features };
  }

  /** norm, mean over the grid, head ([B, C] with preLogits). */
  protected runHead(last: Tensor, preLogits: boolean): Tensor {
    const [b, , , c] = last.shape;
    const n = layerNorm(last.contiguous(), value(this.norm.weight), value(this.norm.bias), { eps: LN_EPS });
    const pooled = globalAvgPool2d(n.permute([0, 3, 1, 2])).reshape([b, c]);
    return preLogits ? pooled : this.classifier(pooled, this.head.w, this.head.b);
  }

  releaseDerived(): void {
    for (const s of this.#stages) for (const b of s.items) b.attn.releaseDerived();
  }
}
