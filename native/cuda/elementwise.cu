// CUDA kernels of gelu, silu, add and mul (native/ops/elementwise.h): one thread per output
// element in the output's memory order (grid-stride), operand offsets from the element's index
// over the dims in that order (stride 0 where an operand broadcasts), or the index itself when
// every operand is dense in that order. fp32 math for every dtype.
// Cost: one read per operand element, one write per output element.
#include "../core/op.h"
#include "../ops/elementwise.h"
#include "cuda_backend.h"
#include "dtype_io.cuh"
#include "gemm.cuh"

namespace secvit {
namespace SV_CUDA_NS {
namespace {

__global__ void __launch_bounds__(256) elementwise_kernel(EwOpParams p, const void* a, const void* b, void* y,
                                                          int64_t n, int dtype) {
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    int64_t ao = e, bo = e;
    if (!p.flat) {
      ao = bo = 0;
      int64_t rem = e;
      for (int k = p.nd - 1; k >= 0; --k) {
        const int64_t i = rem % p.shape[k];
        rem /= p.shape[k];
        ao += i * p.as[k];
        bo += i * p.bs[k];
      }
    }
    const float x = load_as_float(a, dtype, ao);
    float v;
    switch (p.op) {
      case EwOp::Gelu: v = gemm_act(1, x); break;
      case EwOp::Silu: v = gemm_act(2, x); break;
      case EwOp::Add: v = x + (b != nullptr ? load_as_float(b, dtype, bo) : p.scalar); break;
      case EwOp::GeluGrad: v = x * gemm_act_grad(1, load_as_float(b, dtype, bo)); break;
      case EwOp::SiluGrad: v = x * gemm_act_grad(2, load_as_float(b, dtype, bo)); break;
      default: v = x * (b != nullptr ? load_as_float(b, dtype, bo) : p.scalar); break;
    }
    store_from_float(y, dtype, e, v);
  }
}

void elementwise_cuda(const KernelArgs& a) {
  const EwOpParams& p = a.p<EwOpParams>();
  const int64_t n = a.out[0].numel();
  if (n == 0) return;
  const void* b = a.n_in > 1 ? a.in[1].data : nullptr;
  SV_LAUNCH(elementwise_kernel, dim3(grid_for(n, 256)), dim3(256), 0, stream(), p, a.in[0].data, b,
            a.out[0].data, n, int(a.in[0].dtype));
  SV_CUDA_CHECK_LAUNCH("elementwise_kernel");
}

}  // namespace

SECVIT_KERNEL(gelu, SV_CUDA_DEVICE, kF32 | kF16 | kBF16, elementwise_cuda, nullptr, ~0u);
SECVIT_KERNEL(silu, SV_CUDA_DEVICE, kF32 | kF16 | kBF16, elementwise_cuda, nullptr, ~0u);
SECVIT_KERNEL(add, SV_CUDA_DEVICE, kF32 | kF16 | kBF16, elementwise_cuda, nullptr, ~0u);
SECVIT_KERNEL(mul, SV_CUDA_DEVICE, kF32 | kF16 | kBF16, elementwise_cuda, nullptr, ~0u);
SECVIT_KERNEL(activationBackward, SV_CUDA_DEVICE, kF32 | kF16 | kBF16, elementwise_cuda, nullptr, ~0u);

}  // namespace SV_CUDA_NS
}  // namespace secvit
