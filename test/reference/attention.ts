// Double-precision references for SEC, window and global attention, written from SPEC sections
// 1 and 2 (not from the kernels). Inputs are [B, H, L, D] row-major.

export interface AttnShape {
  b: number;
  h: number;
  l: number;
  d: number;
}

function attendRows(
  q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, base: number, d: number,
  queries: number[], keysOf: (qi: number) => number[], out: Float64Array,
): void {
  for (const i of queries) {
    const keys = keysOf(i);
    const logits = keys.map((j) => {
      let s = 0;
      for (let c = 0; c < d; c++) s += q[base + i * d + c] * k[base + j * d + c];
      return s;
    });
    const mx = Math.max(...logits);
    const w = logits.map((x) => Math.exp(x - mx));
    const sum = w.reduce((a, b) => a + b, 0);
    for (let c = 0; c < d; c++) {
      let acc = 0;
      keys.forEach((j, idx) => (acc += w[idx] * v[base + j * d + c]));
      out[base + i * d + c] = acc / sum;
    }
  }
}

/** SPEC 1.1-1.2: one head's cosine scores against the mean key, in double. */
export function secScoresRef(k: ArrayLike<number>, base: number, l: number, d: number): number[] {
  const g = new Float64Array(d);
  for (let i = 0; i < l; i++) for (let c = 0; c < d; c++) g[c] += k[base + i * d + c];
  for (let c = 0; c < d; c++) g[c] /= l;
  const gn = Math.max(Math.hypot(...g), 1e-12);
  const s: number[] = [];
  for (let i = 0; i < l; i++) {
    let dot = 0;
    let kn = 0;
    for (let c = 0; c < d; c++) {
      const x = k[base + i * d + c];
      dot += (g[c] / gn) * x;
      kn += x * x;
    }
    s.push(dot / Math.max(Math.sqrt(kn), 1e-12));
  }
  return s;
}

/** SPEC 1.1-1.3: the stable order of one head's tokens by cosine similarity to the mean key. */
export function secOrderRef(k: ArrayLike<number>, base: number, l: number, d: number): number[] {
  const s = secScoresRef(k, base, l, d);
  return Array.from({ length: l }, (_, i) => i).sort((a, b) => s[a] - s[b] || a - b);
}

export function secAttentionRef(
  q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, { b, h, l, d }: AttnShape, clusters: number,
): { out: Float64Array; order: Int32Array } {
  const out = new Float64Array(b * h * l * d);
  const order = new Int32Array(b * h * l);
  const c = Math.max(clusters, 1);
  for (let bh = 0; bh < b * h; bh++) {
    const base = bh * l * d;
    const perm = secOrderRef(k, base, l, d);
    order.set(perm, bh * l);
    const clusterOf = new Int32Array(l);
    const members: number[][] = [];
    for (let ci = 0; ci < c; ci++) {
      const lo = Math.floor((ci * l) / c);
      const hi = Math.floor(((ci + 1) * l) / c);
      members.push(perm.slice(lo, hi));
      for (let p = lo; p < hi; p++) clusterOf[perm[p]] = ci;
    }
    attendRows(q, k, v, base, d, perm, (i) => members[clusterOf[i]], out);
  }
  return { out, order };
}

export function globalAttentionRef(q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, s: AttnShape): Float64Array {
  const out = new Float64Array(s.b * s.h * s.l * s.d);
  const all = Array.from({ length: s.l }, (_, i) => i);
  for (let bh = 0; bh < s.b * s.h; bh++) attendRows(q, k, v, bh * s.l * s.d, s.d, all, () => all, out);
  return out;
}

/**
 * SPEC 2: pad the grid to multiples of the window, roll it by (-sh, -sw), cut windows; padded
 * keys are masked; with a shift, Swin's regions of the rolled padded grid
 * ([0, P-w), [P-w, P-s), [P-s, P) per axis) may only attend within themselves.
 */
export function windowAttentionRef(
  q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, s: AttnShape,
  height: number, width: number, wh: number, ww: number, sh: number, sw: number,
): Float64Array {
  const out = new Float64Array(s.b * s.h * s.l * s.d);
  const keysOf = windowKeysOf(s, height, width, wh, ww, sh, sw);
  const tokens = Array.from({ length: s.l }, (_, i) => i);
  for (let bh = 0; bh < s.b * s.h; bh++) attendRows(q, k, v, bh * s.l * s.d, s.d, tokens, (i) => keysOf(bh, i), out);
  return out;
}

/** Each token's keys under SPEC 2's windows (see windowAttentionRef). */
export function windowKeysOf(s: AttnShape, height: number, width: number, wh: number, ww: number, sh: number, sw: number): (bh: number, i: number) => number[] {
  const hp = Math.ceil(height / wh) * wh;
  const wp = Math.ceil(width / ww) * ww;
  const region = (x: number, p: number, w: number, sft: number) => (sft === 0 ? 0 : x < p - w ? 0 : x < p - sft ? 1 : 2);
  // For each original token: its window id and region label in the rolled grid.
  const win = new Map<number, { window: number; label: number }>();
  for (let ys = 0; ys < hp; ys++) {
    for (let xs = 0; xs < wp; xs++) {
      const y = (ys + sh) % hp;
      const x = (xs + sw) % wp;
      if (y >= height || x >= width) continue;
      win.set(y * width + x, {
        window: Math.floor(ys / wh) * (wp / ww) + Math.floor(xs / ww),
        label: region(ys, hp, wh, sh) * 3 + region(xs, wp, ww, sw),
      });
    }
  }
  const tokens = Array.from({ length: s.l }, (_, i) => i);
  const keys = tokens.map((i) => {
    const wi = win.get(i)!;
    return tokens.filter((j) => win.get(j)!.window === wi.window && win.get(j)!.label === wi.label);
  });
  return (_bh, i) => keys[i];
}

/**
 * Gradients of <attention(q, k, v), dO> over groups of tokens (each query attends to
 * `keysOf(query)`), from the definition: P = softmax(q k^T) per query, dV_j += P_ij dO_i,
 * dP_ij = <dO_i, v_j>, dS_ij = P_ij (dP_ij - sum_k P_ik dP_ik) (the softmax Jacobian), dQ_i =
 * sum_j dS_ij k_j, dK_j += dS_ij q_i. [B, H, L, D] row-major.
 */
export function attentionGradRef(
  q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, dO: ArrayLike<number>, { b, h, l, d }: AttnShape,
  keysOf: (bh: number, i: number) => number[],
): { q: Float64Array; k: Float64Array; v: Float64Array } {
  const gq = new Float64Array(b * h * l * d);
  const gk = new Float64Array(gq.length);
  const gv = new Float64Array(gq.length);
  for (let bh = 0; bh < b * h; bh++) {
    const base = bh * l * d;
    for (let i = 0; i < l; i++) {
      const keys = keysOf(bh, i);
      const logits = keys.map((j) => {
        let s = 0;
        for (let c = 0; c < d; c++) s += q[base + i * d + c] * k[base + j * d + c];
        return s;
      });
      const mx = Math.max(...logits);
      const w = logits.map((x) => Math.exp(x - mx));
      const sum = w.reduce((x, y) => x + y, 0);
      const p = w.map((x) => x / sum);
      const dp = keys.map((j) => {
        let s = 0;
        for (let c = 0; c < d; c++) s += dO[base + i * d + c] * v[base + j * d + c];
        return s;
      });
      const pdp = p.reduce((acc, x, idx) => acc + x * dp[idx], 0);
      keys.forEach((j, idx) => {
        const ds = p[idx] * (dp[idx] - pdp);
        for (let c = 0; c < d; c++) {
          gv[base + j * d + c] += p[idx] * dO[base + i * d + c];
          gq[base + i * d + c] += ds * k[base + j * d + c];
          gk[base + j * d + c] += ds * q[base + i * d + c];
        }
      });
    }
  }
  return { q: gq, k: gk, v: gv };
}

/** The keys of each query under SEC with the order of secOrderRef (the order is a constant). */
export function secKeysOf(k: ArrayLike<number>, { l, d }: AttnShape, clusters: number): (bh: number, i: number) => number[] {
  const cache = new Map<number, { members: number[][]; clusterOf: Int32Array }>();
  const c = Math.max(clusters, 1);
  return (bh, i) => {
    let e = cache.get(bh);
    if (!e) {
      const perm = secOrderRef(k, bh * l * d, l, d);
      const members: number[][] = [];
      const clusterOf = new Int32Array(l);
      for (let ci = 0; ci < c; ci++) {
        const lo = Math.floor((ci * l) / c);
        const hi = Math.floor(((ci + 1) * l) / c);
        members.push(perm.slice(lo, hi));
        for (let p = lo; p < hi; p++) clusterOf[perm[p]] = ci;
      }
      cache.set(bh, (e = { members, clusterOf }));
    }
    return e.members[e.clusterOf[i]];
  };
}
