// Normalisations.
//   layerNorm(x, weight?, bias?; dim, eps): LayerNorm over one dim of x (dim -1: the last, as
//     F.layer_norm(x, [C]); dim 1 of a [B, C, H, W] tensor: over channels, SecViT's norm1/norm2).
//     Biased variance, like PyTorch. The output keeps x's layout when x is dense.
//   batchNorm(x, mean, var, weight?, bias?; eps): eval-mode batch norm over dim 1 (F.batch_norm
//     with training=False): (x - mean[c]) / sqrt(var[c] + eps) * weight[c] + bias[c].
//   foldBatchNorm(weight, bias?, mean, var, gamma?, beta?; eps) -> (weight', bias'): a conv's
//     parameters with a following eval-mode batch norm folded in: weight'[o] = weight[o] * s[o],
//     bias'[o] = (bias[o] - mean[o]) * s[o] + beta[o], s = gamma / sqrt(var + eps).
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

struct FoldBnOpParams {
  float eps;
  int64_t o, per_o;     // output channels, weight elements per channel
};

}  // namespace secvit
