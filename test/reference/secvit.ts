// SecViT's forward in double precision, written from SPEC section 3 in the reference's own
// layout (NCHW, unfused, batch norm applied as such), on the per-layer references. It exists to
// check the model's composition (layouts, views, fusions, folding) at sizes the golden files do
// not cover: odd, non-square, with token counts the cluster count does not divide.
import { secAttentionRef } from './attention.js';
import { act, avgPoolRef, batchNormRef, conv2dRef, layerNormRef, rope2dRef } from './layers.js';

export type Weights = Map<string, { shape: number[]; data: Float64Array }>;
type T = { data: Float64Array; shape: number[] };

export interface RefConfig {
  embed_dims: number[];
  depths: number[];
  num_heads: number[];
  num_clusterss: number[][];
  layerscales: boolean[];
}

export function secvitRef(w: Weights, cfg: RefConfig, x: T): { logits: Float64Array; features: T[]; orders: Int32Array[] } {
  const p = (k: string): Float64Array => {
    const v = w.get(k);
    if (!v) throw new Error(`secvitRef: no ${k}`);
    return v.data;
  };
  const shapeOf = (k: string): number[] => w.get(k)!.shape;
  const conv = (t: T, name: string, stride = 1, pad = 0, groups = 1): T => {
    const r = conv2dRef(t.data, t.shape, p(`${name}.weight`), shapeOf(`${name}.weight`), {
      stride: [stride, stride], padding: [pad, pad], groups, bias: p(`${name}.bias`),
    });
    return { data: r.y, shape: r.shape };
  };
  const bn = (t: T, name: string): T => ({
    data: batchNormRef(t.data, t.shape, p(`${name}.running_mean`), p(`${name}.running_var`), p(`${name}.weight`), p(`${name}.bias`), 1e-5),
    shape: t.shape,
  });
  const map = (t: T, f: (v: number, i: number) => number): T => ({ data: t.data.map(f), shape: t.shape });
  const addT = (a: T, b: T, scale?: Float64Array): T => {
    const inner = a.shape[2] * a.shape[3];
    return map(a, (v, i) => v + (scale ? scale[Math.floor(i / inner) % a.shape[1]] : 1) * b.data[i]);
  };

  let h = x;
  h = map(bn(conv(h, 'patch_embed.proj.0', 2, 1), 'patch_embed.proj.1'), (v) => act('gelu', v));
  h = map(bn(conv(h, 'patch_embed.proj.3', 1, 1), 'patch_embed.proj.4'), (v) => act('gelu', v));
  h = map(bn(conv(h, 'patch_embed.proj.6', 1, 1), 'patch_embed.proj.7'), (v) => act('gelu', v));
  h = bn(conv(h, 'patch_embed.proj.9', 2, 1), 'patch_embed.proj.10');
  const features: T[] = [];
  const orders: Int32Array[] = [];
  for (let i = 0; i < 4; i++) {
    const e = cfg.embed_dims[i];
    const heads = cfg.num_heads[i];
    const d = e / heads;
    const angle = p(`layers.${i}.RoPE.angle`);
    for (let j = 0; j < cfg.depths[i]; j++) {
      const pre = `layers.${i}.blocks.${j}`;
      const [b, , hh, ww] = h.shape;
      const L = hh * ww;
      h = addT(h, conv(h, `${pre}.pos`, 1, 1, e));
      const ln1: T = { data: layerNormRef(h.data, h.shape, 1, 1e-6, p(`${pre}.norm1.norm.weight`), p(`${pre}.norm1.norm.bias`)), shape: h.shape };
      const qkv = conv(ln1, `${pre}.attn.qkv`);
      // [B, 3E, H, W] -> q, k, v [B, heads, L, d]; channel m*E + head*d + c.
      const part = (m: number): Float64Array => {
        const out = new Float64Array(b * heads * L * d);
        for (let bi = 0; bi < b; bi++)
          for (let hd = 0; hd < heads; hd++)
            for (let t = 0; t < L; t++)
              for (let c = 0; c < d; c++) out[((bi * heads + hd) * L + t) * d + c] = qkv.data[(bi * 3 * e + m * e + hd * d + c) * L + t];
        return out;
      };
      const shape4 = [b, heads, L, d];
      const q = rope2dRef(part(0), shape4, angle, ww);
      const k = rope2dRef(part(1), shape4, angle, ww).map((v) => v * d ** -0.5);
      const vv = part(2);
      const vImg: T = { data: new Float64Array(b * e * L), shape: [b, e, hh, ww] };
      for (let bi = 0; bi < b; bi++)
        for (let c = 0; c < e; c++)
          for (let t = 0; t < L; t++) vImg.data[(bi * e + c) * L + t] = qkv.data[(bi * 3 * e + 2 * e + c) * L + t];
      const lepe = conv(vImg, `${pre}.attn.lepe`, 1, 2, e);
      const sec = secAttentionRef(q, k, vv, { b, h: heads, l: L, d }, cfg.num_clusterss[i][j]);
      orders.push(sec.order);
      const o: T = { data: new Float64Array(b * e * L), shape: [b, e, hh, ww] };
      for (let bi = 0; bi < b; bi++)
        for (let hd = 0; hd < heads; hd++)
          for (let t = 0; t < L; t++)
            for (let c = 0; c < d; c++) o.data[(bi * e + hd * d + c) * L + t] = sec.out[((bi * heads + hd) * L + t) * d + c];
      const y = conv(addT(o, lepe), `${pre}.attn.out_proj`);
      h = addT(h, y, cfg.layerscales[i] ? p(`${pre}.gamma_1`) : undefined);
      const ln2: T = { data: layerNormRef(h.data, h.shape, 1, 1e-6, p(`${pre}.norm2.norm.weight`), p(`${pre}.norm2.norm.bias`)), shape: h.shape };
      let f = map(conv(ln2, `${pre}.ffn.fc1`), (v) => act('gelu', v));
      f = addT(f, conv(f, `${pre}.ffn.dwconv`, 1, 1, f.shape[1]));
      h = addT(h, conv(f, `${pre}.ffn.fc2`), cfg.layerscales[i] ? p(`${pre}.gamma_2`) : undefined);
    }
    features.push(h);
    if (i < 3) h = bn(conv(h, `layers.${i}.downsample.reduction`, 2, 1), `layers.${i}.downsample.norm`);
  }
  const pr = map(bn(conv(h, 'proj'), 'norm'), (v) => act('silu', v));
  const pooled: T = { data: avgPoolRef(pr.data, pr.shape), shape: [pr.shape[0], pr.shape[1], 1, 1] };
  const logits = conv(pooled, 'head').data;
  return { logits, features, orders };
}
