// CPU pieces of LayerNorm shared by the `layerNorm` kernel (norm.cpp) and the GEMM's LayerNorm
// prologue (gemm.cpp), so that the fused and the unfused LayerNorm compute the same statistics.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

namespace secvit::cpu {

// sum_j x[j] over n contiguous floats, in 8 independent partial sums: one running float sum is
// a chain of dependent adds (the compiler may not reassociate it), which held layerNorm to
// ~3 GB/s; 8 lanes vectorize.
inline float row_sum(const float* __restrict__ x, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int l = 0; l < 8; ++l) acc[l] += x[j + l];
  float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; j < n; ++j) s += x[j];
  return s;
}

// sum_j (x[j] - mu) and sum_j (x[j] - mu)^2 over n contiguous floats, 8 lanes each. Written with
// GCC/Clang vector types: with two 8-float accumulator arrays g++ 12 left the loop scalar (651
// instructions a 64-float row, against 149 for the two single-sum passes before; callgrind).
// The vector form is SSE/AVX/NEON code on every target.
inline void row_centred_sums(const float* __restrict__ x, int64_t n, float mu, float* d, float* q) {
  typedef float v8f __attribute__((vector_size(32)));
  v8f ad = {0, 0, 0, 0, 0, 0, 0, 0}, aq = ad;
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    v8f t;
    std::memcpy(&t, x + j, sizeof t);
    t -= mu;
    ad += t;
    aq += t * t;
  }
  float sd = ((ad[0] + ad[1]) + (ad[2] + ad[3])) + ((ad[4] + ad[5]) + (ad[6] + ad[7]));
  float sq = ((aq[0] + aq[1]) + (aq[2] + aq[3])) + ((aq[4] + aq[5]) + (aq[6] + aq[7]));
  for (; j < n; ++j) {
    const float t = x[j] - mu;
    sd += t;
    sq += t * t;
  }
  *d = sd;
  *q = sq;
}

// Mean and 1 / sqrt(biased variance + eps) of n contiguous floats, as PyTorch's LayerNorm: two
// passes (the centred variance has no cancellation), the second also summing x - mu to correct
// both (the corrected two-pass algorithm, Chan, Golub & LeVeque 1983): mean = mu + d / n,
// var = (q - d^2 / n) / n. Without the correction a constant row (variance 0) kept its float
// mean's rounding, an ulp that 1 / sqrt(eps) magnified to ~1e-4 of the output (PyTorch's
// Welford gives exactly the bias there; so does this: d is then exactly n (x - mu)).
inline void layer_norm_stats(const float* x, int64_t n, float eps, float* mean, float* rstd) {
  const float inv_n = 1.0f / float(n);
  const float mu = row_sum(x, n) * inv_n;
  float d, q;
  row_centred_sums(x, n, mu, &d, &q);
  *mean = mu + d * inv_n;
  *rstd = 1.0f / std::sqrt(std::max((q - d * d * inv_n) * inv_n, 0.0f) + eps);
}

}  // namespace secvit::cpu
