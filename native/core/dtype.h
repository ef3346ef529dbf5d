// Element types. float16 and bfloat16 are named so that shapes, sizes and errors can speak
// about them; which ops accept them is decided per op.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

// Functions callable from host and CUDA device code (plain inline for the C++ compiler).
#if defined(__CUDACC__)
#define SV_HOST_DEVICE __host__ __device__
#else
#define SV_HOST_DEVICE
#endif

namespace secvit {

enum class DType { Float32 = 0, Int32 = 1, Float16 = 2, BFloat16 = 3 };

inline size_t dtype_size(DType t) {
  switch (t) {
    case DType::Float32:
    case DType::Int32:
      return 4;
    case DType::Float16:
    case DType::BFloat16:
      return 2;
  }
  return 0;
}

// float -> int32 as every backend converts: toward zero, saturating at the int32 range, NaN to
// 0 (what CUDA's cvt.rzi.s32.f32 does; a plain C++ cast is undefined outside the range).
SV_HOST_DEVICE inline int32_t float_to_int32(float v) {
  if (v != v) return 0;
  if (v >= 2147483648.0f) return INT32_MAX;
  if (v <= -2147483648.0f) return INT32_MIN;
  return int32_t(v);
}

inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::Float32: return "float32";
    case DType::Int32: return "int32";
    case DType::Float16: return "float16";
    case DType::BFloat16: return "bfloat16";
  }
  return "?";
}

// Returns false when the name is unknown.
inline bool parse_dtype(const std::string& name, DType* out) {
  if (name == "float32") *out = DType::Float32;
  else if (name == "int32") *out = DType::Int32;
  else if (name == "float16") *out = DType::Float16;
  else if (name == "bfloat16") *out = DType::BFloat16;
  else return false;
  return true;
}

}  // namespace secvit
