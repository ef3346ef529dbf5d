// Picks the kernel family for the tensors' type (see attention.h) and launches it with a Map.
#pragma once

#include "attention.h"
#include "cuda_backend.h"
#include "group_attention.cuh"
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
                         int(a.d)};
    launch_group_attention(t, map, groups, max_group, int(a.bh), stream(), what);
  } else {
    const GroupTensors16 t{static_cast<const unsigned short*>(a.q),
                           static_cast<const unsigned short*>(a.k),
                           static_cast<const unsigned short*>(a.v),
                           static_cast<unsigned short*>(a.out), int(a.l), int(a.d)};
    launch_group_attention_mma(a.type == CudaAttnType::BF16, t, map, groups, max_group, int(a.bh),
                               stream(), what);
  }
}

}  // namespace SV_CUDA_NS
}  // namespace secvit
