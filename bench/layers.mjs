// A row per layer kind, at SecViT-T's shapes (224 x 224 input, batch `batch`), on the CPU: the
// ops one block of stage 0 runs (fused as the model will run them), the stem and a
// downsample convolution, and the standalone element-wise and norm ops; plus the unfused FFN
// next to the fused one. Activations are channels-last, as in the model.
import { Bench } from 'tinybench';
import { median, seeded } from './util.mjs';

export async function layerRows(secvit, { batch = 1, time = 200 } = {}) {
  const made = [];
  const t = (shape, seed = 1) => {
    const x = secvit.tensor(seeded(shape.reduce((a, b) => a * b, 1), seed, 0.5), shape);
    made.push(x);
    return x;
  };
  const cl = (x) => {
    const y = x.contiguous('channelsLast');
    made.push(y);
    return y;
  };
  // A channels-last [B, C, H, W] tensor as tokens [B, H*W, C]: a view, no copy.
  const asTokens = (x) => {
    const p = x.permute([0, 2, 3, 1]);
    const y = p.reshape([x.shape[0], x.shape[2] * x.shape[3], x.shape[1]]);
    p.dispose();
    made.push(y);
    return y;
  };
  const B = batch;
  const E = 64, H = 56, W = 56, L = H * W, heads = 2, d = 32;
  const x = cl(t([B, E, H, W], 1));
  const lnw = t([E], 2), lnb = t([E], 3);
  const wqkv = t([3 * E, E], 4), bqkv = t([3 * E], 5);
  const angle = t([d / 2], 6);
  const wlepe = t([E, 1, 5, 5], 7), blepe = t([E], 8);
  const wout = t([E, E], 9), bout = t([E], 10);
  const wcpe = t([E, 1, 3, 3], 11), bcpe = t([E], 12);
  const w1 = t([3 * E, E], 13), b1 = t([3 * E], 14);
  const wdw = t([3 * E, 1, 3, 3], 15), bdw = t([3 * E], 16);
  const w2 = t([E, 3 * E], 17), b2 = t([E], 18);
  const hidden = cl(t([B, 3 * E, H, W], 19));
  const hiddenTokens = asTokens(hidden);
  const tokens = asTokens(x);
  const q = t([B, heads, L, d], 20), k = t([B, heads, L, d], 21), v = t([B, heads, L, d], 22);
  const img = t([B, 3, 224, 224], 23);
  const wstem0 = t([32, 3, 3, 3], 24), bstem0 = t([32], 25);
  const s1 = cl(t([B, 32, 112, 112], 26));
  const wstem1 = t([32, 32, 3, 3], 27), bstem1 = t([32], 28);
  const wdown = t([128, 64, 3, 3], 29), bdown = t([128], 30);
  const head = cl(t([B, 1024, 7, 7], 31));
  const bnm = t([E], 32), bnv = secvit.tensor(new Float32Array(E).fill(1.5), [E]);
  made.push(bnv);
  const gemm = (m, k2, n) => 2 * m * k2 * n;
  const bytes = (...shapes) => 4 * shapes.reduce((a, s) => a + s.reduce((p, q2) => p * q2, 1), 0);

  // name, kind, flops, bytes moved (lower bound), fn returning the output
  const rows = [
    ['layerNorm over channels (norm1)', 'norm', 0, bytes([B, E, H, W], [B, E, H, W]), () => secvit.layerNorm(x, lnw, lnb, { dim: 1, eps: 1e-6 })],
    ['qkv: LN + GEMM + bias + RoPE + key scale', 'GEMM/1x1', gemm(B * L, E, 3 * E), 0,
      () => secvit.fusedLinear(tokens, wqkv, bqkv, { norm: { weight: lnw, bias: lnb, eps: 1e-6 }, rope: { angle, heads, height: H, width: W, kScale: d ** -0.5 } })],
    ['LCE: depthwise 5x5', 'depthwise', 2 * B * L * E * 25, 0, () => secvit.conv2d(x, wlepe, blepe, { padding: 2, groups: E })],
    ['SEC attention (C=32)', 'attention', 4 * B * heads * L * (L / 32) * d, 0, () => secvit.secAttention(q, k, v, { clusters: 32 })],
    ['out_proj: (o + lepe) W^T + b + residual', 'GEMM/1x1', gemm(B * L, E, E), 0,
      () => secvit.fusedLinear(tokens, wout, bout, { add: tokens, residual: tokens })],
    ['CPE: x + depthwise 3x3', 'depthwise', 2 * B * L * E * 9, 0, () => secvit.fusedConv2d(x, wcpe, bcpe, { padding: 1, groups: E, residual: x })],
    ['fc1: LN + GEMM + bias + GELU', 'GEMM/1x1', gemm(B * L, E, 3 * E), 0,
      () => secvit.fusedLinear(tokens, w1, b1, { norm: { weight: lnw, bias: lnb, eps: 1e-6 }, activation: 'gelu' })],
    ['fc1 unfused: layerNorm, linear, gelu', 'GEMM/1x1', gemm(B * L, E, 3 * E), 0, () => {
      const n = secvit.layerNorm(tokens, lnw, lnb, { eps: 1e-6 });
      const l = secvit.linear(n, w1, b1);
      const g = secvit.gelu(l);
      n.dispose();
      l.dispose();
      return g;
    }],
    ['FFN dwconv: h + depthwise 3x3 (192 ch)', 'depthwise', 2 * B * L * 3 * E * 9, 0, () => secvit.fusedConv2d(hidden, wdw, bdw, { padding: 1, groups: 3 * E, residual: hidden })],
    ['fc2: GEMM + bias + residual', 'GEMM/1x1', gemm(B * L, 3 * E, E), 0, () => secvit.fusedLinear(hiddenTokens, w2, b2, { residual: tokens })],
    ['stem conv 3x3 s2, 3 -> 32, + GELU', 'dense conv', gemm(B * 112 * 112, 27, 32), 0, () => secvit.fusedConv2d(img, wstem0, bstem0, { stride: 2, padding: 1, activation: 'gelu' })],
    ['stem conv 3x3, 32 -> 32, + GELU', 'dense conv', gemm(B * 112 * 112, 288, 32), 0, () => secvit.fusedConv2d(s1, wstem1, bstem1, { padding: 1, activation: 'gelu' })],
    ['downsample conv 3x3 s2, 64 -> 128', 'dense conv', gemm(B * 28 * 28, 576, 128), 0, () => secvit.conv2d(x, wdown, bdown, { stride: 2, padding: 1 })],
    ['gelu (192 ch)', 'element-wise', 0, bytes([B, 3 * E, H, W], [B, 3 * E, H, W]), () => secvit.gelu(hidden)],
    ['add (residual)', 'element-wise', 0, bytes([B, E, H, W], [B, E, H, W], [B, E, H, W]), () => secvit.add(x, x)],
    ['batchNorm (eval)', 'norm', 0, bytes([B, E, H, W], [B, E, H, W]), () => secvit.batchNorm(x, bnm, bnv, lnw, lnb)],
    ['rope2d on q', 'element-wise', 0, bytes([B, heads, L, d], [B, heads, L, d]), () => secvit.rope2d(q, angle, { height: H, width: W })],
    ['global average pool (1024 x 7 x 7)', 'pool', 0, bytes([B, 1024, 7, 7]), () => secvit.globalAvgPool2d(head)],
  ];

  // Peak host memory of one call (memory()'s peak over it, output included), as in the
  // attention tables.
  const peaks = rows.map(([, , , , fn]) => {
    secvit.resetPeakMemory();
    const base = secvit.memory().hostBytes;
    const y = fn();
    y.waitSync();
    const peak = secvit.memory().peakHostBytes - base;
    y.dispose();
    return peak;
  });
  const bench = new Bench({ time, iterations: 5, warmup: true, warmupIterations: 2 });
  for (const [name, , , , fn] of rows) {
    bench.add(name, () => {
      const y = fn();
      y.waitSync();
      y.dispose();
    });
  }
  await bench.run();
  const out = bench.tasks.map((task, i) => {
    const s = task.result?.latency?.samples ?? [];
    const med = median(s);
    const [, kind, flops, moved] = rows[i];
    return {
      name: task.name, kind, medianMs: med, minMs: Math.min(...s), maxMs: Math.max(...s), samples: s.length, peakBytes: peaks[i],
      ...(flops ? { gflops: flops / (med * 1e6) } : {}), ...(moved ? { gbPerS: moved / (med * 1e6) } : {}),
    };
  });
  for (const m of made) m.dispose();
  return out;
}

export function printLayers(rows, batch, threads) {
  console.log(`\nlayers at SecViT-T shapes (stage 0: 64 ch, 56 x 56; batch ${batch}; ${threads} thread(s)): median ms [min-max]`);
  console.table(rows.map((r) => ({
    layer: r.name,
    kind: r.kind,
    'median ms': `${r.medianMs.toFixed(3)} [${r.minMs.toFixed(3)}-${r.maxMs.toFixed(3)}]`,
    'GFLOP/s': r.gflops?.toFixed(1) ?? '',
    'GB/s': r.gbPerS?.toFixed(1) ?? '',
    'peak MiB': (r.peakBytes / 2 ** 20).toFixed(2),
  })));
}
