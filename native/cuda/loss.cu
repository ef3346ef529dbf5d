// CUDA kernels of crossEntropy and its gradient (native/ops/loss.h): one block of 256 threads per
// row (max, then the exp-sum, then the target's dot product, as block reductions in fp32), the
// row losses into scratch and one more block for the mean or the sum. A target index outside the
// classes is flagged in device memory, read back after the kernel and thrown as the CPU kernel's
// error (the gradient's kernel recounts the rows a mean divides by, per block: batches are small).
#include <cstdint>

#include "../core/op.h"
#include "../ops/loss.h"
#include "cuda_backend.h"
#include "device_buffer.cuh"
#include "dtype_io.cuh"
#include "sums.cuh"
#include "reduce.cuh"

namespace secvit {
namespace SV_CUDA_NS {
namespace {

struct CeArgs {
  const void* z;
  const void* target;  // int32 [B] or probabilities [B, C] of dtype
  int dtype;
};

__device__ __forceinline__ float block_reduce(float v, float* part, bool max) {
  for (int off = 16; off > 0; off /= 2) {
    const float o = __shfl_xor_sync(0xffffffffu, v, off);
    v = max ? fmaxf(v, o) : v + o;
  }
  __syncthreads();
  if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = v;
  __syncthreads();
  float r = part[0];
  for (int i = 1; i < 8; ++i) r = max ? fmaxf(r, part[i]) : r + part[i];
  return r;
}

// q_j and sum(q) of row r (class targets: 1 - e + e/C at the class, e/C elsewhere).
__device__ __forceinline__ float target_q(const CrossEntropyParams& p, const CeArgs& a, int64_t r, int64_t j) {
  const float t = p.class_target ? (static_cast<const int32_t*>(a.target)[r] == j ? 1.0f : 0.0f)
                                 : load_as_float(a.target, a.dtype, r * p.c + j);
  return (1.0f - p.smoothing) * t + p.smoothing / float(p.c);
}

// -1: counted; -2: ignored; else the bad index.
__device__ __forceinline__ int64_t check_row(const CrossEntropyParams& p, const CeArgs& a, int64_t r) {
  if (!p.class_target) return -1;
  const int64_t t = static_cast<const int32_t*>(a.target)[r];
  if (t == p.ignore) return -2;
  return t >= 0 && t < p.c ? -1 : t;
}

__global__ void __launch_bounds__(256) ce_rows_kernel(CrossEntropyParams p, CeArgs a, float* lse, float* row, int* flag) {
  SV_SHARED(float[8], part);
  const int64_t r = blockIdx.x;
  float mx = -INFINITY;
  for (int64_t j = threadIdx.x; j < p.c; j += blockDim.x) mx = fmaxf(mx, load_as_float(a.z, a.dtype, r * p.c + j));
  mx = block_reduce(mx, part, true);
  float s = 0.0f, dot = 0.0f, total = 0.0f;
  for (int64_t j = threadIdx.x; j < p.c; j += blockDim.x) {
    const float zj = load_as_float(a.z, a.dtype, r * p.c + j);
    s += expf(zj - mx);
    const float q = target_q(p, a, r, j);
    dot += q * zj;
    total += q;
  }
  s = block_reduce(s, part, false);
  dot = block_reduce(dot, part, false);
  total = block_reduce(total, part, false);
  if (threadIdx.x != 0) return;
  const float l = mx + logf(s);
  lse[r] = l;
  const int64_t bad = check_row(p, a, r);
  if (bad >= 0 || bad < -2) {
    if (atomicCAS(&flag[0], -1, int(r)) == -1) flag[1] = int(bad);
  }
  row[r] = bad == -1 ? l * total - dot : 0.0f;
}

__global__ void __launch_bounds__(256) ce_reduce_kernel(CrossEntropyParams p, CeArgs a, const float* row, void* loss,
                                                        int out_dtype) {
  SV_SHARED(float[8], part);
  float s = 0.0f, n = 0.0f;
  for (int64_t r = threadIdx.x; r < p.b; r += blockDim.x) {
    s += row[r];
    n += check_row(p, a, r) == -1 ? 1.0f : 0.0f;
  }
  s = block_reduce(s, part, false);
  n = block_reduce(n, part, false);
  if (threadIdx.x == 0) store_from_float(loss, out_dtype, 0, p.reduction == 1 ? s : s / n);
}

__global__ void __launch_bounds__(256) ce_backward_kernel(CrossEntropyParams p, CeArgs a, const void* dl, const float* lse,
                                                          void* dz) {
  SV_SHARED(float[8], part);
  const int64_t r = blockIdx.x;
  float n = 0.0f;
  if (p.reduction == 0)
    for (int64_t i = threadIdx.x; i < p.b; i += blockDim.x) n += check_row(p, a, i) == -1 ? 1.0f : 0.0f;
  n = block_reduce(n, part, false);
  float total = 0.0f;
  for (int64_t j = threadIdx.x; j < p.c; j += blockDim.x) total += target_q(p, a, r, j);
  total = block_reduce(total, part, false);
  const bool counted = check_row(p, a, r) == -1;
  const float g = p.reduction == 2 ? load_as_float(dl, a.dtype, r)
                                   : (p.reduction == 1 ? load_as_float(dl, a.dtype, 0) : load_as_float(dl, a.dtype, 0) / n);
  for (int64_t j = threadIdx.x; j < p.c; j += blockDim.x) {
    const float v = counted ? g * (expf(load_as_float(a.z, a.dtype, r * p.c + j) - lse[r]) * total - target_q(p, a, r, j)) : 0.0f;
    store_from_float(dz, a.dtype, r * p.c + j, v);
  }
}

void check_flag(const CrossEntropyParams& p, const int* flag) {
  int host[2] = {-1, 0};
  backend()->copy_to_host(host, flag, sizeof host);
  if (host[0] >= 0)
    throw_range_error("crossEntropy: target[", host[0], "] = ", host[1], " is outside the classes [0, ", p.c,
                      ") (and is not ignoreIndex ", p.ignore, ")");
}

void cross_entropy_cuda(const KernelArgs& a) {
  const CrossEntropyParams& p = a.p<CrossEntropyParams>();
  const CeArgs args{a.in[0].data, a.in[1].data, int(a.in[0].dtype)};
  DeviceBuffer row(size_t(p.b > 0 ? p.b : 1) * sizeof(float));
  DeviceBuffer flag(2 * sizeof(int));
  backend()->fill(flag.as<int>(), 0xFF, 2 * sizeof(int));
  if (p.b > 0) {
    SV_LAUNCH(ce_rows_kernel, dim3(unsigned(p.b)), dim3(256), 0, stream(), p, args, a.out[1].ptr<float>(), row.as<float>(),
              flag.as<int>());
    SV_CUDA_CHECK_LAUNCH("ce_rows_kernel");
    check_flag(p, flag.as<int>());
  }
  if (p.reduction == 2) {
    if (p.b > 0) launch_column_sums(row.as<float>(), int(DType::Float32), 1, p.b, p.b, a.out[0].data, int(a.out[0].dtype));
    return;
  }
  SV_LAUNCH(ce_reduce_kernel, dim3(1), dim3(256), 0, stream(), p, args, static_cast<const float*>(row.as<float>()),
            a.out[0].data, int(a.out[0].dtype));
  SV_CUDA_CHECK_LAUNCH("ce_reduce_kernel");
}

void cross_entropy_backward_cuda(const KernelArgs& a) {
  const CrossEntropyParams& p = a.p<CrossEntropyParams>();
  if (p.b == 0) return;
  const CeArgs args{a.in[1].data, a.in[2].data, int(a.in[1].dtype)};
  SV_LAUNCH(ce_backward_kernel, dim3(unsigned(p.b)), dim3(256), 0, stream(), p, args, a.in[0].data,
            static_cast<const float*>(a.in[3].data), a.out[0].data);
  SV_CUDA_CHECK_LAUNCH("ce_backward_kernel");
}

bool ce_supports(const OpCall& c, std::string* why) {
  if (c.params<CrossEntropyParams>().b >= (int64_t(1) << 31)) {
    *why = "too many rows for one launch";
    return false;
  }
  return true;
}

}  // namespace

SECVIT_KERNEL(crossEntropy, SV_CUDA_DEVICE, kF32 | kF16 | kBF16, cross_entropy_cuda, ce_supports, 0);
SECVIT_KERNEL(crossEntropyBackward, SV_CUDA_DEVICE, kF32 | kF16 | kBF16, cross_entropy_backward_cuda, ce_supports, 0);

}  // namespace SV_CUDA_NS
}  // namespace secvit
