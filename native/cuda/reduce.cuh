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
// lane + 32, ...): the mean and 1 / sqrt(biased variance + eps), two passes in fp32 (the
// centred variance has no cancellation), the same in every lane. Used by layerNorm and by the
// GEMM's LayerNorm prologue, so that both compute the same statistics.
template <class F>
__device__ __forceinline__ void warp_layer_norm_stats(F value, int64_t n, int lane, float eps, float* mean,
                                                      float* rstd) {
  float s = 0.0f;
  for (int64_t j = lane; j < n; j += 32) s += value(j);
  const float mu = warp_sum(s) / float(n);
  float q = 0.0f;
  for (int64_t j = lane; j < n; j += 32) {
    const float t = value(j) - mu;
    q += t * t;
  }
  *mean = mu;
  *rstd = rsqrtf(warp_sum(q) / float(n) + eps);
}

}  // namespace SV_CUDA_NS
}  // namespace secvit
