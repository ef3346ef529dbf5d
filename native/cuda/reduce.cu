// CUDA kernels of sum and sumSquares (native/ops/reduce.h): blocks of 32 outputs (tx) x 8 lanes
// (ty); lane ty of output o adds every 8th reduced element (offsets by division over the reduced
// dims), and the 8 lanes' sums meet in shared memory, in fp32. (No warp shuffles: a bias
// gradient is a few hundred outputs over tens of thousands of rows.)
// Cost: one read per element (coalesced when the innermost reduced dim is contiguous).
#include "../core/op.h"
#include "../ops/reduce.h"
#include "cuda_backend.h"
#include "dtype_io.cuh"
#include "reduce.cuh"

namespace secvit {
namespace SV_CUDA_NS {
namespace {

__device__ __forceinline__ int64_t dims_offset(int64_t i, int n, const int64_t* shape, const int64_t* stride) {
  int64_t off = 0;
  for (int k = n - 1; k >= 0; --k) {
    off += (i % shape[k]) * stride[k];
    i /= shape[k];
  }
  return off;
}

__global__ void __launch_bounds__(256) sum_kernel(SumOpParams p, const void* x, void* y, int dtype, int out_dtype) {
  SV_SHARED(float[8][33], part);
  const int tx = threadIdx.x % 32, ty = threadIdx.x / 32;
  for (int64_t o0 = int64_t(blockIdx.x) * 32; o0 < p.n_out; o0 += int64_t(gridDim.x) * 32) {
    const int64_t o = o0 + tx;
    float acc = 0.0f;
    if (o < p.n_out) {
      const int64_t base = dims_offset(o, p.nk, p.kshape, p.kstride);
      for (int64_t r = ty; r < p.n_red; r += 8) {
        const float v = load_as_float(x, dtype, base + dims_offset(r, p.nr, p.rshape, p.rstride));
        acc += p.squares ? v * v : v;
      }
    }
    part[ty][tx] = acc;
    __syncthreads();
    if (ty == 0 && o < p.n_out) {
      float s = 0.0f;
      for (int w = 0; w < 8; ++w) s += part[w][tx];
      store_from_float(y, out_dtype, o, s);
    }
    __syncthreads();
  }
}

// Few outputs (a norm, a total): a whole block per output, its 256 threads over the reduced
// elements, a warp-shuffle tree and a shared-memory step at the end.
__global__ void __launch_bounds__(256) sum_few_kernel(SumOpParams p, const void* x, void* y, int dtype, int out_dtype) {
  SV_SHARED(float[8], part);
  const int64_t o = blockIdx.x;
  const int64_t base = dims_offset(o, p.nk, p.kshape, p.kstride);
  float acc = 0.0f;
  for (int64_t r = threadIdx.x; r < p.n_red; r += blockDim.x) {
    const float v = load_as_float(x, dtype, base + dims_offset(r, p.nr, p.rshape, p.rstride));
    acc += p.squares ? v * v : v;
  }
  acc = warp_sum(acc);
  if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = acc;
  __syncthreads();
  if (threadIdx.x == 0) {
    float s = 0.0f;
    for (int w = 0; w < 8; ++w) s += part[w];
    store_from_float(y, out_dtype, o, s);
  }
}

void sum_cuda(const KernelArgs& a) {
  const SumOpParams& p = a.p<SumOpParams>();
  if (p.n_out == 0) return;
  if (p.n_out < 32) {
    SV_LAUNCH(sum_few_kernel, dim3(unsigned(p.n_out)), dim3(256), 0, stream(), p, a.in[0].data, a.out[0].data,
              int(a.in[0].dtype), int(a.out[0].dtype));
    SV_CUDA_CHECK_LAUNCH("sum_few_kernel");
    return;
  }
  const int64_t tiles = (p.n_out + 31) / 32;
  const unsigned blocks = unsigned(tiles < 65535 * 4 ? tiles : 65535 * 4);
  SV_LAUNCH(sum_kernel, dim3(blocks), dim3(256), 0, stream(), p, a.in[0].data, a.out[0].data, int(a.in[0].dtype),
            int(a.out[0].dtype));
  SV_CUDA_CHECK_LAUNCH("sum_kernel");
}

}  // namespace

SECVIT_KERNEL(sum, SV_CUDA_DEVICE, kF32 | kF16 | kBF16, sum_cuda, nullptr, ~0u);
SECVIT_KERNEL(sumSquares, SV_CUDA_DEVICE, kF32 | kF16 | kBF16, sum_cuda, nullptr, ~0u);

}  // namespace SV_CUDA_NS
}  // namespace secvit
