// CUDA kernels of sum and sumSquares (native/ops/reduce.h): one block of 256 threads per output
// (blocks stride over the outputs); each thread adds every 256th reduced element (offsets by
// division over the reduced dims), then a warp-shuffle tree and a shared-memory step combine the
// block's partial sums, in fp32 (pairwise, so the error grows with log n, not n).
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
  SV_SHARED(float[8], part);
  for (int64_t o = blockIdx.x; o < p.n_out; o += gridDim.x) {
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
    __syncthreads();
  }
}

void sum_cuda(const KernelArgs& a) {
  const SumOpParams& p = a.p<SumOpParams>();
  if (p.n_out == 0) return;
  const unsigned blocks = unsigned(p.n_out < 65535 * 4 ? p.n_out : 65535 * 4);
  SV_LAUNCH(sum_kernel, dim3(blocks), dim3(256), 0, stream(), p, a.in[0].data, a.out[0].data, int(a.in[0].dtype),
            int(a.out[0].dtype));
  SV_CUDA_CHECK_LAUNCH("sum_kernel");
}

}  // namespace

SECVIT_KERNEL(sum, SV_CUDA_DEVICE, kF32 | kF16 | kBF16, sum_cuda, nullptr, ~0u);
SECVIT_KERNEL(sumSquares, SV_CUDA_DEVICE, kF32 | kF16 | kBF16, sum_cuda, nullptr, ~0u);

}  // namespace SV_CUDA_NS
}  // namespace secvit
