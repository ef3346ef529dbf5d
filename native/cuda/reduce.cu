// CUDA kernels of sum and sumSquares (native/ops/reduce.h): the shared sums of sums.cuh.
#include "../core/op.h"
#include "../ops/reduce.h"
#include "cuda_backend.h"
#include "sums.cuh"

namespace secvit {
namespace SV_CUDA_NS {
namespace {

void sum_cuda(const KernelArgs& a) {
  launch_sum(a.p<SumOpParams>(), a.in[0].data, int(a.in[0].dtype), a.out[0].data, int(a.out[0].dtype));
}

}  // namespace

SECVIT_KERNEL(sum, SV_CUDA_DEVICE, kF32 | kF16 | kBF16, sum_cuda, nullptr, ~0u);
SECVIT_KERNEL(sumSquares, SV_CUDA_DEVICE, kF32 | kF16 | kBF16, sum_cuda, nullptr, ~0u);

}  // namespace SV_CUDA_NS
}  // namespace secvit
