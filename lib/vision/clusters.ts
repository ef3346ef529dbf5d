// Pictures of SEC's clusters (the paper's figure 4): the model's input crop with every token's
// patch tinted by the cluster SEC put it in, one panel per (stage, block, head), a caption above
// each. Cluster c of a block with C clusters over L tokens holds the tokens at sorted positions
// [floor(cL/C), floor((c+1)L/C)) of that head's order (SPEC 1, step 4).
import { noGrad } from '../autograd/graph.js';
import { tensor } from '../tensor.js';
import type { ClusterRecord, VisionModel } from '../models/base.js';
import { drawText, GLYPH_H, textWidth } from './font.js';
import { decodeImage, type ImageInput } from './image.js';
import { resizeAndCrop, resolveOptions, toNormalizedArray } from './preprocess.js';
import type { RawImage } from './resize.js';

/** Which block and head a panel shows. */
export interface ClusterPanel {
  stage: number;
  block: number;
  head: number;
}

export interface ClusterPictureOptions {
  /** One stage only (default: one panel for each stage 0-2, the stages with several clusters). */
  stage?: number;
  /** Block within the stage. Default 0. */
  block?: number;
  /** Attention head. Default 0. */
  head?: number;
  /** Tint opacity over the image, 0..1. Default 0.6. */
  opacity?: number;
}

export interface ClusterPicture {
  /** 8-bit RGB: the panels side by side, a caption strip above each. */
  image: RawImage;
  panels: (ClusterPanel & { clusters: number; gridHeight: number; gridWidth: number; caption: string })[];
}

/** Cluster of every token (row-major over the block's grid), from one head's order. */
export function clusterOfTokens(order: ArrayLike<number>, clusters: number): Int32Array {
  const L = order.length;
  const C = Math.max(1, Math.min(clusters, L));
  const out = new Int32Array(L).fill(-1);
  for (let c = 0; c < C; c++) {
    const lo = Math.floor((c * L) / C);
    const hi = Math.floor(((c + 1) * L) / C);
    for (let p = lo; p < hi; p++) out[order[p]] = c;
  }
  return out;
}

/** A qualitative palette: hues a golden angle apart, three brightness levels. */
export function clusterColor(k: number): [number, number, number] {
  const h = (k * 0.618033988749895) % 1;
  const s = k % 2 === 0 ? 0.9 : 0.6;
  const v = [0.95, 0.75, 0.55][k % 3];
  const i = Math.floor(h * 6);
  const f = h * 6 - i;
  const [p, q, t] = [v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)];
  const rgb = [[v, t, p], [q, v, p], [p, v, t], [p, q, v], [t, p, v], [v, p, q]][i % 6];
  return rgb.map((x) => Math.round(x * 255)) as [number, number, number];
}

/** `crop` with each pixel tinted by the cluster of the token covering it. */
export function tintByCluster(crop: RawImage, ids: Int32Array, gridH: number, gridW: number, opacity = 0.6): RawImage {
  const { width, height } = crop;
  const out = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    const ty = Math.min(gridH - 1, Math.floor((y * gridH) / height));
    for (let x = 0; x < width; x++) {
      const tx = Math.min(gridW - 1, Math.floor((x * gridW) / width));
      const color = clusterColor(ids[ty * gridW + tx]);
      const o = (y * width + x) * 3;
      for (let c = 0; c < 3; c++) out[o + c] = Math.round((1 - opacity) * crop.data[o + c] + opacity * color[c]);
    }
  }
  return { data: out, width, height, channels: 3 };
}

function checkIndex(v: number | undefined, name: string, count: number, what: string): void {
  if (v === undefined) return;
  if (!Number.isInteger(v) || v < 0 || v >= count) throw new RangeError(`clusters: ${name} must be an integer in 0..${count - 1} (${what}), got ${String(v)}`);
}

/**
 * Runs `model` (any family with SEC attention: SecViT, SEC-Swin, SEC-ViT) on `image` (the
 * model's evaluation transform) and pictures the clusters of the chosen blocks. The model's
 * orders are read and released here.
 */
export async function clusterPicture(model: VisionModel, image: ImageInput, options: ClusterPictureOptions = {}): Promise<ClusterPicture> {
  const opacity = options.opacity ?? 0.6;
  if (typeof opacity !== 'number' || !(opacity >= 0 && opacity <= 1)) throw new RangeError(`clusters: opacity must be in [0, 1], got ${String(opacity)}`);
  // The model's evaluation transform, keeping the 8-bit crop to paint on.
  const pre = model.preprocessing();
  const o = resolveOptions({ size: pre.size, resize: pre.resize, interpolation: pre.interpolation, mean: pre.mean, std: pre.std });
  const crop = resizeAndCrop(await decodeImage(image, 'clusters'), o);
  const x = tensor(toNormalizedArray(crop, o), [1, 3, o.size, o.size], { device: model.device });
  let blocks: ClusterRecord[] = [];
  try {
    const r = noGrad(() => model.clusters(x));
    r.logits.dispose();
    blocks = r.blocks;
    if (blocks.length === 0) throw new RangeError(`clusters: the model (${model.className}) has no SEC attention block to picture`);
    // Stages with SEC records, and per stage its blocks and heads, from what the model recorded.
    const recStages = [...new Set(blocks.map((b) => b.stage))];
    const stageCount = Math.max(...recStages) + 1;
    checkIndex(options.stage, 'stage', stageCount, `the model has SEC attention in stages ${recStages.join(', ')}`);
    if (options.stage !== undefined && !recStages.includes(options.stage))
      throw new RangeError(`clusters: stage ${options.stage} has no SEC attention (stages with it: ${recStages.join(', ')})`);
    // Default: the first three stages with several clusters (the last ones are often global).
    const several = recStages.filter((st) => blocks.some((b) => b.stage === st && b.clusters > 1));
    const stages = options.stage !== undefined ? [options.stage] : (several.length ? several : recStages).slice(0, 3);
    for (const st of stages) {
      const inStage = blocks.filter((b) => b.stage === st);
      checkIndex(options.block, 'block', inStage.length, `stage ${st} has ${inStage.length} blocks`);
      checkIndex(options.head, 'head', inStage[0].order.shape[1], `stage ${st} has ${inStage[0].order.shape[1]} heads`);
    }
    const wanted: ClusterPanel[] = stages.map((stage) => ({ stage, block: options.block ?? 0, head: options.head ?? 0 }));
    const panels: ClusterPicture['panels'] = [];
    const tiles: RawImage[] = [];
    for (const w of wanted) {
      const rec = blocks.find((b) => b.stage === w.stage && b.block === w.block);
      if (!rec) throw new Error(`clusters: no SEC record for stage ${w.stage} block ${w.block}`);
      const extra = rec.extraTokens ?? 0;
      const L = rec.order.shape[2];
      const grid = rec.height * rec.width;
      const heads = rec.order.shape[1];
      const order = (await rec.order.data()) as Int32Array;
      const own = order.subarray(w.head * L, (w.head + 1) * L);
      const clusters = Math.max(1, Math.min(rec.clusters, L));
      // Tokens before the grid (ViT's class token) are clustered too, but have no patch to tint.
      const ids = clusterOfTokens(own, clusters).subarray(extra, extra + grid);
      tiles.push(tintByCluster(crop, ids, rec.height, rec.width, opacity));
      const caption = `stage ${w.stage} block ${w.block} head ${w.head} of ${heads}: ${clusters} cluster${clusters === 1 ? "" : "s"} of ${L} tokens`;
      panels.push({ ...w, clusters, gridHeight: rec.height, gridWidth: rec.width, caption });
    }
    return { image: compose(tiles, panels.map((p) => p.caption)), panels };
  } finally {
    x.dispose();
    for (const b of blocks) b.order.dispose();
  }
}

// Panels side by side on white, each under its caption (wrapped into lines that fit).
function compose(tiles: RawImage[], captions: string[]): RawImage {
  const gap = 8;
  const scale = 1;
  const lineH = (GLYPH_H + 3) * scale;
  const lines = captions.map((c, i) => wrap(c, tiles[i].width, scale));
  const strip = Math.max(...lines.map((l) => l.length)) * lineH + gap;
  const width = tiles.reduce((a, t) => a + t.width, 0) + gap * (tiles.length + 1);
  const height = strip + Math.max(...tiles.map((t) => t.height)) + gap * 2;
  const out = { data: new Uint8Array(width * height * 3).fill(255), width, height, channels: 3 };
  let x0 = gap;
  tiles.forEach((t, i) => {
    lines[i].forEach((line, j) => drawText(out, line, x0, gap + j * lineH, [0, 0, 0], scale));
    for (let y = 0; y < t.height; y++) out.data.set(t.data.subarray(y * t.width * 3, (y + 1) * t.width * 3), ((gap + strip + y) * width + x0) * 3);
    x0 += t.width + gap;
  });
  return out;
}

function wrap(text: string, width: number, scale: number): string[] {
  const out: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    const next = line ? `${line} ${word}` : word;
    if (textWidth(next, scale) > width && line) {
      out.push(line);
      line = word;
    } else line = next;
  }
  if (line) out.push(line);
  return out;
}
