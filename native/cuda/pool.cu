// CUDA kernel of `globalAvgPool2d` (native/ops/pool.h): one thread per (image, channel), summing
// its pixels in double (for channels-last x, neighbouring threads read neighbouring channels:
// coalesced). Cost: one read per element.
#include "../core/op.h"
#include "../ops/pool.h"
#include "cuda_backend.h"
#include "dtype_io.cuh"

namespace secvit {
namespace SV_CUDA_NS {
namespace {

__global__ void __launch_bounds__(256) pool_kernel(PoolOpParams p, const void* x, void* y, int dtype) {
  const int64_t total = p.b * p.c;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t b = e / p.c, c = e % p.c;
    const int64_t base = b * p.xs[0] + c * p.xs[1];
    double s = 0.0;
    for (int64_t yy = 0; yy < p.h; ++yy)
      for (int64_t xx = 0; xx < p.w; ++xx) s += double(load_as_float(x, dtype, base + yy * p.xs[2] + xx * p.xs[3]));
    store_from_float(y, dtype, e, float(s / double(p.h * p.w)));
  }
}

void pool_cuda(const KernelArgs& a) {
  const PoolOpParams& p = a.p<PoolOpParams>();
  if (p.b * p.c == 0) return;
  SV_LAUNCH(pool_kernel, dim3(grid_for(p.b * p.c, 256)), dim3(256), 0, stream(), p, a.in[0].data, a.out[0].data,
            int(a.in[0].dtype));
  SV_CUDA_CHECK_LAUNCH("pool_kernel");
}

}  // namespace

SECVIT_KERNEL(globalAvgPool2d, SV_CUDA_DEVICE, kF32 | kF16 | kBF16, pool_cuda, nullptr, 1u);

}  // namespace SV_CUDA_NS
}  // namespace secvit
