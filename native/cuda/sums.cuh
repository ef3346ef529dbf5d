// Sums over strided dims, shared by the sum/sumSquares ops (reduce.cu) and the gradient kernels
// whose bias, scale and norm-weight gradients are column sums (linear.cu, norm.cu, loss.cu).
//
// Layout: SumOpParams (ops/reduce.h): outputs over the kept dims, each the sum over the reduced
// dims, x addressed through both sets of strides; any float dtype in, any out, fp32 arithmetic.
// Two schedules: blocks of 32 outputs (tx) x 8 lanes (ty), lane ty of output o adding every 8th
// reduced element (offsets by division over the reduced dims), the 8 lanes' sums meeting in
// shared memory (no warp shuffles: a bias gradient is a few hundred outputs over tens of
// thousands of rows, read coalesced along a row); and, for fewer than 32 outputs (a norm, a
// total), a whole block per output with a shuffle tree.
// Cost: one read per element.
#pragma once

#include <cstdint>

#include "../ops/reduce.h"
#include "cuda_backend.h"
#include "cuda_compat.h"
#include "dtype_io.cuh"
#include "reduce.cuh"

namespace secvit {
namespace SV_CUDA_NS {

__device__ __forceinline__ int64_t sum_dims_offset(int64_t i, int n, const int64_t* shape, const int64_t* stride) {
  int64_t off = 0;
  for (int k = n - 1; k >= 0; --k) {
    off += (i % shape[k]) * stride[k];
    i /= shape[k];
  }
  return off;
}

static __global__ void __launch_bounds__(256) sum_kernel(SumOpParams p, const void* x, void* y, int dtype, int out_dtype) {
  SV_SHARED(float[8][33], part);
  const int tx = threadIdx.x % 32, ty = threadIdx.x / 32;
  for (int64_t o0 = int64_t(blockIdx.x) * 32; o0 < p.n_out; o0 += int64_t(gridDim.x) * 32) {
    const int64_t o = o0 + tx;
    float acc = 0.0f;
    if (o < p.n_out) {
      const int64_t base = sum_dims_offset(o, p.nk, p.kshape, p.kstride);
      for (int64_t r = ty; r < p.n_red; r += 8) {
        const float v = load_as_float(x, dtype, base + sum_dims_offset(r, p.nr, p.rshape, p.rstride));
        acc += p.squares ? v * v : v;
      }
    }
    part[ty][tx] = acc;
    __syncthreads();
    if (ty == 0 && o < p.n_out) {
      float s = 0.0f;
      for (int w = 0; w < 8; ++w) s += part[w][tx];
      store_from_float(y, out_dtype, o, s);
    }
    __syncthreads();
  }
}

static __global__ void __launch_bounds__(256) sum_few_kernel(SumOpParams p, const void* x, void* y, int dtype, int out_dtype) {
  SV_SHARED(float[8], part);
  const int64_t o = blockIdx.x;
  const int64_t base = sum_dims_offset(o, p.nk, p.kshape, p.kstride);
  float acc = 0.0f;
  for (int64_t r = threadIdx.x; r < p.n_red; r += blockDim.x) {
    const float v = load_as_float(x, dtype, base + sum_dims_offset(r, p.nr, p.rshape, p.rstride));
    acc += p.squares ? v * v : v;
  }
  acc = warp_sum(acc);
  if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = acc;
  __syncthreads();
  if (threadIdx.x == 0) {
    float s = 0.0f;
    for (int w = 0; w < 8; ++w) s += part[w];
    store_from_float(y, out_dtype, o, s);
  }
}

// y[o] = the sum described by p, on the backend's stream.
inline void launch_sum(const SumOpParams& p, const void* x, int dtype, void* y, int out_dtype) {
  if (p.n_out == 0) return;
  if (p.n_out < 32) {
    SV_LAUNCH(sum_few_kernel, dim3(unsigned(p.n_out)), dim3(256), 0, stream(), p, x, y, dtype, out_dtype);
    SV_CUDA_CHECK_LAUNCH("sum_few_kernel");
    return;
  }
  const int64_t tiles = (p.n_out + 31) / 32;
  const unsigned blocks = unsigned(tiles < 65535 * 4 ? tiles : 65535 * 4);
  SV_LAUNCH(sum_kernel, dim3(blocks), dim3(256), 0, stream(), p, x, y, dtype, out_dtype);
  SV_CUDA_CHECK_LAUNCH("sum_kernel");
}

// out[c] = sum over the m rows of a [m, n] matrix with row stride ld.
inline void launch_column_sums(const void* x, int dtype, int64_t m, int64_t n, int64_t ld, void* out, int out_dtype) {
  SumOpParams p{};
  p.nk = 1;
  p.kshape[0] = n;
  p.kstride[0] = 1;
  p.nr = 1;
  p.rshape[0] = m;
  p.rstride[0] = ld;
  p.n_out = n;
  p.n_red = m;
  launch_sum(p, x, dtype, out, out_dtype);
}

}  // namespace SV_CUDA_NS
}  // namespace secvit
