// CUDA kernel of `rope2d` (native/ops/rope2d.h): one thread per rotated pair (x_j, x_j+1) of the
// output, in output order; the angle's sine and cosine computed in place (sincosf).
// Cost: 2 reads and 2 writes per pair.
#include "../core/op.h"
#include "../ops/rope2d.h"
#include "cuda_backend.h"
#include "dtype_io.cuh"
#include "rope2d.cuh"

namespace secvit {
namespace SV_CUDA_NS {
namespace {

__global__ void __launch_bounds__(256) rope2d_kernel(Rope2dOpParams p, const void* x, const void* angle, void* y, int dtype) {
  const int64_t pairs = p.b * p.h * p.l * (p.d / 2);
  const int64_t half = p.d / 2;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < pairs; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t j = (e % half) * 2;
    const int64_t l = (e / half) % p.l, bh = e / (half * p.l);
    const int64_t b = bh / p.h, h = bh % p.h;
    const int64_t src = b * p.xs[0] + h * p.xs[1] + l * p.xs[2];
    float v0 = load_as_float(x, dtype, src + j * p.xs[3]);
    float v1 = load_as_float(x, dtype, src + (j + 1) * p.xs[3]);
    rope_rotate_pair(v0, v1, angle, dtype, j, p.d, l / p.width, l % p.width);
    const int64_t dst = (bh * p.l + l) * p.d + j;
    store_from_float(y, dtype, dst, v0);
    store_from_float(y, dtype, dst + 1, v1);
  }
}

void rope2d_cuda(const KernelArgs& a) {
  const Rope2dOpParams& p = a.p<Rope2dOpParams>();
  const int64_t pairs = p.b * p.h * p.l * (p.d / 2);
  if (pairs == 0) return;
  SV_LAUNCH(rope2d_kernel, dim3(grid_for(pairs, 256)), dim3(256), 0, stream(), p, a.in[0].data, a.in[1].data,
            a.out[0].data, int(a.in[0].dtype));
  SV_CUDA_CHECK_LAUNCH("rope2d_kernel");
}

}  // namespace

SECVIT_KERNEL(rope2d, SV_CUDA_DEVICE, kF32 | kF16 | kBF16, rope2d_cuda, nullptr, 1u);

}  // namespace SV_CUDA_NS
}  // namespace secvit
