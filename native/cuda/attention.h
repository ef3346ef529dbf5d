// The arguments of the CUDA attention kernels (both builds of native/cuda). Pointers are
// device pointers; the entry points (attention_launch.cuh) validate nothing (the op's rules
// and the kernels' `supports` have) and throw secvit::Error with file:line on a CUDA error.
#pragma once

#include <cstdint>

namespace secvit {

// Element type of q, k, v, out. F32 runs the fp32 kernels; BF16/F16 the tensor-core kernels
// (fp32 accumulation, D <= 128).
enum class CudaAttnType { F32 = 0, BF16 = 1, F16 = 2 };

struct CudaAttentionArgs {
  const void* q;  // [B, H, L, D] of `type`
  const void* k;
  const void* v;
  void* out;      // same shape and dtype as q
  int64_t bh, l, d;
  CudaAttnType type;
  float* lse = nullptr;  // [BH, L]: each query's log-sum-exp, when set
};

struct CudaWindowArgs {
  int64_t height, width, win_h, win_w, shift_h, shift_w;
};


}  // namespace secvit
