// Warp-level reductions shared by the CUDA kernels.
#pragma once

#include <cstdint>

#include "cuda_compat.h"
#include "dtype_io.cuh"

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

// Column sums of a [m, n] matrix (row stride ld, any dtype) into out[n] (dtype out_dtype):
// blocks of 32 columns x 8 row lanes (reads coalesced along a row), each lane summing every 8th
// row, then the 8 lanes added through shared memory. Launch: grid (n + 31) / 32, block (32, 8).
static __global__ void __launch_bounds__(256) column_sums_kernel(const void* x, int dtype, int64_t m, int64_t n, int64_t ld,
                                                          void* out, int out_dtype) {
  SV_SHARED(float[8][33], part);
  const int tx = threadIdx.x % 32, ty = threadIdx.x / 32;
  const int64_t c = int64_t(blockIdx.x) * 32 + tx;
  float acc = 0.0f;
  if (c < n)
    for (int64_t r = ty; r < m; r += 8) acc += load_as_float(x, dtype, r * ld + c);
  part[ty][tx] = acc;
  __syncthreads();
  if (ty == 0 && c < n) {
    float s = 0.0f;
    for (int i = 0; i < 8; ++i) s += part[i][tx];
    store_from_float(out, out_dtype, c, s);
  }
}

}  // namespace SV_CUDA_NS
}  // namespace secvit
