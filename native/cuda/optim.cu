// CUDA kernels of the optimizer updates and dropout (native/ops/optim.h): one thread per element
// (grid-stride); dropout's mask from the same Philox counters as the CPU kernel's.
// Cost: as the CPU kernels, one pass per tensor.
#include <cmath>

#include "../core/op.h"
#include "../core/philox.h"
#include "../ops/optim.h"
#include "cuda_backend.h"
#include "dtype_io.cuh"

namespace secvit {
namespace SV_CUDA_NS {
namespace {

#define SV_FOR_EACH(i, n) \
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

__global__ void __launch_bounds__(256) adamw_kernel(AdamWParams p, float* w, const float* g, float* m, float* v, float decay,
                                                    float step, float rb2) {
  SV_FOR_EACH(i, p.n) {
    const float gi = g[i];
    const float mi = p.beta1 * m[i] + (1.0f - p.beta1) * gi;
    const float vi = p.beta2 * v[i] + (1.0f - p.beta2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    w[i] = w[i] * decay - step * mi / (sqrtf(vi) * rb2 + p.eps);
  }
}

__global__ void __launch_bounds__(256) sgd_kernel(SgdParams p, float* w, const float* g, float* buf) {
  SV_FOR_EACH(i, p.n) {
    float d = g[i] + p.weight_decay * w[i];
    if (p.momentum != 0.0f) {
      const float b = p.first ? d : p.momentum * buf[i] + (1.0f - p.dampening) * d;
      buf[i] = b;
      d = p.nesterov ? d + p.momentum * b : b;
    }
    w[i] -= p.lr * d;
  }
}

__global__ void __launch_bounds__(256) scale_kernel(ScaleParams p, float* x) {
  SV_FOR_EACH(i, p.n) x[i] *= p.scale;
}

__global__ void __launch_bounds__(256) dropout_kernel(DropoutParams p, const void* x, void* y, int dtype) {
  const float keep = 1.0f / (1.0f - p.p);
  SV_FOR_EACH(i, p.n) {
    const uint64_t ctr = p.offset + uint64_t(p.per > 0 ? i / p.per : i);
    const float xi = load_as_float(x, dtype, i);
    store_from_float(y, dtype, i, philox_uniform(p.seed, ctr) >= p.p ? xi * keep : 0.0f * xi);
  }
}

void adamw_cuda(const KernelArgs& a) {
  const AdamWParams& p = a.p<AdamWParams>();
  if (p.n == 0) return;
  SV_LAUNCH(adamw_kernel, dim3(grid_for(p.n, 256)), dim3(256), 0, stream(), p, a.out[0].ptr<float>(), a.in[1].ptr<float>(),
            a.out[1].ptr<float>(), a.out[2].ptr<float>(), float(1.0 - double(p.lr) * double(p.weight_decay)),
            float(double(p.lr) / p.bias1), float(1.0 / std::sqrt(p.bias2)));
  SV_CUDA_CHECK_LAUNCH("adamw_kernel");
}

void sgd_cuda(const KernelArgs& a) {
  const SgdParams& p = a.p<SgdParams>();
  if (p.n == 0) return;
  SV_LAUNCH(sgd_kernel, dim3(grid_for(p.n, 256)), dim3(256), 0, stream(), p, a.out[0].ptr<float>(), a.in[1].ptr<float>(),
            p.has_buffer ? a.out[1].ptr<float>() : nullptr);
  SV_CUDA_CHECK_LAUNCH("sgd_kernel");
}

void scale_cuda(const KernelArgs& a) {
  const ScaleParams& p = a.p<ScaleParams>();
  if (p.n == 0) return;
  SV_LAUNCH(scale_kernel, dim3(grid_for(p.n, 256)), dim3(256), 0, stream(), p, a.out[0].ptr<float>());
  SV_CUDA_CHECK_LAUNCH("scale_kernel");
}

void dropout_cuda(const KernelArgs& a) {
  const DropoutParams& p = a.p<DropoutParams>();
  if (p.n == 0) return;
  SV_LAUNCH(dropout_kernel, dim3(grid_for(p.n, 256)), dim3(256), 0, stream(), p, a.in[0].data, a.out[0].data,
            int(a.in[0].dtype));
  SV_CUDA_CHECK_LAUNCH("dropout_kernel");
}

}  // namespace

SECVIT_KERNEL(adamwStep, SV_CUDA_DEVICE, kF32, adamw_cuda, nullptr, 0);
SECVIT_KERNEL(sgdStep, SV_CUDA_DEVICE, kF32, sgd_cuda, nullptr, 0);
SECVIT_KERNEL(scaleInPlace, SV_CUDA_DEVICE, kF32, scale_cuda, nullptr, 0);
SECVIT_KERNEL(dropout, SV_CUDA_DEVICE, kF32 | kF16 | kBF16, dropout_cuda, nullptr, 0);

}  // namespace SV_CUDA_NS
}  // namespace secvit
