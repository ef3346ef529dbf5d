// SEC step 1-2: cosine score of every key against the mean key, per (image, head).
//
// Layout: k [BH, L, D] row-major, fp32 or 16-bit (bf16/fp16); scores [BH, L] fp64.
// Algorithm: one block per (b, h). Warps split the rows, lanes split the channels (coalesced
// 128-byte reads of a row): per-warp partial sums of k -> shared -> g = mean, |g|. Then each
// warp takes rows again and reduces <g, k_i> and |k_i|^2 across its lanes with shuffles.
// Scores are fp64 so that near-ties order exactly like the double reference (the work is L*D
// FMAs per head, negligible next to attention).
// Cost per head: ~4*L*D flops; reads k twice (2*4*L*D bytes, the second pass mostly from L2),
// writes 8*L bytes.
#include "cuda_compat.h"
#include "reduce.cuh"
#include "sec_kernels.cuh"

namespace secvit {
namespace SV_CUDA_NS {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kMaxD = 256;

// KType: 0 fp32, 1 bf16, 2 fp16 (raw 16-bit values).
template <int KType>
__device__ __forceinline__ double load_key(const void* k, int64_t i) {
  if constexpr (KType == 0) return double(static_cast<const float*>(k)[i]);
  else if constexpr (KType == 1)
    return double(__bfloat162float(__ushort_as_bfloat16(static_cast<const unsigned short*>(k)[i])));
  else return double(__half2float(__ushort_as_half(static_cast<const unsigned short*>(k)[i])));
}

template <int KType>
__global__ void __launch_bounds__(kThreads)
    sec_scores_kernel(const void* __restrict__ k, double* __restrict__ scores, int l, int d) {
  SV_SHARED(double[kWarps][kMaxD], partial);
  SV_SHARED(double[kMaxD], g);
  SV_SHARED(double, g_norm);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t kh = int64_t(blockIdx.x) * l * d;

  for (int c = lane; c < d; c += 32) {
    double acc = 0.0;
    for (int i = warp; i < l; i += kWarps) acc += load_key<KType>(k, kh + int64_t(i) * d + c);
    partial[warp][c] = acc;
  }
  __syncthreads();
  for (int c = threadIdx.x; c < d; c += kThreads) {
    double acc = 0.0;
    for (int w = 0; w < kWarps; ++w) acc += partial[w][c];
    g[c] = acc / double(l);
  }
  __syncthreads();
  if (warp == 0) {
    double sq = 0.0;
    for (int c = lane; c < d; c += 32) sq += g[c] * g[c];
    sq = warp_sum(sq);
    if (lane == 0) g_norm = fmax(sqrt(sq), 1e-12);
  }
  __syncthreads();

  const double gn = g_norm;
  for (int i = warp; i < l; i += kWarps) {
    double dot = 0.0, kn = 0.0;
    for (int c = lane; c < d; c += 32) {
      const double kv = load_key<KType>(k, kh + int64_t(i) * d + c);
      dot += g[c] * kv;
      kn += kv * kv;
    }
    dot = warp_sum(dot);
    kn = warp_sum(kn);
    if (lane == 0) scores[int64_t(blockIdx.x) * l + i] = dot / (gn * fmax(sqrt(kn), 1e-12));
  }
}

}  // namespace

void launch_sec_scores(const void* k, int k_type, double* scores, int64_t bh, int64_t l,
                       int64_t d, cudaStream_t stream) {
  if (bh == 0 || l == 0) return;
  auto* kernel = k_type == 0 ? &sec_scores_kernel<0>
                             : (k_type == 1 ? &sec_scores_kernel<1> : &sec_scores_kernel<2>);
  SV_LAUNCH(kernel, dim3(unsigned(bh)), dim3(kThreads), 0, stream, k, scores, int(l), int(d));
  SV_CUDA_CHECK_LAUNCH("sec_scores_kernel");
}

}  // namespace SV_CUDA_NS
}  // namespace secvit
