// Bounds on model configs, checked when a config is resolved (every family, every path: a name, a
// JSON string, a checkpoint's metadata, --model), before any module or weight exists. A
// checkpoint's config is untrusted: a 152-byte file asking for 100,000 blocks took 17 s and
// 2.2 GB before these bounds, and a larger one exhausted V8's heap. The limits sit far above every
// published vision transformer (the deepest stage: Swin-G's 42 blocks; the widest: ViT-22B's
// 6,144 channels and 24,576 MLP width; ImageNet-21k's 21,843 classes), and the model a config
// implies is then counted (modules only, nothing allocated) before its weights are read or made.
import { brief } from '../brief.js';

export { brief };

export const MODEL_LIMITS = {
  /** Blocks in one stage (SecViT, Swin) or layers (ViT). */
  blocksPerStage: 256,
  /** Blocks in the whole model. */
  blocks: 512,
  /** Stages (Swin). */
  stages: 8,
  /** Channels of any layer (embedding, hidden, MLP). */
  width: 65_536,
  /** Attention heads per block. */
  heads: 1024,
  /** Output classes. */
  classes: 1_048_576,
  /** Input side, patch and window sizes. */
  imageSize: 16_384,
  /** MLP width over embedding width. */
  mlpRatio: 64,
  /** Parameters the config implies (2^32: 16 GiB of float32). */
  parameters: 2 ** 32,
} as const;

/** An integer within [min, max] (TypeError naming `what` when not an integer, RangeError out of range). */
export function boundedInt(v: unknown, what: string, where: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new TypeError(`${where}: ${what} must be an integer, got ${brief(v)}`);
  if (v < min || v > max) throw new RangeError(`${where}: ${what} must be in [${min}, ${max}], got ${v}`);
  return v;
}


/** Structural equality of two untrusted values, visiting at most `budget` nodes (false beyond). */
export function sameValue(a: unknown, b: unknown, budget = { left: 10_000 }): boolean {
  if (--budget.left < 0) return false;
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return Number.isNaN(a) && Number.isNaN(b);
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a), kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  return ka.every((k) => Object.hasOwn(b, k) && sameValue((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], budget));
}
