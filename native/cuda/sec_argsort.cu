// SEC step 3: stable argsort of each (image, head)'s scores, ascending, ties by token index.
//
// Layout: scores [BH, L] fp64 -> order [BH, L] int32. Keys are compared as (score, index)
// pairs, which makes the sort stable by construction; padding to a power of two uses
// (+inf, INT_MAX), which sorts last, so order is the first L sorted indices: no second sort or
// inverse permutation is ever needed.
// Algorithm: bitonic sort.
//   L <= 4096 (SecViT at 224: 3136, 784, 196): one block per segment sorts in shared memory
//     (12 bytes per element, 48 KiB at 4096), one launch.
//   L  > 4096 (e.g. 65536 at stage 0 of a 1024x1024 image): segments live in a global
//     workspace; blocks sort 2048-element chunks in shared memory, then each merge stage k does
//     its long-distance steps (j >= 2048) one kernel per step over global memory and its short
//     steps (j < 2048) in one shared-memory kernel per chunk. log2(n)^2/2 compare-exchange
//     rounds, most of them in shared memory.
// Cost: ~n/2 * log2(n)*(log2(n)+1)/2 compare-exchanges per segment; bytes: 12n per global step.
#include <climits>
#include <cmath>

#include "cuda_compat.h"
#include "sec_kernels.cuh"

namespace secvit {
namespace SV_CUDA_NS {
namespace {

constexpr int kOneBlockMax = 4096;
constexpr int kChunk = 2048;
constexpr int kMaxThreads = 1024;

__device__ __forceinline__ bool key_less(double sa, int ia, double sb, int ib) {
  return sa < sb || (sa == sb && ia < ib);
}

// One compare-exchange of elements i < p = i + j in a bitonic network whose current merge
// size is k: ascending where bit k of the *global* index i is clear.
__device__ __forceinline__ void compare_exchange(double* key, int* idx, int i, int p,
                                                 bool ascending) {
  const bool swap = ascending ? key_less(key[p], idx[p], key[i], idx[i])
                              : key_less(key[i], idx[i], key[p], idx[p]);
  if (swap) {
    const double tk = key[i];
    key[i] = key[p];
    key[p] = tk;
    const int ti = idx[i];
    idx[i] = idx[p];
    idx[p] = ti;
  }
}

// Sorts or merges one chunk of n elements in shared memory: stages k in [k_begin, k_end], each
// with steps j = min(k/2, n/2) .. 1. `base` is the chunk's offset in its segment.
__global__ void __launch_bounds__(kMaxThreads)
    bitonic_chunk_kernel(const double* __restrict__ scores, double* keys, int* idxs,
                         int32_t* __restrict__ order, int l, int npad, int n, int k_begin,
                         int k_end, int from_scores, int to_order) {
  SV_DYNAMIC_SHARED(unsigned char, smem);
  double* key = reinterpret_cast<double*>(smem);
  int* idx = reinterpret_cast<int*>(key + n);
  const int seg = blockIdx.y;
  const int base = blockIdx.x * n;
  for (int t = threadIdx.x; t < n; t += blockDim.x) {
    const int gi = base + t;
    if (from_scores) {
      key[t] = gi < l ? scores[int64_t(seg) * l + gi] : double(INFINITY);
      idx[t] = gi < l ? gi : INT_MAX;
    } else {
      key[t] = keys[int64_t(seg) * npad + gi];
      idx[t] = idxs[int64_t(seg) * npad + gi];
    }
  }
  __syncthreads();
  for (int k = k_begin; k <= k_end; k *= 2) {
    for (int j = min(k / 2, n / 2); j > 0; j /= 2) {
      for (int t = threadIdx.x; t < n / 2; t += blockDim.x) {
        const int i = (t / j) * 2 * j + (t % j);
        compare_exchange(key, idx, i, i + j, ((base + i) & k) == 0);
      }
      __syncthreads();
    }
  }
  for (int t = threadIdx.x; t < n; t += blockDim.x) {
    const int gi = base + t;
    if (to_order) {
      if (gi < l) order[int64_t(seg) * l + gi] = idx[t];
    } else {
      keys[int64_t(seg) * npad + gi] = key[t];
      idxs[int64_t(seg) * npad + gi] = idx[t];
    }
  }
}

// One long-distance step (j >= kChunk) of merge stage k over a whole segment in global memory.
__global__ void bitonic_global_step_kernel(double* keys, int* idxs, int npad, int k, int j) {
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= npad / 2) return;
  const int i = (t / j) * 2 * j + (t % j);
  compare_exchange(keys + int64_t(blockIdx.y) * npad, idxs + int64_t(blockIdx.y) * npad, i, i + j,
                   (i & k) == 0);
}

__global__ void argsort_write_order_kernel(const int* __restrict__ idxs, int32_t* __restrict__ order,
                                           int l, int npad) {
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  if (t < l) order[int64_t(blockIdx.y) * l + t] = idxs[int64_t(blockIdx.y) * npad + t];
}

int64_t next_pow2(int64_t x) {
  int64_t p = 1;
  while (p < x) p *= 2;
  return p;
}

}  // namespace

size_t sec_argsort_workspace_bytes(int64_t bh, int64_t l) {
  const int64_t npad = next_pow2(l);
  return npad <= kOneBlockMax ? 0 : size_t(bh * npad) * (sizeof(double) + sizeof(int));
}

void launch_sec_argsort(const double* scores, int32_t* order, int64_t bh, int64_t l,
                        void* workspace, cudaStream_t stream) {
  if (bh == 0 || l == 0) return;
  const int npad = int(next_pow2(l));
  auto* chunk_kernel = &bitonic_chunk_kernel;
  if (npad <= kOneBlockMax) {
    const int threads = npad / 2 < 32 ? 32 : (npad / 2 > kMaxThreads ? kMaxThreads : npad / 2);
    SV_LAUNCH(chunk_kernel, dim3(1, unsigned(bh)), dim3(threads), size_t(npad) * 12, stream,
              scores, nullptr, nullptr, order, int(l), npad, npad, 2, npad, 1, 1);
    SV_CUDA_CHECK_LAUNCH("bitonic_chunk_kernel (one block)");
    return;
  }
  double* keys = static_cast<double*>(workspace);
  int* idxs = reinterpret_cast<int*>(keys + bh * npad);
  const dim3 chunks(unsigned(npad / kChunk), unsigned(bh));
  SV_LAUNCH(chunk_kernel, chunks, dim3(kMaxThreads), size_t(kChunk) * 12, stream, scores, keys,
            idxs, order, int(l), npad, kChunk, 2, kChunk, 1, 0);
  SV_CUDA_CHECK_LAUNCH("bitonic_chunk_kernel (chunk sort)");
  for (int k = 2 * kChunk; k <= npad; k *= 2) {
    for (int j = k / 2; j >= kChunk; j /= 2) {
      SV_LAUNCH(bitonic_global_step_kernel, dim3(unsigned((npad / 2 + 255) / 256), unsigned(bh)),
                dim3(256), 0, stream, keys, idxs, npad, k, j);
      SV_CUDA_CHECK_LAUNCH("bitonic_global_step_kernel");
    }
    SV_LAUNCH(chunk_kernel, chunks, dim3(kMaxThreads), size_t(kChunk) * 12, stream, scores, keys,
              idxs, order, int(l), npad, kChunk, k, k, 0, 0);
    SV_CUDA_CHECK_LAUNCH("bitonic_chunk_kernel (merge)");
  }
  SV_LAUNCH(argsort_write_order_kernel, dim3(unsigned((l + 255) / 256), unsigned(bh)), dim3(256),
            0, stream, idxs, order, int(l), npad);
  SV_CUDA_CHECK_LAUNCH("argsort_write_order_kernel");
}

}  // namespace SV_CUDA_NS
}  // namespace secvit
