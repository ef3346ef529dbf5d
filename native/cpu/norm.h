// CPU pieces of LayerNorm shared by the `layerNorm` kernel (norm.cpp) and the GEMM's LayerNorm
// prologue (gemm.cpp), so that the fused and the unfused LayerNorm compute the same statistics.
#pragma once

#include <cmath>
#include <cstdint>

namespace secvit::cpu {

// sum_j x[j] (squares = false) or sum_j (x[j] - mu)^2 (squares = true) over n contiguous
// floats, in 8 independent partial sums: one running float sum is a chain of dependent adds
// (the compiler may not reassociate it), which held layerNorm to ~3 GB/s; 8 lanes vectorize.
inline float row_sum(const float* __restrict__ x, int64_t n, float mu, bool squares) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int l = 0; l < 8; ++l) {
      const float t = x[j + l] - mu;
      acc[l] += squares ? t * t : x[j + l];
    }
  float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; j < n; ++j) {
    const float t = x[j] - mu;
    s += squares ? t * t : x[j];
  }
  return s;
}

// Mean and 1 / sqrt(biased variance + eps) of n contiguous floats: two passes (the centred
// variance has no cancellation), as PyTorch's LayerNorm.
inline void layer_norm_stats(const float* x, int64_t n, float eps, float* mean, float* rstd) {
  const float inv_n = 1.0f / float(n);
  const float mu = row_sum(x, n, 0.0f, false) * inv_n;
  *mean = mu;
  *rstd = 1.0f / std::sqrt(row_sum(x, n, mu, true) * inv_n + eps);
}

}  // namespace secvit::cpu
