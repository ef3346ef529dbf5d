// Global attention on the fused kernel of group_attention.cuh: one group, the identity.
#include "attention_launch.cuh"

namespace secvit {
namespace SV_CUDA_NS {
namespace {

struct GlobalMap {
  int l;
  static constexpr bool kMasked = false;
  __device__ __forceinline__ int size(int, int) const { return l; }
  __device__ __forceinline__ int token(int, int, int s) const { return s; }
  __device__ __forceinline__ int label(int, int) const { return 0; }
};

}  // namespace

void global_attention(const CudaAttentionArgs& a) {
  if (a.bh * a.l == 0) return;
  launch_attention(a, GlobalMap{int(a.l)}, 1, int(a.l), "global attention kernel");
}

namespace {
void global_kernel(const KernelArgs& a) { global_attention(attention_args(a)); }
void global_backward_kernel(const KernelArgs& a) {
  const AttentionOpParams& p = a.p<AttentionOpParams>();
  if (p.b * p.h * p.l == 0) return;
  launch_attention_backward(a, GlobalMap{int(p.l)}, 1, int(p.l), "global attention backward kernel");
}
}  // namespace

SECVIT_KERNEL(globalAttention, SV_CUDA_DEVICE, kF32 | kF16 | kBF16, global_kernel, attention_supports, 0);
SECVIT_KERNEL(globalAttentionBackward, SV_CUDA_DEVICE, kF32 | kF16 | kBF16, global_backward_kernel, attention_supports, 0);

}  // namespace SV_CUDA_NS
}  // namespace secvit
