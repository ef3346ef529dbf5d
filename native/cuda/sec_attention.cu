// SEC attention, fused (SPEC section 1): scores -> segmented argsort -> one fused kernel per
// (head, cluster, query tile) that gathers the cluster's q/k/v rows through `order`, runs
// QK^T-softmax-PV with an online softmax and writes each row to out[order[p]].
// Kernels: sec_scores.cu, sec_argsort.cu, group_attention.cuh (shared with window and global
// attention). Three launches per call, q/v read once, k read twice (scores, attention), out
// written once; the only intermediates are scores (8 B/token) and order (4 B/token).
#include "attention.h"
#include "cuda_backend.h"
#include "device_buffer.cuh"
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

}  // namespace SV_CUDA_NS
}  // namespace secvit
