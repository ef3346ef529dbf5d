// Vision Transformer (Dosovitskiy et al. 2021) as torchvision 0.14 builds it
// (`VisionTransformer`), with torchvision's parameter names; and SEC-ViT, the SecViT paper's
// variant: global attention replaced by SEC attention with `numClusters` clusters over all
// tokens (the class token included: it is sorted like any other token), nothing else added.
//
// Layout. Tokens [B, S, E], S = 1 + (image / patch)^2, the class token first.
//   conv_proj       conv p x p stride p -> [B, E, n, n] -> tokens [B, n*n, E]
//   class token     prepended; + encoder.pos_embedding [1, S, E]
//   encoder.layers  pre-norm blocks:  x = x + out_proj(attn(in_proj(ln_1(x))))
//                                     x = x + mlp.3(GELU(mlp.0(ln_2(x))))
//   encoder.ln, the class token's row, heads.head
// nn.MultiheadAttention's packed in_proj_weight [3E, E] is the qkv projection; q is scaled by
// d^-0.5 (secvit's attention ops apply no scale). Fusion: ln_1 into the qkv projection, ln_2
// and GELU into mlp.0, the residual adds into out_proj and mlp.3. The input must be the
// configured image size (torchvision asserts it too: the position embedding is per position).
import { keep, tidy } from '../engine.js';
import type { Device } from '../backends.js';
import type { Tensor } from '../tensor.js';
import { globalAttention, secAttention } from '../ops/attention.js';
import { add, conv2d, fusedLinear, layerNorm, linear, mul } from '../ops/layers.js';
import { pad } from '../ops/reduce.js';
import { Module, type Slot } from '../nn/module.js';
import { Conv2d, LayerNorm, Linear, ModuleList, value } from '../nn/layers.js';
import {
  torchvisionCfg, VisionModel,
  type BackboneOptions, type ModelDType, type PretrainedCfg,
} from './base.js';

const LN_EPS = 1e-6;  // torchvision: partial(nn.LayerNorm, eps=1e-6)

export type VitAttention = 'global' | 'sec';

/** A resolved ViT configuration (torchvision's constructor arguments, camelCase). */
export interface VitConfig {
  family: 'vit';
  imageSize: number;
  patchSize: number;
  numLayers: number;
  numHeads: number;
  hiddenDim: number;
  mlpDim: number;
  numClasses: number;
  /** 'global' (ViT) or 'sec' (SEC-ViT). */
  attention: VitAttention;
  /** SEC: clusters of every block (over all 1 + (imageSize/patchSize)^2 tokens). */
  numClusters: number;
}

/** nn.MultiheadAttention's parameters: in_proj_weight [3E, E], in_proj_bias, out_proj. */
export class MultiheadAttention extends Module {
  readonly inProjWeight: Slot;
  readonly inProjBias: Slot;
  readonly out_proj: Linear;
  readonly headDim: number;
  constructor(readonly dim: number, readonly heads: number, readonly attention: VitAttention, readonly clusters: number) {
    super();
    this.headDim = dim / heads;
    this.inProjWeight = this.parameter('in_proj_weight', [3 * dim, dim], { kind: 'truncNormal', std: 0.02 });
    this.inProjBias = this.parameter('in_proj_bias', [3 * dim], { kind: 'zeros' });
    this.out_proj = this.child('out_proj', new Linear(dim, dim));
  }

  /** residual + out_proj(attn(ln(x))): x [B, S, E]. */
  forwardTokens(x: Tensor, norm: LayerNorm, residual: Tensor | null, ctx: { block: number; record?: BackboneOptions['record']; grid: number }): Tensor {
    const [b, s, e] = x.shape;
    const heads = this.heads, d = this.headDim;
    const qkv = fusedLinear(x, value(this.inProjWeight), value(this.inProjBias), { norm: norm.options });
    const split = qkv.reshape([b, s, 3 * heads, d]).permute([0, 2, 1, 3]);
    const q = mul(split.narrow(1, 0, heads), d ** -0.5);
    const k = split.narrow(1, heads, heads);
    const v = split.narrow(1, 2 * heads, heads);
    let o: Tensor;
    if (this.attention === 'sec' && this.clusters > 1) {
      if (ctx.record) {
        const r = secAttention(q, k, v, { clusters: this.clusters, returnOrder: true });
        ctx.record.push({ stage: 0, block: ctx.block, clusters: this.clusters, height: ctx.grid, width: ctx.grid, order: keep(r.order), extraTokens: 1 });
        o = r.out;
      } else {
        o = secAttention(q, k, v, { clusters: this.clusters });
      }
    } else {
      o = globalAttention(q, k, v);
    }
    return fusedLinear(o.permute([0, 2, 1, 3]).reshape([b, s, e]), this.out_proj.w, this.out_proj.b, { residual });
  }
}

export class EncoderBlock extends Module {
  readonly ln_1: LayerNorm;
  readonly self_attention: MultiheadAttention;
  readonly ln_2: LayerNorm;
  readonly mlp: ModuleList<Linear>;
  constructor(dim: number, heads: number, mlpDim: number, attention: VitAttention, clusters: number) {
    super();
    this.ln_1 = this.child('ln_1', new LayerNorm(dim, LN_EPS));
    this.self_attention = this.child('self_attention', new MultiheadAttention(dim, heads, attention, clusters));
    this.ln_2 = this.child('ln_2', new LayerNorm(dim, LN_EPS));
    this.mlp = this.child('mlp', new ModuleList([new Linear(dim, mlpDim), new Linear(mlpDim, dim)], [0, 3]));
  }
  forward(x: Tensor, ctx: { block: number; record?: BackboneOptions['record']; grid: number }): Tensor {
    return tidy(() => {
      const x1 = this.self_attention.forwardTokens(x, this.ln_1, x, ctx);
      const [fc1, fc2] = this.mlp.items;
      const h = fusedLinear(x1, fc1.w, fc1.b, { norm: this.ln_2.options, activation: 'gelu' });
      return fusedLinear(h, fc2.w, fc2.b, { residual: x1 });
    });
  }
}

class Encoder extends Module {
  readonly posEmbedding: Slot;
  readonly layers: ModuleList<EncoderBlock>;
  readonly ln: LayerNorm;
  constructor(c: VitConfig, seqLength: number) {
    super();
    this.posEmbedding = this.parameter('pos_embedding', [1, seqLength, c.hiddenDim], { kind: 'truncNormal', std: 0.02 });
    const blocks = Array.from({ length: c.numLayers }, () => new EncoderBlock(c.hiddenDim, c.numHeads, c.mlpDim, c.attention, c.numClusters));
    this.layers = this.child('layers', new ModuleList(blocks, blocks.map((_, i) => `encoder_layer_${i}`)));
    this.ln = this.child('ln', new LayerNorm(c.hiddenDim, LN_EPS));
  }
}

class Heads extends Module {
  readonly head: Linear;
  constructor(dim: number, classes: number) {
    super();
    this.head = this.child('head', new Linear(dim, classes));
  }
}

export const VIT_PRETRAINED: Record<string, PretrainedCfg> = {
  'vit-b-16': torchvisionCfg(256, 'bilinear', 'conv_proj', 'heads.head'),
  'vit-b-32': torchvisionCfg(256, 'bilinear', 'conv_proj', 'heads.head'),
  'vit-l-16': torchvisionCfg(242, 'bilinear', 'conv_proj', 'heads.head'),
};

export class VisionTransformer extends VisionModel {
  readonly family = 'vit' as const;
  readonly className = 'VisionTransformer';
  readonly config: VitConfig;
  readonly classToken: Slot;
  readonly conv_proj: Conv2d;
  readonly encoder: Encoder;
  readonly heads: Heads;
  readonly grid: number;
  /** The pretrained configuration (a named config's; else ViT-B/16's transform at the config's image size). */
  pretrainedCfgOverride: PretrainedCfg | null = null;

  /** @internal Use createModel or loadModel. The slots are empty until filled. */
  constructor(config: VitConfig, device: Device, dtype: ModelDType) {
    super(device, dtype);
    this.config = config;
    if (config.imageSize % config.patchSize !== 0)
      throw new RangeError(`VisionTransformer: imageSize ${config.imageSize} must be a multiple of patchSize ${config.patchSize}`);
    this.grid = config.imageSize / config.patchSize;
    this.classToken = this.parameter('class_token', [1, 1, config.hiddenDim], { kind: 'zeros' });
    this.conv_proj = this.child('conv_proj', new Conv2d(3, config.hiddenDim, config.patchSize));
    this.encoder = this.child('encoder', new Encoder(config, this.grid * this.grid + 1));
    this.heads = this.child('heads', new Heads(config.hiddenDim, config.numClasses));
  }

  get numClasses(): number {
    return this.config.numClasses;
  }

  get pretrainedCfg(): PretrainedCfg {
    if (this.pretrainedCfgOverride) return this.pretrainedCfgOverride;
    const s = this.config.imageSize;
    return { ...VIT_PRETRAINED['vit-b-16'], inputSize: [3, s, s], resize: undefined, numClasses: this.config.numClasses };
  }

  referenceConfig(): Record<string, unknown> {
    const c = this.config;
    return {
      family: 'vit', image_size: c.imageSize, patch_size: c.patchSize, num_layers: c.numLayers, num_heads: c.numHeads,
      hidden_dim: c.hiddenDim, mlp_dim: c.mlpDim, num_classes: c.numClasses,
      ...(c.attention === 'sec' ? { attention: 'sec', num_clusters: c.numClusters } : {}),
    };
  }

  protected checkInputSize(op: string, height: number, width: number): void {
    const s = this.config.imageSize;
    if (height !== s || width !== s)
      throw new RangeError(`${op}: pixels must be ${s}x${s} (the position embedding's size), got ${height}x${width}`);
  }

  protected checkHeadInput(features: Tensor): void {
    const s = this.grid * this.grid + 1, e = this.config.hiddenDim;
    if (features.shape.length !== 3 || features.shape[1] !== s || features.shape[2] !== e)
      throw new RangeError(`VisionTransformer.forwardHead: features must be [B, ${s}, ${e}], got [${features.shape.join(', ')}]`);
  }

  /** tokens [B, S, E] after encoder.ln (the per-layer outputs with `features`). */
  protected runBackbone(x: Tensor, opts: BackboneOptions): { last: Tensor; features: Tensor[] } {
    const e = this.config.hiddenDim, n = this.grid * this.grid;
    const features: Tensor[] = [];
    let h = tidy(() => {
      const y = conv2d(x, value(this.conv_proj.weight), value(this.conv_proj.bias), { stride: this.config.patchSize });
      const [b] = y.shape;
      const tokens = y.permute([0, 2, 3, 1]).reshape([b, n, e]);
      // cat([class_token, tokens], 1) + pos_embedding: zero row 0 of the padded tokens, the class
      // token padded to every position but 0.
      const cls = pad(value(this.classToken), 1, 0, n);
      return add(add(pad(tokens, 1, 1, 0), cls), value(this.encoder.posEmbedding));
    });
    this.encoder.layers.items.forEach((block, i) => {
      const y = block.forward(h, { block: i, record: opts.record, grid: this.grid });
      if (!features.includes(h)) h.dispose();
      if (opts.features) features.push(y);
      h = y;
    });
    const last = tidy(() => layerNorm(h, value(this.encoder.ln.weight), value(this.encoder.ln.bias), { eps: LN_EPS }));
    if (!features.includes(h)) h.dispose();
    return { last, features };
  }

  /** The class token's row of the normalised tokens, then heads.head ([B, E] with preLogits). */
  protected runHead(last: Tensor, preLogits: boolean): Tensor {
    const [b, , e] = last.shape;
    const cls = last.narrow(1, 0, 1).reshape([b, e]);
    return preLogits ? cls : this.classifier(cls, this.heads.head.w, this.heads.head.b);
  }

  releaseDerived(): void {}
}
