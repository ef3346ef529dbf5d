// SecViT's 2-D RoPE (SPEC 3.3) on one pair of a head, shared by the `rope2d` kernel
// (rope2d.cu) and the qkv GEMM's epilogue (gemm.cuh).
#pragma once

#include <cstdint>

#include "cuda_compat.h"
#include "dtype_io.cuh"

namespace secvit {
namespace SV_CUDA_NS {

// Rotates the pair (v0, v1) = elements (j, j + 1) of a head of size d (j even) at grid
// position (y, x): the first half of the head turns by y * angle[j], the second by
// x * angle[j - d/2] (angle [d/2] of `dtype`; a pair shares its angle).
__device__ __forceinline__ void rope_rotate_pair(float& v0, float& v1, const void* angle, int dtype, int64_t j,
                                                 int64_t d, int64_t y, int64_t x) {
  const int64_t half = d / 2;
  const float th = float(j < half ? y : x) * load_as_float(angle, dtype, j < half ? j : j - half);
  float sn, cs;
  sincosf(th, &sn, &cs);
  const float r0 = v0 * cs - v1 * sn, r1 = v1 * cs + v0 * sn;
  v0 = r0;
  v1 = r1;
}

}  // namespace SV_CUDA_NS
}  // namespace secvit
