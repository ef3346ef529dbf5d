// CPU kernels of gelu, silu, add and mul (native/ops/elementwise.h). Operands dense in the
// output's memory order run as one flat loop in parallel chunks; otherwise rows of the
// output's innermost dim, with an odometer over the outer dims giving each operand's offset
// (stride 0 where it broadcasts). GELU and SiLU use the AVX2 activations of the GEMM epilogue.
// Cost: one read per operand element and one write per output element.
#include <algorithm>
#include <cstring>

#include "core/cpu_features.h"
#include "core/op.h"
#include "core/thread_pool.h"
#include "gemm.h"
#include "ops/elementwise.h"

namespace secvit::cpu {
namespace {

// One row of n outputs; a/b strided (0: broadcast). b null: the scalar.
void row(const EwOpParams& p, const float* a, int64_t sa, const float* b, int64_t sb, float* y,
         int64_t n, bool avx2) {
  switch (p.op) {
    case EwOp::Gelu:
    case EwOp::Silu:
      if (sa == 1) std::memcpy(y, a, size_t(n) * sizeof(float));
      else
        for (int64_t i = 0; i < n; ++i) y[i] = a[i * sa];
      if (avx2) act_inplace_avx2(p.op == EwOp::Gelu ? Act::Gelu : Act::Silu, y, n);
      else act_inplace_scalar(p.op == EwOp::Gelu ? Act::Gelu : Act::Silu, y, n);
      return;
    case EwOp::Add:
      if (b == nullptr) {
        const float s = p.scalar;
        for (int64_t i = 0; i < n; ++i) y[i] = a[i * sa] + s;
      } else if (sa == 1 && sb == 1) {
        for (int64_t i = 0; i < n; ++i) y[i] = a[i] + b[i];
      } else if (sa == 1 && sb == 0) {
        const float v = b[0];
        for (int64_t i = 0; i < n; ++i) y[i] = a[i] + v;
      } else {
        for (int64_t i = 0; i < n; ++i) y[i] = a[i * sa] + b[i * sb];
      }
      return;
    case EwOp::GeluGrad:
    case EwOp::SiluGrad: {
      const Act act = p.op == EwOp::GeluGrad ? Act::Gelu : Act::Silu;
      if (sa == 1 && sb == 1) {
        if (avx2) act_grad_avx2(act, a, b, y, n);
        else act_grad_scalar(act, a, b, y, n);
      } else {
        for (int64_t i = 0; i < n; ++i) act_grad_scalar(act, a + i * sa, b + i * sb, y + i, 1);
      }
      return;
    }
    case EwOp::Mul:
      if (b == nullptr) {
        const float s = p.scalar;
        for (int64_t i = 0; i < n; ++i) y[i] = a[i * sa] * s;
      } else if (sa == 1 && sb == 1) {
        for (int64_t i = 0; i < n; ++i) y[i] = a[i] * b[i];
      } else if (sa == 1 && sb == 0) {
        const float v = b[0];
        for (int64_t i = 0; i < n; ++i) y[i] = a[i] * v;
      } else {
        for (int64_t i = 0; i < n; ++i) y[i] = a[i * sa] * b[i * sb];
      }
      return;
  }
}

void elementwise_kernel(const KernelArgs& args) {
  const EwOpParams& p = args.p<EwOpParams>();
  const float* a = args.in[0].ptr<float>();
  const float* b = args.n_in > 1 ? args.in[1].ptr<float>() : nullptr;
  float* y = args.out[0].ptr<float>();
  const int64_t n = args.out[0].numel();
  if (n == 0) return;
  const bool avx2 = cpu_simd() == CpuSimd::Avx2Fma;
  ThreadPool& pool = ThreadPool::instance();
  if (p.flat || p.nd == 0) {
    pool.parallel_for((n + 4095) / 4096, 1, [&](int64_t c0, int64_t c1) {
      const int64_t i0 = c0 * 4096, i1 = std::min(n, c1 * 4096);
      row(p, a + i0, 1, b != nullptr ? b + i0 : nullptr, 1, y + i0, i1 - i0, avx2);
    });
    return;
  }
  const int nd = p.nd;
  const int64_t inner = p.shape[nd - 1];
  const int64_t rows = n / inner;
  pool.parallel_for(rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(inner, 1)), [&](int64_t r0, int64_t r1) {
    int64_t idx[kMaxDims] = {};
    int64_t rem = r0;
    for (int k = nd - 2; k >= 0; --k) {
      idx[k] = rem % p.shape[k];
      rem /= p.shape[k];
    }
    for (int64_t r = r0; r < r1; ++r) {
      int64_t ao = 0, bo = 0;
      for (int k = 0; k < nd - 1; ++k) {
        ao += idx[k] * p.as[k];
        bo += idx[k] * p.bs[k];
      }
      row(p, a + ao, p.as[nd - 1], b != nullptr ? b + bo : nullptr, p.bs[nd - 1], y + r * inner, inner, avx2);
      for (int k = nd - 2; k >= 0; --k) {
        if (++idx[k] < p.shape[k]) break;
        idx[k] = 0;
      }
    }
  });
}

}  // namespace

SECVIT_KERNEL(gelu, Device::Cpu, kF32, elementwise_kernel, nullptr, ~0u);
SECVIT_KERNEL(silu, Device::Cpu, kF32, elementwise_kernel, nullptr, ~0u);
SECVIT_KERNEL(add, Device::Cpu, kF32, elementwise_kernel, nullptr, ~0u);
SECVIT_KERNEL(mul, Device::Cpu, kF32, elementwise_kernel, nullptr, ~0u);
SECVIT_KERNEL(activationBackward, Device::Cpu, kF32, elementwise_kernel, nullptr, ~0u);

}  // namespace secvit::cpu
