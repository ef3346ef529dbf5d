// Loads and stores of one element of any secvit dtype as float, for kernels that take every
// dtype through one code path (copy, element-wise ops). DType codes as in core/dtype.h.
#pragma once

#include <cstdint>

#include "../core/dtype.h"
#include "cuda_compat.h"

namespace secvit {
namespace SV_CUDA_NS {

__device__ __forceinline__ float load_as_float(const void* p, int dtype, int64_t i) {
  switch (dtype) {
    case int(DType::Float32): return static_cast<const float*>(p)[i];
    case int(DType::Int32): return float(static_cast<const int*>(p)[i]);
    case int(DType::Float16):
      return __half2float(__ushort_as_half(static_cast<const unsigned short*>(p)[i]));
    default:
      return __bfloat162float(__ushort_as_bfloat16(static_cast<const unsigned short*>(p)[i]));
  }
}

__device__ __forceinline__ void store_from_float(void* p, int dtype, int64_t i, float v) {
  switch (dtype) {
    case int(DType::Float32): static_cast<float*>(p)[i] = v; break;
    case int(DType::Int32): static_cast<int*>(p)[i] = float_to_int32(v); break;
    case int(DType::Float16):
      static_cast<unsigned short*>(p)[i] = __half_as_ushort(__float2half_rn(v));
      break;
    default: static_cast<unsigned short*>(p)[i] = __bfloat16_as_ushort(__float2bfloat16_rn(v));
  }
}

// 16-bit floats as raw bits (bfloat16 when kBf16, else float16), for the tensor-core kernels.
template <bool kBf16>
__device__ __forceinline__ float half_to_float(unsigned short bits) {
  if constexpr (kBf16) return __bfloat162float(__ushort_as_bfloat16(bits));
  else return __half2float(__ushort_as_half(bits));
}

template <bool kBf16>
__device__ __forceinline__ unsigned short float_to_half(float f) {
  if constexpr (kBf16) return __bfloat16_as_ushort(__float2bfloat16_rn(f));
  else return __half_as_ushort(__float2half_rn(f));
}

// Two consecutive 16-bit values as one 32-bit mma operand register (element 0 in the low half).
__device__ __forceinline__ uint32_t load2(const unsigned short* p) {
  return uint32_t(p[0]) | (uint32_t(p[1]) << 16);
}

// Grid size for a grid-stride loop over n elements with `threads` per block.
inline unsigned grid_for(int64_t n, int threads) {
  const int64_t blocks = (n + threads - 1) / threads;
  return unsigned(blocks < 1 ? 1 : (blocks > 65535 * 8 ? 65535 * 8 : blocks));
}

}  // namespace SV_CUDA_NS
}  // namespace secvit
