// Warp-level reductions shared by the CUDA kernels.
#pragma once

#include <cstdint>

#include "cuda_compat.h"

namespace secvit {
namespace SV_CUDA_NS {

// The sum of v over the 32 lanes of a warp, in every lane (butterfly of shuffles).
template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
  for (int off = 16; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

// LayerNorm statistics of n values spread over a warp (lane reads value(j) for j = lane,
// lane + 32, ...): the mean and 1 / sqrt(biased variance + eps), the same in every lane. Two
// passes in fp32, the second also summing x - mu to correct both (the corrected two-pass
// algorithm, Chan, Golub & LeVeque 1983): mean = mu + d / n, var = (q - d^2 / n) / n. Without
// the correction a constant row (variance 0) kept its fp32 mean's rounding, an ulp that
// 1 / sqrt(eps) magnified to ~1e-4 (PyTorch's Welford gives exactly the bias there; so does
// this). Used by layerNorm and by the GEMM's LayerNorm prologue, so both compute the same.
template <class F>
__device__ __forceinline__ void warp_layer_norm_stats(F value, int64_t n, int lane, float eps, float* mean,
                                                      float* rstd) {
  float s = 0.0f;
  for (int64_t j = lane; j < n; j += 32) s += value(j);
  const float inv_n = 1.0f / float(n);
  const float mu = warp_sum(s) * inv_n;
  float d = 0.0f, q = 0.0f;
  for (int64_t j = lane; j < n; j += 32) {
    const float t = value(j) - mu;
    d += t;
    q += t * t;
  }
  d = warp_sum(d);
  q = warp_sum(q);
  *mean = mu + d * inv_n;
  *rstd = rsqrtf(fmaxf((q - d * d * inv_n) * inv_n, 0.0f) + eps);
}

}  // namespace SV_CUDA_NS
}  // namespace secvit
