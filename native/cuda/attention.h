// Host entry points of the CUDA attention kernels, declared for both builds of native/cuda:
// secvit::cuda_impl (nvcc, real GPU) and secvit::cuda_emu_impl (host compiler + emulator).
// Pointers are device pointers; every function validates nothing (the binding has) and throws
// secvit::Error with file:line on a CUDA error.
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
};

struct CudaWindowArgs {
  int64_t height, width, win_h, win_w, shift_h, shift_w;
};

#define SECVIT_DECLARE_CUDA_ATTENTION(NS)                                                    \
  namespace NS {                                                                             \
  /* order [B*H, L] int32: stable argsort of the cosine scores (SPEC 1.1-1.3). */            \
  void sec_order(const void* k, CudaAttnType type, int32_t* order, int64_t bh, int64_t l,     \
                 int64_t d);                                                                 \
  void sec_attention(const CudaAttentionArgs& a, int64_t clusters, int32_t* order);          \
  void sec_attention_unfused(const CudaAttentionArgs& a, int64_t clusters, int32_t* order);  \
  void window_attention(const CudaAttentionArgs& a, const CudaWindowArgs& w);                \
  void global_attention(const CudaAttentionArgs& a);                                         \
  }

SECVIT_DECLARE_CUDA_ATTENTION(cuda_impl)
SECVIT_DECLARE_CUDA_ATTENTION(cuda_emu_impl)
#undef SECVIT_DECLARE_CUDA_ATTENTION

}  // namespace secvit
