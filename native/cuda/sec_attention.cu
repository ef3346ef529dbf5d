// SEC attention, fused (SPEC section 1): scores -> segmented argsort -> one fused kernel per
// (head, cluster, query tile) that gathers the cluster's q/k/v rows through `order`, runs
// QK^T-softmax-PV with an online softmax and writes each row to out[order[p]].
// Kernels: sec_scores.cu, sec_argsort.cu, group_attention.cuh (shared with window and global
// attention). Three launches per call, q/v read once, k read twice (scores, attention), out
// written once; the only intermediates are scores (8 B/token) and order (4 B/token).
#include "attention.h"
#include "cuda_backend.h"
#include "device_buffer.cuh"
#include <algorithm>

#include "attention_launch.cuh"
#include "sec_kernels.cuh"

namespace secvit {
namespace SV_CUDA_NS {
namespace {

// Cluster c holds sorted positions [floor(c L / C), floor((c+1) L / C)).
struct SecMap {
  const int32_t* order;
  int l;
  int clusters;
  static constexpr bool kMasked = false;
  __device__ __forceinline__ int start(int c) const { return int(int64_t(c) * l / clusters); }
  __device__ __forceinline__ int size(int, int c) const { return start(c + 1) - start(c); }
  __device__ __forceinline__ int token(int bh, int c, int s) const {
    return order[int64_t(bh) * l + start(c) + s];
  }
  __device__ __forceinline__ int label(int, int) const { return 0; }
};

// The unfused baseline attends clusters that are already contiguous in sorted tensors.
struct SortedClusterMap {
  int l;
  int clusters;
  static constexpr bool kMasked = false;
  __device__ __forceinline__ int start(int c) const { return int(int64_t(c) * l / clusters); }
  __device__ __forceinline__ int size(int, int c) const { return start(c + 1) - start(c); }
  __device__ __forceinline__ int token(int, int c, int s) const { return start(c) + s; }
  __device__ __forceinline__ int label(int, int) const { return 0; }
};

// rows: dst[bh, p, :] = src[bh, order[bh, p], :] (gather) or dst[bh, order[bh, p], :] =
// src[bh, p, :] (scatter), for rows of `row_bytes` bytes copied as 16-bit words.
__global__ void permute_rows_kernel(const unsigned short* __restrict__ src,
                                    unsigned short* __restrict__ dst,
                                    const int32_t* __restrict__ order, int l, int row_words,
                                    int scatter) {
  const int64_t bh = blockIdx.y;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < int64_t(l) * row_words;
       e += int64_t(gridDim.x) * blockDim.x) {
    const int p = int(e / row_words), w = int(e % row_words);
    const int64_t perm = order[bh * l + p];
    const int64_t from = scatter ? p : perm, to = scatter ? perm : p;
    dst[(bh * l + to) * row_words + w] = src[(bh * l + from) * row_words + w];
  }
}

void permute_rows(const void* src, void* dst, const int32_t* order, const CudaAttentionArgs& a,
                  bool scatter) {
  const int row_words = int(a.d * (a.type == CudaAttnType::F32 ? 2 : 1));
  const int64_t words = a.l * row_words;
  const unsigned blocks = unsigned(std::min<int64_t>((words + 255) / 256, 1024));
  SV_LAUNCH(permute_rows_kernel, dim3(blocks, unsigned(a.bh)), dim3(256), 0, stream(),
            static_cast<const unsigned short*>(src), static_cast<unsigned short*>(dst), order,
            int(a.l), row_words, scatter ? 1 : 0);
  SV_CUDA_CHECK_LAUNCH("permute_rows_kernel");
}

}  // namespace

void sec_order(const void* k, CudaAttnType type, int32_t* order, int64_t bh, int64_t l,
               int64_t d) {
  if (bh * l == 0) return;
  cudaStream_t s = stream();
  DeviceBuffer scores(size_t(bh * l) * sizeof(double));
  DeviceBuffer workspace(sec_argsort_workspace_bytes(bh, l));
  launch_sec_scores(k, int(type), scores.as<double>(), bh, l, d, s);
  launch_sec_argsort(scores.as<double>(), order, bh, l, workspace.as<void>(), s);
}

void sec_attention(const CudaAttentionArgs& a, int64_t clusters, int32_t* order) {
  if (a.bh * a.l == 0) return;
  if (clusters < 1) clusters = 1;
  if (clusters == 1 && order == nullptr) {
    global_attention(a);
    return;
  }
  DeviceBuffer own_order(order == nullptr ? size_t(a.bh * a.l) * sizeof(int32_t) : 0);
  if (order == nullptr) order = own_order.as<int32_t>();
  sec_order(a.k, a.type, order, a.bh, a.l, a.d);
  const SecMap map{order, int(a.l), int(clusters)};
  const int max_cluster = int((a.l + clusters - 1) / clusters);
  launch_attention(a, map, int(clusters), max_cluster, "SEC attention kernel");
}

// The same computation as sec_attention as separate passes with materialized intermediates
// (order; gather q, k, v into sorted order; attention over contiguous clusters; scatter), as a
// composition of separate ops would run it: the benchmark's baseline for what fusion saves.
void sec_attention_unfused(const CudaAttentionArgs& a, int64_t clusters, int32_t* order) {
  if (a.bh * a.l == 0) return;
  if (clusters < 1) clusters = 1;
  const size_t bytes = size_t(a.bh * a.l * a.d) * (a.type == CudaAttnType::F32 ? 4 : 2);
  DeviceBuffer own_order(order == nullptr ? size_t(a.bh * a.l) * sizeof(int32_t) : 0);
  if (order == nullptr) order = own_order.as<int32_t>();
  DeviceBuffer qs(bytes), ks(bytes), vs(bytes), os(bytes);
  sec_order(a.k, a.type, order, a.bh, a.l, a.d);
  permute_rows(a.q, qs.as<void>(), order, a, false);
  permute_rows(a.k, ks.as<void>(), order, a, false);
  permute_rows(a.v, vs.as<void>(), order, a, false);
  CudaAttentionArgs sorted = a;
  sorted.q = qs.as<void>();
  sorted.k = ks.as<void>();
  sorted.v = vs.as<void>();
  sorted.out = os.as<void>();
  launch_attention(sorted, SortedClusterMap{int(a.l), int(clusters)}, int(clusters),
                   int((a.l + clusters - 1) / clusters), "SEC attention kernel (unfused)");
  permute_rows(os.as<void>(), a.out, order, a, true);
}

namespace {
int32_t* order_out(const KernelArgs& a) {
  return a.p<AttentionOpParams>().return_order ? a.out[1].ptr<int32_t>() : nullptr;
}
void sec_kernel(const KernelArgs& a) {
  sec_attention(attention_args(a), a.p<AttentionOpParams>().clusters, order_out(a));
}
void sec_backward_kernel(const KernelArgs& a) {
  const AttentionOpParams& p = a.p<AttentionOpParams>();
  if (p.b * p.h * p.l == 0) return;
  const int64_t clusters = p.clusters < 1 ? 1 : p.clusters;
  const SecMap map{a.in[6].ptr<int32_t>(), int(p.l), int(clusters)};
  launch_attention_backward(a, map, int(clusters), int((p.l + clusters - 1) / clusters), "SEC attention backward kernel");
}
void sec_unfused_kernel(const KernelArgs& a) {
  sec_attention_unfused(attention_args(a), a.p<AttentionOpParams>().clusters, order_out(a));
}
}  // namespace

SECVIT_KERNEL(secAttention, SV_CUDA_DEVICE, kF32 | kF16 | kBF16, sec_kernel, attention_supports, 0);
SECVIT_KERNEL(secAttentionUnfused, SV_CUDA_DEVICE, kF32 | kF16 | kBF16, sec_unfused_kernel,
              attention_supports, 0);
SECVIT_KERNEL(secAttentionBackward, SV_CUDA_DEVICE, kF32 | kF16 | kBF16, sec_backward_kernel, attention_supports, 0);

}  // namespace SV_CUDA_NS
}  // namespace secvit
