// Double-precision references for SEC, window and global attention, written from SPEC sections
// 1 and 2 (not from the kernels). Inputs are [B, H, L, D] row-major.

export interface AttnShape {
  b: number;
  h: number;
  l: number;
  d: number;
}

/** An additive logit for query i and key j (Swin's relative position bias), or none. */
export type LogitBias = (i: number, j: number) => number;

function attendRows(
  q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, base: number, d: number,
  queries: number[], keysOf: (qi: number) => number[], out: Float64Array, bias?: LogitBias,
): void {
  for (const i of queries) {
    const keys = keysOf(i);
    const logits = keys.map((j) => {
      let s = bias ? bias(i, j) : 0;
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
  height: number, width: number, wh: number, ww: number, sh: number, sw: number, bias?: ArrayLike<number>,
): Float64Array {
  const out = new Float64Array(s.b * s.h * s.l * s.d);
  const keysOf = windowKeysOf(s, height, width, wh, ww, sh, sw);
  const tokens = Array.from({ length: s.l }, (_, i) => i);
  for (let bh = 0; bh < s.b * s.h; bh++)
    attendRows(q, k, v, bh * s.l * s.d, s.d, tokens, (i) => keysOf(bh, i), out, bias ? windowBiasOf(bias, s, height, width, wh, ww, sh, sw)(bh) : undefined);
  return out;
}

/**
 * Each token's place in its window of the rolled, padded grid (row * ww + column), as SPEC 2
 * cuts windows; the relative position bias [H, N, N] is indexed by these slots.
 */
export function windowSlotsOf(height: number, width: number, wh: number, ww: number, sh: number, sw: number): Int32Array {
  const hp = Math.ceil(height / wh) * wh;
  const wp = Math.ceil(width / ww) * ww;
  const slot = new Int32Array(height * width);
  for (let ys = 0; ys < hp; ys++)
    for (let xs = 0; xs < wp; xs++) {
      const y = (ys + sh) % hp;
      const x = (xs + sw) % wp;
      if (y < height && x < width) slot[y * width + x] = (ys % wh) * ww + (xs % ww);
    }
  return slot;
}

/** The logit bias of head bh (of B*H) from a [H, N, N] bias by window slots. */
export function windowBiasOf(bias: ArrayLike<number>, s: AttnShape, height: number, width: number, wh: number, ww: number, sh: number, sw: number): (bh: number) => LogitBias {
  const slot = windowSlotsOf(height, width, wh, ww, sh, sw);
  const n = wh * ww;
  return (bh) => (i, j) => bias[((bh % s.h) * n + slot[i]) * n + slot[j]];
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
  /** A logit bias per head, and where each dS_ij goes for the bias's gradient. */
  bias?: { of: (bh: number) => LogitBias; grad: (bh: number, i: number, j: number, ds: number) => void },
): { q: Float64Array; k: Float64Array; v: Float64Array } {
  const gq = new Float64Array(b * h * l * d);
  const gk = new Float64Array(gq.length);
  const gv = new Float64Array(gq.length);
  for (let bh = 0; bh < b * h; bh++) {
    const base = bh * l * d;
    for (let i = 0; i < l; i++) {
      const keys = keysOf(bh, i);
      const lb = bias?.of(bh);
      const logits = keys.map((j) => {
        let s = lb ? lb(i, j) : 0;
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
        bias?.grad(bh, i, j, ds);
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
