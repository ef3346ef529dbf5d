// Normalisations.
//   layerNorm(x, weight?, bias?; dim, eps): LayerNorm over one dim of x (dim -1: the last, as
//     F.layer_norm(x, [C]); dim 1 of a [B, C, H, W] tensor: over channels, SecViT's norm1/norm2).
//     Biased variance, like PyTorch. The output keeps x's layout when x is dense.
//   batchNorm(x, mean, var, weight?, bias?; eps): eval-mode batch norm over dim 1 (F.batch_norm
//     with training=False): (x - mean[c]) / sqrt(var[c] + eps) * weight[c] + bias[c].
//   foldBatchNorm(weight, bias?, mean, var, gamma?, beta?; eps) -> (weight', bias'): a conv's
//     parameters with a following eval-mode batch norm folded in: weight'[o] = weight[o] * s[o],
//     bias'[o] = (bias[o] - mean[o]) * s[o] + beta[o], s = gamma / sqrt(var + eps). It has no
//     gradient (an inference-time transformation).
// Training and gradients:
//   layerNormBackward(dy, x, weight?; dim, eps, needWeight, needBias) -> (dx, dweight, dbias):
//     with x-hat = (x - mean) rstd (statistics recomputed from x), dx-hat = dy * weight,
//     dx = rstd (dx-hat - mean(dx-hat) - x-hat mean(dx-hat x-hat)), dweight = sum dy x-hat,
//     dbias = sum dy (over every position; [0] when not needed). dx has x's layout.
//   batchNormTrain(x, weight?, bias?, runningMean?, runningVar?; eps, momentum, act) ->
//     (y, mean, var): batch norm on the batch's statistics over every dim but 1 (F.batch_norm
//     with training=True), then the activation (0 none, 1 gelu, 2 silu): y = act((x - mean) /
//     sqrt(var + eps) * weight + bias), mean and biased var [C] (float32). The running
//     statistics, when given, are updated in place as PyTorch does: r = (1 - momentum) r +
//     momentum * (mean, or var * n / (n - 1), the unbiased variance).
//   batchNormBackward(dy, x, mean, var, weight?, bias?; eps, act, training) -> (dx, dweight,
//     dbias): the gradient of either mode with the activation: g = dy act'(z) (z recomputed),
//     x-hat = (x - mean) / sqrt(var + eps); dbias = sum g, dweight = sum g x-hat;
//     training: dx = weight / sqrt(var + eps) (g - dbias / n - x-hat dweight / n) (the batch
//     statistics depend on x); eval: dx = g weight / sqrt(var + eps).
// Rules: native/ops/norm.cpp; kernels: native/cpu/norm.cpp, native/cuda/norm.cu.
#pragma once

#include <cstdint>

#include "../core/shape.h"

namespace secvit {

struct NormOpParams {
  float eps;
  int64_t d;            // length of the normalised dim (layerNorm), channels (batchNorm)
  int64_t d_stride;     // its stride in x (and in the output: same layout)
  // The other dims, in x's memory order (outermost first): sizes and strides.
  int nd;
  int64_t shape[kMaxDims];
  int64_t stride[kMaxDims];
};

struct BatchNormTrainParams {
  NormOpParams n;        // channels: n.d, n.d_stride; positions: the other dims
  float momentum;
  int act;
  bool update;           // running statistics given
};

struct BatchNormBackwardParams {
  NormOpParams n;
  int act;
  bool training;
  // dy's layout when it differs from x's (both dense): dims in x's memory order.
  int64_t dy_d_stride;
  int64_t dy_stride[kMaxDims];
};

struct LayerNormBackwardParams {
  NormOpParams n;
  int64_t dy_d_stride;
  int64_t dy_stride[kMaxDims];
  bool need_weight, need_bias;
};

struct FoldBnOpParams {
  float eps;
  int64_t o, per_o;     // output channels, weight elements per channel
};

}  // namespace secvit
