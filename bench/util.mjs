// Helpers shared by the benchmark groups.

/** n floats uniform in [-scale/2, scale/2) from a seeded LCG: the same data on every machine. */
export function seeded(n, seed, scale = 1) {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = (s / 2 ** 32 - 0.5) * scale;
  }
  return a;
}

export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

// Op profiler labels (profileOps) -> the layer kinds of the benchmarks' breakdowns; backward ops
// get their forward's kind. The models run LayerNorm inside the GEMMs (prologue) and eval-mode
// batch norm folded into the convs, so in inference "norms" only appear unfused.
const KIND = {
  linear: 'GEMM / 1x1 conv', 'conv2d:1x1': 'GEMM / 1x1 conv', matmul: 'GEMM / 1x1 conv', linearEpilogueBackward: 'GEMM / 1x1 conv',
  'conv2d:dense': 'dense conv', im2col: 'dense conv', col2im: 'dense conv', conv2dTransposeWeight: 'dense conv',
  'conv2d:depthwise': 'depthwise conv', depthwiseConv2dBackward: 'depthwise conv',
  secAttention: 'attention', globalAttention: 'attention', windowAttention: 'attention',
  secAttentionBackward: 'attention', globalAttentionBackward: 'attention', windowAttentionBackward: 'attention',
  layerNorm: 'norms', layerNormBackward: 'norms', batchNorm: 'norms', batchNormTrain: 'norms', batchNormBackward: 'norms',
  copy: 'layout copies', pad: 'layout copies',
  add: 'element-wise', mul: 'element-wise', gelu: 'element-wise', silu: 'element-wise', activationBackward: 'element-wise',
  rope2d: 'element-wise', globalAvgPool2d: 'element-wise', dropout: 'element-wise', scaleInPlace: 'element-wise',
  sum: 'reductions', sumSquares: 'reductions',
  crossEntropy: 'loss', crossEntropyBackward: 'loss',
  adamwStep: 'optimizer', sgdStep: 'optimizer',
};
export const kindOf = (label) => KIND[label] ?? KIND[label.split(':')[0]] ?? label;

/**
 * A measured value against its stated target: { ok, text }. `text` is 'ok' or 'MISSED (...)'.
 * Every row that states a target gets this verdict beside it, and the run ends with a list of
 * the misses, so a result that misses its own target cannot pass unremarked.
 */
export function verdict(value, target, unit) {
  const ok = target.max !== undefined ? value <= target.max : value >= target.min;
  const bound = target.max !== undefined ? `<= ${target.max}` : `>= ${target.min}`;
  return { ok, text: ok ? 'ok' : `MISSED (${value.toFixed(2)} ${unit}, target ${bound} ${unit})` };
}

/**
 * What the machine's load says about the numbers: null when quiet, else a sentence. Load above
 * the core count means other work was runnable on every core while the benchmark ran or was
 * about to, so medians mean little (and ratios measured side by side less little).
 */
export function busyNote(load1, cores, when) {
  if (!(load1 > cores)) return null;
  return `the machine was busy ${when} (1-minute load ${load1.toFixed(2)} on ${cores} cores): these numbers mean little; rerun when it is quiet`;
}
