// Picks the kernel family for the tensors' type (see attention.h) and launches it with a Map;
// the attention ops' shared pieces of registration (arguments, what the CUDA kernels support).
#pragma once

#include <string>

#include "../core/op.h"
#include "../ops/attention.h"
#include "attention.h"
#include "cuda_backend.h"
#include "device_buffer.cuh"
#include "group_attention.cuh"
#include "group_attention_backward.cuh"
#include "group_attention_backward_mma.cuh"
#include "group_attention_mma.cuh"

namespace secvit {
namespace SV_CUDA_NS {

// fp32 -> the fp32 kernel; bf16/fp16 -> the tensor-core kernel.
template <class Map>
void launch_attention(const CudaAttentionArgs& a, const Map& map, int groups, int max_group,
                      const char* what) {
  if (a.type == CudaAttnType::F32) {
    const GroupTensors t{static_cast<const float*>(a.q), static_cast<const float*>(a.k),
                         static_cast<const float*>(a.v), static_cast<float*>(a.out), int(a.l),
                         int(a.d), a.lse};
    launch_group_attention(t, map, groups, max_group, int(a.bh), stream(), what);
  } else {
    const GroupTensors16 t{static_cast<const unsigned short*>(a.q),
                           static_cast<const unsigned short*>(a.k),
                           static_cast<const unsigned short*>(a.v),
                           static_cast<unsigned short*>(a.out), int(a.l), int(a.d), a.lse};
    launch_group_attention_mma(a.type == CudaAttnType::BF16, t, map, groups, max_group, int(a.bh),
                               stream(), what);
  }
}

// The attention ops' backward kernels (inputs q, k, v, out, dout, lse[, order] packed [B, H, L,
// D]; outputs dq, dk, dv), for the groups of `map`: bf16/fp16 with D <= 64 on tensor cores, the
// rest (fp32, and 16-bit heads wider than 64) with fp32 arithmetic.
template <class Map>
void launch_attention_backward(const KernelArgs& a, const Map& map, int groups, int max_group, const char* what) {
  const AttentionOpParams& p = a.p<AttentionOpParams>();
  DeviceBuffer delta(size_t(p.b * p.h * p.l) * sizeof(float));
  const DType dtype = a.in[0].dtype;
  const GroupGrads t{a.in[0].data, a.in[1].data, a.in[2].data, a.in[4].data, a.in[5].ptr<float>(), delta.as<float>(),
                     a.out[0].data, a.out[1].data, a.out[2].data, int(p.l), int(p.d), int(dtype)};
  if (dtype != DType::Float32 && p.d <= 64)
    launch_group_attention_backward_mma(dtype == DType::BFloat16, t, a.in[3].data, delta.as<float>(), map, groups, max_group,
                                        int(p.b * p.h), stream(), what);
  else
    launch_group_attention_backward(t, a.in[3].data, delta.as<float>(), map, groups, max_group, int(p.b * p.h), stream(), what);
}

// Entry points shared between the attention files.
// order [B*H, L] int32: stable argsort of the cosine scores (SPEC 1.1-1.3).   (sec_attention.cu)
void sec_order(const void* k, CudaAttnType type, int32_t* order, int64_t bh, int64_t l, int64_t d);
void global_attention(const CudaAttentionArgs& a);  // (global_attention.cu)

inline CudaAttentionArgs attention_args(const KernelArgs& a) {
  const AttentionOpParams& p = a.p<AttentionOpParams>();
  const DType t = a.in[0].dtype;
  return CudaAttentionArgs{a.in[0].data, a.in[1].data, a.in[2].data, a.out[0].data, p.b * p.h,
                           p.l, p.d,
                           t == DType::Float32 ? CudaAttnType::F32
                                               : (t == DType::BFloat16 ? CudaAttnType::BF16
                                                                       : CudaAttnType::F16),
                           p.save_lse ? a.out[a.n_out - 1].ptr<float>() : nullptr};
}

// The CUDA grids put heads on gridDim.z (gridDim.y in the sort) and query tiles on gridDim.y,
// each at most 65535; groups are on gridDim.x, which has no such limit. The tensor-core kernels
// hold a query tile's head dim in registers: D <= 128.
inline bool attention_supports(const OpCall& c, std::string* why) {
  const Shape& s = c.in(0).shape;
  if (s[0] * s[1] > 65535) {
    *why = str("B x H must be at most 65535 on ", SV_CUDA_BACKEND_NAME, ", got ", s[0] * s[1]);
    return false;
  }
  if (s[2] > int64_t(65535) * 64) {
    *why = str("L must be at most ", int64_t(65535) * 64, " on ", SV_CUDA_BACKEND_NAME, ", got ", s[2]);
    return false;
  }
  if (c.in(0).dtype != DType::Float32 && s[3] > 128) {
    *why = str("the ", dtype_name(c.in(0).dtype), " tensor-core kernels support head dim D <= 128, got ", s[3]);
    return false;
  }
  return true;
}

}  // namespace SV_CUDA_NS
}  // namespace secvit
