// Column sums of a matrix, shared by the gradient kernels (bias, scale and norm-weight gradients).
#pragma once

#include <cstdint>

#include "cuda_compat.h"
#include "dtype_io.cuh"

namespace secvit {
namespace SV_CUDA_NS {

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
