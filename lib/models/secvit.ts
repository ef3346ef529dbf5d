// SecViT (SPEC section 3) assembled from secvit's ops, as a tree of PyTorch-style modules whose
// parameter names are the authors' checkpoint keys.
//
// Layout. Activations are [B, C, H, W] tensors stored channels-last (B, H, W, C): a 1x1
// convolution is then a GEMM over token rows, LayerNorm normalises contiguous rows, and the
// attention reads token rows. `x.permute([0, 2, 3, 1])` of such a tensor is a free view of its
// tokens [B, H, W, C]; the model never transposes activations.
//
// Fusion (one pass each; see lib/ops/layers.ts):
//   CPE        x + dwconv3x3(x)                                    fusedConv2d(residual)
//   qkv        RoPE(LN1(x) W + b), k * d^-0.5                      fusedLinear(norm, rope)
//   out_proj   x + g1 * ((o + lepe) W + b)                         fusedLinear(add, scale, residual)
//   fc1        GELU(LN2(x) W + b)                                  fusedLinear(norm, activation)
//   dwconv     h + dwconv3x3(h)                                    fusedConv2d(residual)
//   fc2        x + g2 * (h W + b)                                  fusedLinear(scale, residual)
//   stem, downsample, head proj: batch norm as a per-channel scale and bias in the conv epilogue.
//
// Training. `train()` switches batch norm to the batch's statistics (batchNormTrain, its
// activation fused; running statistics updated in place as PyTorch does) and turns on drop path.
// While gradients are recorded (any parameter requires grad, outside noGrad) the forward runs
// the same fused ops, now recorded (lib/autograd); the tensors derived from parameters (batch
// norm scales, layer-scale views) are then made for each forward instead of cached, so that
// each forward's graph reaches the parameters. Parameters require grad from creation or loading
// on (PyTorch's default): run inference under noGrad(), or freeze with model.requiresGrad(false).
import { keep, tidy } from '../engine.js';
import type { Device } from '../backends.js';
import { tensor, Tensor, type OrtLikeTensor } from '../tensor.js';
import { globalAttention, secAttention, windowAttention } from '../ops/attention.js';
import { dropPath } from '../ops/dropout.js';
import {
  add, conv2d, fusedConv2d, fusedLinear, globalAvgPool2d, linear, mul,
} from '../ops/layers.js';
import { Module, type Slot } from '../nn/module.js';
import { BatchNorm2d, Conv2d, Derived, LayerNorm, ModuleList, value } from '../nn/layers.js';
import { checkProgress, familyOfKeys, fillFromCheckpoint, readCheckpoint, type Checkpoint, type LoadOptions } from './load.js';
import { CheckpointError } from '../io/source.js';
import {
  checkOptions, CREATE_OPTION_KEYS, IMAGENET_MEAN, LOAD_OPTION_KEYS, IMAGENET_STD, VisionModel,
  type BackboneOptions, type ClusterRecord, type ModelDType, type ModelOptions, type PretrainedCfg, type Run,
} from './base.js';
import { canonicalName, hiddenDim, inferConfig, resolveConfig, toReferenceConfig, windowFor, type ConfigInput, type SecViTConfig } from './config.js';


/** The reference wraps its LayerNorms (`norm1.norm`). */
class NormWrapper extends Module {
  readonly norm: LayerNorm;
  constructor(channels: number) {
    super();
    this.norm = this.child('norm', new LayerNorm(channels));
  }
}


// ---- attention, FFN, block -------------------------------------------------------------------

interface AttnContext {
  stage: number;
  block: number;
  record?: ClusterRecord[];
}

export class SecAttention extends Module {
  readonly qkv: Conv2d;
  readonly lepe: Conv2d;
  readonly out_proj: Conv2d;
  readonly headDim: number;
  constructor(readonly dim: number, readonly heads: number, readonly clusters: number, private readonly angle: Slot,
    readonly attention: 'sec' | 'window' | 'global' = 'sec') {
    super();
    this.headDim = dim / heads;
    this.qkv = this.child('qkv', new Conv2d(dim, 3 * dim, 1));
    this.lepe = this.child('lepe', new Conv2d(dim, dim, 5, dim));
    this.out_proj = this.child('out_proj', new Conv2d(dim, dim, 1));
  }

  /**
   * The attention on tokens t [B, H, W, E] (contiguous): out_proj(SEC(RoPE(q), RoPE(k) d^-0.5, v)
   * + LCE(v)), with the block's LN1 before qkv and `residual + scale * (...)` after out_proj
   * fused when given. Returns tokens [B, H, W, E]. (The 1x1 convolutions' [O, C, 1, 1] weights
   * are linear's weights as they are.)
   */
  forwardTokens(
    t: Tensor,
    fused: { norm?: LayerNorm; residual?: Tensor | null; scale?: Tensor | null },
    ctx?: AttnContext,
  ): Tensor {
    const [b, h, w, e] = t.shape;
    const heads = this.heads;
    const d = this.headDim;
    const L = h * w;
    if (this.attention === 'sec' && this.clusters > 1 && this.clusters > L)
      throw new RangeError(
        `SecViT.forward: stage ${ctx?.stage ?? '?'} block ${ctx?.block ?? '?'} has ${this.clusters} clusters but its ${h}x${w} grid has only ${L} tokens; use a larger input`);
    const qkv = fusedLinear(t, value(this.qkv.weight), value(this.qkv.bias), {
      norm: fused.norm?.options,
      rope: { angle: value(this.angle), heads, height: h, width: w, kScale: d ** -0.5 },
    });
    // q, k, v: views [B, heads, L, d] of the (m, head, d) columns.
    const split = qkv.reshape([b, L, 3 * heads, d]).permute([0, 2, 1, 3]);
    const q = split.narrow(1, 0, heads);
    const k = split.narrow(1, heads, heads);
    const v = split.narrow(1, 2 * heads, heads);
    const lepe = conv2d(qkv.narrow(3, 2 * e, e).permute([0, 3, 1, 2]), value(this.lepe.weight), value(this.lepe.bias), {
      padding: 2, groups: e,
    });
    let o: Tensor;
    if (this.attention === 'window') {
      o = windowAttention(q, k, v, { height: h, width: w, window: windowFor(this.clusters, h, w) });
    } else if (this.attention === 'global') {
      o = globalAttention(q, k, v);
    } else if (ctx?.record) {
      const r = secAttention(q, k, v, { clusters: this.clusters, returnOrder: true });
      ctx.record.push({ stage: ctx.stage, block: ctx.block, clusters: this.clusters, height: h, width: w, order: keep(r.order) });
      o = r.out;
    } else {
      o = secAttention(q, k, v, { clusters: this.clusters });
    }
    const tokens = o.permute([0, 2, 1, 3]).reshape([b, h, w, e]);
    return fusedLinear(tokens, value(this.out_proj.weight), value(this.out_proj.bias), {
      add: lepe.permute([0, 2, 3, 1]), scale: fused.scale ?? null, residual: fused.residual ?? null,
    });
  }

  /**
   * The attention module alone, as the reference's `attn(x)`: x [B, E, H, W] (the LN1 output) ->
   * [B, E, H, W] after out_proj.
   */
  forward(x: Tensor): Tensor {
    if (!(x instanceof Tensor) || x.shape.length !== 4 || x.shape[1] !== this.dim)
      throw new RangeError(`SecAttention.forward: x must be a Tensor [B, ${this.dim}, H, W]`);
    const w = value(this.qkv.weight);
    return tidy(() => {
      let t = x.device === w.device ? x : x.toSync(w.device);
      if (t.dtype !== w.dtype) t = t.cast(w.dtype);
      return this.forwardTokens(t.contiguous('channelsLast').permute([0, 2, 3, 1]), {}).permute([0, 3, 1, 2]);
    });
  }
}

export class FFN extends Module {
  readonly fc1: Conv2d;
  readonly fc2: Conv2d;
  readonly dwconv: Conv2d;
  constructor(readonly dim: number, readonly hidden: number) {
    super();
    this.fc1 = this.child('fc1', new Conv2d(dim, hidden, 1));
    this.fc2 = this.child('fc2', new Conv2d(hidden, dim, 1));
    this.dwconv = this.child('dwconv', new Conv2d(hidden, hidden, 3, hidden));
  }

  /** residual + scale * fc2(h + dwconv(h)), h = GELU(fc1(LN2(t))); tokens in and out. */
  forwardTokens(t: Tensor, fused: { norm?: LayerNorm; residual?: Tensor | null; scale?: Tensor | null }): Tensor {
    const h = fusedLinear(t, value(this.fc1.weight), value(this.fc1.bias), { norm: fused.norm?.options, activation: 'gelu' });
    const hImg = h.permute([0, 3, 1, 2]);
    const h2 = fusedConv2d(hImg, value(this.dwconv.weight), value(this.dwconv.bias), {
      padding: 1, groups: this.hidden, residual: hImg,
    });
    return fusedLinear(h2.permute([0, 2, 3, 1]), value(this.fc2.weight), value(this.fc2.bias), {
      scale: fused.scale ?? null, residual: fused.residual ?? null,
    });
  }
}

export class Block extends Module {
  readonly gamma_1: Slot | null = null;
  readonly gamma_2: Slot | null = null;
  readonly norm1: NormWrapper;
  readonly attn: SecAttention;
  readonly norm2: NormWrapper;
  readonly ffn: FFN;
  readonly pos: Conv2d;
  readonly #derived = new Derived();
  /**
   * @param dropPath this block's stochastic-depth rate (train mode: each residual branch dropped
   *   per sample with this probability).
   */
  constructor(readonly dim: number, heads: number, clusters: number, hidden: number, layerScale: number | null, angle: Slot,
    readonly dropPath = 0, attention: 'sec' | 'window' | 'global' = 'sec') {
    super();
    if (layerScale !== null) {
      this.gamma_1 = this.parameter('gamma_1', [1, dim, 1, 1], { kind: 'constant', value: layerScale });
      this.gamma_2 = this.parameter('gamma_2', [1, dim, 1, 1], { kind: 'constant', value: layerScale });
    }
    this.norm1 = this.child('norm1', new NormWrapper(dim));
    this.attn = this.child('attn', new SecAttention(dim, heads, clusters, angle, attention));
    this.norm2 = this.child('norm2', new NormWrapper(dim));
    this.ffn = this.child('ffn', new FFN(dim, hidden));
    this.pos = this.child('pos', new Conv2d(dim, dim, 3, dim));
  }

  #gammas(live: boolean): [Tensor | null, Tensor | null] {
    return this.#derived.get('gammas', (own) => [
      this.gamma_1 ? own(value(this.gamma_1).reshape([this.dim])) : null,
      this.gamma_2 ? own(value(this.gamma_2).reshape([this.dim])) : null,
    ], live);
  }

  /**
   * x [B, E, H, W] channels-last -> the block's output, same shape and layout. In train mode with
   * drop path the residual adds run on their own (the branch is dropped per sample first).
   */
  forward(x: Tensor, ctx?: AttnContext, run: Run = { live: false, training: false }): Tensor {
    return tidy(() => {
      const [g1, g2] = this.#gammas(run.live);
      const p = run.training ? this.dropPath : 0;
      const branch = (residual: Tensor, f: (fused: { residual: Tensor | null }) => Tensor): Tensor => {
        if (p === 0) return f({ residual });
        return add(residual, dropPath(f({ residual: null }), p));
      };
      const x1 = fusedConv2d(x, value(this.pos.weight), value(this.pos.bias), { padding: 1, groups: this.dim, residual: x });
      const t1 = x1.permute([0, 2, 3, 1]);
      const t2 = branch(t1, ({ residual }) => this.attn.forwardTokens(t1, { norm: this.norm1.norm, residual, scale: g1 }, ctx));
      const t3 = branch(t2, ({ residual }) => this.ffn.forwardTokens(t2, { norm: this.norm2.norm, residual, scale: g2 }));
      return t3.permute([0, 3, 1, 2]);
    });
  }

  releaseDerived(): void {
    this.#derived.release();
  }
}

/** The 2-D RoPE angles of a stage (a buffer of the checkpoint): a_m = 10000^(-m/(n-1)), n = d/4, each twice. */
export class RoPE extends Module {
  readonly angle: Slot;
  constructor(headDim: number) {
    super();
    this.angle = this.buffer('angle', [headDim / 2], {
      kind: 'fn',
      fill: (len) => {
        const n = len / 2;
        const a = new Float32Array(len);
        for (let m = 0; m < n; m++) a[2 * m] = a[2 * m + 1] = 10000 ** -(n > 1 ? m / (n - 1) : 0);
        return a;
      },
    });
  }
}

export class Downsample extends Module {
  readonly reduction: Conv2d;
  readonly norm: BatchNorm2d;
  readonly #derived = new Derived();
  constructor(inDim: number, outDim: number) {
    super();
    this.reduction = this.child('reduction', new Conv2d(inDim, outDim, 3));
    this.norm = this.child('norm', new BatchNorm2d(outDim));
  }
  forward(x: Tensor, run: Run = { live: false, training: false }): Tensor {
    const w = value(this.reduction.weight);
    if (run.training)
      return tidy(() => this.norm.forwardTrain(conv2d(x, w, value(this.reduction.bias), { stride: 2, padding: 1 })));
    return tidy(() => {
      const f = this.#derived.get('bn', (own) => {
        const r = this.norm.affine(this.reduction, run.live);
        return { scale: own(r.scale), bias: own(r.bias) };
      }, run.live);
      return fusedConv2d(x, w, f.bias, { stride: 2, padding: 1, scale: f.scale });
    });
  }
  releaseDerived(): void {
    this.#derived.release();
  }
}

export class Stage extends Module {
  readonly RoPE: RoPE;
  readonly blocks: ModuleList<Block>;
  readonly downsample: Downsample | null = null;
  constructor(readonly index: number, config: SecViTConfig) {
    super();
    const e = config.embedDims[index];
    const heads = config.numHeads[index];
    this.RoPE = this.child('RoPE', new RoPE(e / heads));
    const ls = config.layerScales[index] ? config.layerScaleInit : null;
    // Stochastic depth: linearly from 0 to the rate over all blocks (torch.linspace).
    const total = config.depths.reduce((a, b) => a + b, 0);
    const first = config.depths.slice(0, index).reduce((a, b) => a + b, 0);
    const rate = (j: number) => (total > 1 ? (config.dropPathRate * (first + j)) / (total - 1) : 0);
    this.blocks = this.child('blocks', new ModuleList(config.numClusters[index].map((c, j) =>
      new Block(e, heads, c, hiddenDim(config, index), ls, this.RoPE.angle, rate(j), config.attention ?? 'sec'))));
    if (index < 3) this.downsample = this.child('downsample', new Downsample(e, config.embedDims[index + 1]));
  }
}

class ConvStem extends Module {
  readonly proj: ModuleList<Conv2d | BatchNorm2d>;
  readonly #derived = new Derived();
  constructor(e0: number) {
    super();
    const half = Math.floor(e0 / 2);
    this.proj = this.child('proj', new ModuleList<Conv2d | BatchNorm2d>([
      new Conv2d(3, half, 3), new BatchNorm2d(half), new Conv2d(half, half, 3), new BatchNorm2d(half),
      new Conv2d(half, half, 3), new BatchNorm2d(half), new Conv2d(half, e0, 3), new BatchNorm2d(e0),
    ], [0, 1, 3, 4, 6, 7, 9, 10]));
  }
  /** pixels [B, 3, H, W] -> [B, E0, H/4, W/4] channels-last. */
  forward(pixels: Tensor, run: Run = { live: false, training: false }): Tensor {
    if (run.training) {
      // conv -> batch norm on the batch's statistics (GELU fused, but for the last).
      return tidy(() => {
        let x = pixels;
        for (let i = 0; i < 8; i += 2) {
          const conv = this.proj.items[i] as Conv2d;
          const stride = i === 0 || i === 6 ? 2 : 1;
          x = conv2d(x, value(conv.weight), value(conv.bias), { stride, padding: 1 });
          x = (this.proj.items[i + 1] as BatchNorm2d).forwardTrain(x, i < 6 ? 'gelu' : 'none');
        }
        return x;
      });
    }
    return tidy(() => {
      const convs = this.#derived.get('bn', (own) => {
        const out: { weight: Tensor; scale: Tensor; bias: Tensor }[] = [];
        for (let i = 0; i < 8; i += 2) {
          const conv = this.proj.items[i] as Conv2d;
          const r = (this.proj.items[i + 1] as BatchNorm2d).affine(conv, run.live);
          out.push({ weight: value(conv.weight), scale: own(r.scale), bias: own(r.bias) });
        }
        return out;
      }, run.live);
      let x = fusedConv2d(pixels, convs[0].weight, convs[0].bias, { stride: 2, padding: 1, scale: convs[0].scale, activation: 'gelu' });
      x = fusedConv2d(x, convs[1].weight, convs[1].bias, { padding: 1, scale: convs[1].scale, activation: 'gelu' });
      x = fusedConv2d(x, convs[2].weight, convs[2].bias, { padding: 1, scale: convs[2].scale, activation: 'gelu' });
      return fusedConv2d(x, convs[3].weight, convs[3].bias, { stride: 2, padding: 1, scale: convs[3].scale });
    });
  }
  releaseDerived(): void {
    this.#derived.release();
  }
}

// ---- the model ---------------------------------------------------------------------------------

export type SecViTOptions = ModelOptions;

/** timm-style pretrained configuration: what inputs the published weights expect. */
export const PRETRAINED_CFG = Object.freeze({
  inputSize: Object.freeze([3, 224, 224] as const),
  mean: IMAGENET_MEAN,
  std: IMAGENET_STD,
  cropPct: 0.875,
  interpolation: 'bicubic' as const,
  numClasses: 1000,
  firstConv: 'patch_embed.proj.0',
  classifier: 'head',
});

/** The smallest input side: every stage keeps at least one token per side. */
export const MIN_INPUT_SIZE = 32;

const convOut = (n: number): number => Math.floor((n - 1) / 2) + 1;  // 3x3, stride 2, padding 1

export class SecViT extends VisionModel {
  readonly family = 'secvit' as const;
  readonly className = 'SecViT';
  readonly config: SecViTConfig;
  readonly patch_embed: ConvStem;
  readonly layers: ModuleList<Stage>;
  readonly proj: Conv2d;
  readonly norm: BatchNorm2d;
  readonly head: Conv2d;
  readonly #derived = new Derived();

  /** @internal Use SecViT.create, SecViT.load or createModel. The slots are empty until filled. */
  constructor(config: SecViTConfig, device: Device, dtype: ModelDType) {
    super(device, dtype);
    this.config = config;
    this.patch_embed = this.child('patch_embed', new ConvStem(config.embedDims[0]));
    this.layers = this.child('layers', new ModuleList([0, 1, 2, 3].map((i) => new Stage(i, config))));
    this.proj = this.child('proj', new Conv2d(config.embedDims[3], config.projection, 1));
    this.norm = this.child('norm', new BatchNorm2d(config.projection));
    this.head = this.child('head', new Conv2d(config.projection, config.numClasses, 1));
  }

  get numClasses(): number {
    return this.config.numClasses;
  }

  get pretrainedCfg(): PretrainedCfg {
    return PRETRAINED_CFG;
  }

  /** A randomly initialised model (seeded: the same seed gives the same weights everywhere). */
  static create(config: ConfigInput | string, options: SecViTOptions = {}): SecViT {
    const { device, dtype, seed } = checkOptions('SecViT.create', options, CREATE_OPTION_KEYS);
    const model = new SecViT(resolveConfig(config), device, dtype);
    model.initializeWeights(seed);
    return model;
  }

  /**
   * Loads a checkpoint (a path or bytes: safetensors, or a PyTorch `.pth` zip) into a new model.
   * The config comes from `options.config`, else the file's metadata, else the weights' shapes.
   * `options.onProgress(done, total)` follows the bytes of weights read (at most 101 calls,
   * from (0, total) to (total, total)), e.g. for a progress bar.
   */
  static load(input: string | Uint8Array, options: LoadOptions = {}): SecViT {
    return loadSecViT(input, options);
  }

  /** Learnable parameters of a config, without building its weights. */
  static countParameters(config: ConfigInput | string): number {
    return new SecViT(resolveConfig(config), 'cpu', 'float32').parameterCount;
  }

  protected checkInputSize(op: string, height: number, width: number): void {
    if (height < MIN_INPUT_SIZE || width < MIN_INPUT_SIZE)
      throw new RangeError(`${op}: pixels must be at least ${MIN_INPUT_SIZE}x${MIN_INPUT_SIZE}, got ${height}x${width}`);
  }

  protected checkHeadInput(features: Tensor): void {
    const e3 = this.config.embedDims[3];
    if (features.shape.length !== 4 || features.shape[1] !== e3)
      throw new RangeError(`SecViT.forwardHead: features must be [B, ${e3}, H, W], got [${features.shape.join(', ')}]`);
  }

  /** proj, BN, swish, global average pool, then the classifier ([B, P] with preLogits). */
  protected runHead(features: Tensor, preLogits: boolean, run: Run): Tensor {
    const x = features.contiguous('channelsLast');
    const [b] = x.shape;
    let p: Tensor;
    if (run.training) {
      // proj, then batch norm on the batch's statistics with SiLU fused.
      p = this.norm.forwardTrain(conv2d(x, value(this.proj.weight), value(this.proj.bias)), 'silu');
    } else {
      const rt = this.#derived.get('head', (own) => {
        const f = this.norm.affine(this.proj, run.live);
        return { scale: own(f.scale), projBias: own(f.bias) };
      }, run.live);
      // proj (1x1 conv) + BN + SiLU in one pass over the channels-last features.
      p = fusedConv2d(x, value(this.proj.weight), rt.projBias, { scale: rt.scale, activation: 'silu' });
    }
    const pooled = globalAvgPool2d(p).reshape([b, this.config.projection]);
    return preLogits ? pooled : this.classifier(pooled, value(this.head.weight), value(this.head.bias));
  }

  /**
   * The stem and stages; every stage's output [B, E_i, H_i, W_i] (channels-last) before its
   * downsample with `features`. Intermediate activations are disposed as soon as they are queued.
   */
  protected runBackbone(x: Tensor, opts: BackboneOptions, run: Run): { last: Tensor; features: Tensor[] } {
    const features: Tensor[] = [];
    let h = this.patch_embed.forward(x, run);
    for (const stage of this.layers.items) {
      stage.blocks.items.forEach((block, j) => {
        const y = block.forward(h, { stage: stage.index, block: j, record: opts.record }, run);
        h.dispose();
        h = y;
      });
      if (opts.features) features.push(h);
      if (stage.downsample) {
        const y = stage.downsample.forward(h, run);
        if (!opts.features) h.dispose();
        h = y;
      }
    }
    return { last: h, features };
  }

  /** Expected output sizes of each stage for an input of height x width. */
  static stageSizes(height: number, width: number): [number, number][] {
    let h = convOut(convOut(height));
    let w = convOut(convOut(width));
    const out: [number, number][] = [];
    for (let i = 0; i < 4; i++) {
      out.push([h, w]);
      h = convOut(h);
      w = convOut(w);
    }
    return out;
  }

  /** @internal Drops views and batch-norm scales and biases (after the parameters change). */
  releaseDerived(): void {
    this.#derived.release();
    this.patch_embed.releaseDerived();
    for (const s of this.layers.items) {
      s.downsample?.releaseDerived();
      for (const b of s.blocks.items) b.releaseDerived();
    }
  }

  /** The config in the reference's keys (what `save` writes into the metadata). */
  referenceConfig(): ReturnType<typeof toReferenceConfig> {
    return toReferenceConfig(this.config);
  }
}

// ---- loading -----------------------------------------------------------------------------------

function configOf(ck: Checkpoint, given: LoadOptions['config']): ReturnType<typeof resolveConfig> {
  if (given !== undefined) return resolveConfig(given);
  const family = familyOfKeys(ck.tensors.keys());
  if (family === 'swin' || family === 'vit')
    throw new CheckpointError(`SecViT.load: this is a ${family === 'swin' ? 'Swin' : 'ViT'} checkpoint (torchvision's keys); load it with loadModel()`);
  const meta = ck.metadata.get('config');
  if (meta !== undefined) return resolveConfig(meta);
  const name = ck.metadata.get('model');
  if (name !== undefined && canonicalName(name)) return resolveConfig(name);
  return inferConfig(new Map([...ck.tensors].map(([k, t]) => [k, t.shape])));
}

/** Loads a checkpoint (path or bytes; safetensors or `.pth`) into a new SecViT. */
export function loadSecViT(input: string | Uint8Array, options: LoadOptions = {}): SecViT {
  checkOptions('SecViT.load', options, LOAD_OPTION_KEYS);
  checkProgress('SecViT.load', options.onProgress);
  const ck = readCheckpoint(input, { key: options.key });
  try {
    return modelFromCheckpoint(ck, options);
  } finally {
    ck.close();
  }
}

/** @internal A new SecViT with the weights of a checkpoint already read (`ck` stays open). */
export function modelFromCheckpoint(ck: Checkpoint, options: Omit<LoadOptions, 'key'> = {}): SecViT {
  const { device, dtype } = checkOptions('SecViT.load', options);
  return fillFromCheckpoint(new SecViT(configOf(ck, options.config), device, dtype), ck, options);
}

/**
 * ImageNet normalisation of [B, 3, H, W] pixels in [0, 1]: (x - mean) / std per channel
 * (torchvision's Normalize; defaults: the published models' PRETRAINED_CFG mean and std).
 * Queued on the input's device.
 */
export function normalize(pixels: Tensor | OrtLikeTensor, options: { mean?: readonly number[]; std?: readonly number[] } = {}): Tensor {
  const x = pixels instanceof Tensor ? pixels : tensor(pixels as OrtLikeTensor);
  try {
    if (x.shape.length !== 4 || x.shape[1] !== 3)
      throw new RangeError(`normalize: pixels must be [B, 3, H, W], got [${x.shape.join(', ')}]`);
    const mean = options.mean ?? PRETRAINED_CFG.mean;
    const std = options.std ?? PRETRAINED_CFG.std;
    for (const [name, v] of [['mean', mean], ['std', std]] as const)
      if (!Array.isArray(v) || v.length !== 3 || !v.every((n) => typeof n === 'number' && Number.isFinite(n)))
        throw new TypeError(`normalize: ${name} must be 3 finite numbers, got ${JSON.stringify(v)}`);
    if (std.some((s) => s === 0)) throw new RangeError('normalize: std must not contain 0');
    return tidy(() => {
      const m = tensor(mean.map((v) => -v), [1, 3, 1, 1], { device: x.device }).cast(x.dtype);
      const s = tensor(std.map((v) => 1 / v), [1, 3, 1, 1], { device: x.device }).cast(x.dtype);
      return mul(add(x, m), s);
    });
  } finally {
    if (x !== pixels) x.dispose();
  }
}

export { BatchNorm2d, Conv2d, LayerNorm, ModuleList, checkOptions, type ClusterRecord };
