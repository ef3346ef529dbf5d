// CPU kernels of the optimizer updates and dropout (native/ops/optim.h): one pass over each
// tensor in parallel chunks (plain loops the compiler vectorises); dropout's mask from Philox
// (core/philox.h) by element counter, the same numbers as the CUDA kernel's.
// Cost: AdamW reads 4 and writes 3 floats per element; SGD 2-3 and 1-2.
#include <algorithm>
#include <cmath>

#include "core/op.h"
#include "core/philox.h"
#include "core/thread_pool.h"
#include "ops/optim.h"

namespace secvit::cpu {
namespace {

template <typename F>
void chunks(int64_t n, F fn) {
  ThreadPool::instance().parallel_for((n + 8191) / 8192, 1, [&](int64_t c0, int64_t c1) {
    fn(c0 * 8192, std::min(n, c1 * 8192));
  });
}

void adamw_kernel(const KernelArgs& a) {
  const AdamWParams& p = a.p<AdamWParams>();
  float* w = a.out[0].ptr<float>();
  const float* g = a.in[1].ptr<float>();
  float* m = a.out[1].ptr<float>();
  float* v = a.out[2].ptr<float>();
  const float decay = float(1.0 - double(p.lr) * double(p.weight_decay));
  const float step = float(double(p.lr) / p.bias1);
  const float rb2 = float(1.0 / std::sqrt(p.bias2));
  const float b1 = p.beta1, b2 = p.beta2, c1 = 1.0f - p.beta1, c2 = 1.0f - p.beta2, eps = p.eps;
  chunks(p.n, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const float gi = g[i];
      const float mi = b1 * m[i] + c1 * gi;
      const float vi = b2 * v[i] + c2 * gi * gi;
      m[i] = mi;
      v[i] = vi;
      w[i] = w[i] * decay - step * mi / (std::sqrt(vi) * rb2 + eps);
    }
  });
}

void sgd_kernel(const KernelArgs& a) {
  const SgdParams& p = a.p<SgdParams>();
  float* w = a.out[0].ptr<float>();
  const float* g = a.in[1].ptr<float>();
  float* buf = p.has_buffer ? a.out[1].ptr<float>() : nullptr;
  chunks(p.n, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      float d = g[i] + p.weight_decay * w[i];
      if (p.momentum != 0.0f) {
        const float b = p.first ? d : p.momentum * buf[i] + (1.0f - p.dampening) * d;
        buf[i] = b;
        d = p.nesterov ? d + p.momentum * b : b;
      }
      w[i] -= p.lr * d;
    }
  });
}

void scale_kernel(const KernelArgs& a) {
  const ScaleParams& p = a.p<ScaleParams>();
  float* x = a.out[0].ptr<float>();
  chunks(p.n, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) x[i] *= p.scale;
  });
}

void dropout_kernel(const KernelArgs& a) {
  const DropoutParams& p = a.p<DropoutParams>();
  const float* x = a.in[0].ptr<float>();
  float* y = a.out[0].ptr<float>();
  const float keep = 1.0f / (1.0f - p.p);
  if (p.per > 0) {
    // Drop path: one draw per sample, then a plain scaled copy of its span (0 * x keeps NaN).
    chunks(p.n, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1;) {
        const int64_t sample = i / p.per;
        const int64_t end = std::min(i1, (sample + 1) * p.per);
        const float f = philox_uniform(p.seed, p.offset + uint64_t(sample)) >= p.p ? keep : 0.0f;
        for (; i < end; ++i) y[i] = x[i] * f;
      }
    });
    return;
  }
  chunks(p.n, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i)
      y[i] = philox_uniform(p.seed, p.offset + uint64_t(i)) >= p.p ? x[i] * keep : 0.0f * x[i];
  });
}

}  // namespace

SECVIT_KERNEL(adamwStep, Device::Cpu, kF32, adamw_kernel, nullptr, 0);
SECVIT_KERNEL(sgdStep, Device::Cpu, kF32, sgd_kernel, nullptr, 0);
SECVIT_KERNEL(scaleInPlace, Device::Cpu, kF32, scale_kernel, nullptr, 0);
SECVIT_KERNEL(dropout, Device::Cpu, kF32, dropout_kernel, nullptr, 0);

}  // namespace secvit::cpu
