// CPU kernels of crossEntropy and its gradient (native/ops/loss.h): rows in parallel, each row's
// log-sum-exp in one max pass and one exp-sum pass (in double: C may be 1000s), the row losses
// summed in double at the end (fixed order: the result does not depend on the thread count).
// Cost: ~3 reads of the logits, one write of dlogits in the backward.
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/op.h"
#include "core/thread_pool.h"
#include "ops/loss.h"

namespace secvit::cpu {
namespace {

// The target distribution's entry for class j of row r, and its total over the row.
struct Target {
  const CrossEntropyParams& p;
  const int32_t* cls;
  const float* prob;
  // -1: counted row, else the bad index (an error), or -2: an ignored row.
  int64_t check(int64_t r) const {
    if (!p.class_target) return -1;
    const int64_t t = cls[r];
    if (t == p.ignore) return -2;
    return t >= 0 && t < p.c ? -1 : t;
  }
  double q(int64_t r, int64_t j) const {
    const double e = p.smoothing;
    const double t = p.class_target ? (cls[r] == j ? 1.0 : 0.0) : double(prob[r * p.c + j]);
    return (1.0 - e) * t + e / double(p.c);
  }
  double total(int64_t r) const {
    if (p.class_target) return 1.0;
    double s = 0.0;
    for (int64_t j = 0; j < p.c; ++j) s += prob[r * p.c + j];
    return (1.0 - p.smoothing) * s + p.smoothing;
  }
};

[[noreturn]] void bad_target(const CrossEntropyParams& p, int64_t r, int64_t t) {
  throw_range_error("crossEntropy: target[", r, "] = ", t, " is outside the classes [0, ", p.c, ") (and is not ignoreIndex ",
                    p.ignore, ")");
}

void cross_entropy_kernel(const KernelArgs& a) {
  const CrossEntropyParams& p = a.p<CrossEntropyParams>();
  const float* z = a.in[0].ptr<float>();
  const Target t{p, a.in[1].dtype == DType::Int32 ? a.in[1].ptr<int32_t>() : nullptr,
                 a.in[1].dtype == DType::Int32 ? nullptr : a.in[1].ptr<float>()};
  float* lse = a.out[1].ptr<float>();
  std::vector<double> row(static_cast<size_t>(p.b), 0.0);
  std::vector<char> counted(static_cast<size_t>(p.b), 1);
  for (int64_t r = 0; r < p.b; ++r) {
    const int64_t bad = t.check(r);
    if (bad >= 0 || bad < -2) bad_target(p, r, bad);
    counted[size_t(r)] = bad == -1;
  }
  ThreadPool::instance().parallel_for(p.b, std::max<int64_t>(1, 4096 / p.c), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* zr = z + r * p.c;
      float mx = zr[0];
      for (int64_t j = 1; j < p.c; ++j) mx = std::max(mx, zr[j]);
      double s = 0.0;
      for (int64_t j = 0; j < p.c; ++j) s += std::exp(double(zr[j]) - double(mx));
      const double l = double(mx) + std::log(s);
      lse[r] = float(l);
      if (!counted[size_t(r)]) continue;
      double dot = 0.0;
      for (int64_t j = 0; j < p.c; ++j) dot += t.q(r, j) * double(zr[j]);
      row[size_t(r)] = l * t.total(r) - dot;
    }
  });
  float* loss = a.out[0].ptr<float>();
  if (p.reduction == 2) {
    for (int64_t r = 0; r < p.b; ++r) loss[r] = float(row[size_t(r)]);
    return;
  }
  double sum = 0.0;
  int64_t n = 0;
  for (int64_t r = 0; r < p.b; ++r) {
    sum += row[size_t(r)];
    n += counted[size_t(r)];
  }
  // The mean over zero counted rows is NaN, as PyTorch's.
  loss[0] = float(p.reduction == 1 ? sum : sum / double(n));
}

void cross_entropy_backward_kernel(const KernelArgs& a) {
  const CrossEntropyParams& p = a.p<CrossEntropyParams>();
  const float* dl = a.in[0].ptr<float>();
  const float* z = a.in[1].ptr<float>();
  const Target t{p, a.in[2].dtype == DType::Int32 ? a.in[2].ptr<int32_t>() : nullptr,
                 a.in[2].dtype == DType::Int32 ? nullptr : a.in[2].ptr<float>()};
  const float* lse = a.in[3].ptr<float>();
  float* dz = a.out[0].ptr<float>();
  int64_t n = 0;
  for (int64_t r = 0; r < p.b; ++r) {
    const int64_t bad = t.check(r);
    if (bad >= 0 || bad < -2) bad_target(p, r, bad);
    n += bad == -1;
  }
  ThreadPool::instance().parallel_for(p.b, std::max<int64_t>(1, 4096 / p.c), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      float* out = dz + r * p.c;
      if (t.check(r) != -1) {
        std::fill(out, out + p.c, 0.0f);
        continue;
      }
      const double g = p.reduction == 2 ? dl[r] : p.reduction == 1 ? dl[0] : double(dl[0]) / double(n);
      const double total = t.total(r);
      const float* zr = z + r * p.c;
      for (int64_t j = 0; j < p.c; ++j)
        out[j] = float(g * (std::exp(double(zr[j]) - double(lse[r])) * total - t.q(r, j)));
    }
  });
}

}  // namespace

SECVIT_KERNEL(crossEntropy, Device::Cpu, kF32, cross_entropy_kernel, nullptr, 0);
SECVIT_KERNEL(crossEntropyBackward, Device::Cpu, kF32, cross_entropy_backward_kernel, nullptr, 0);

}  // namespace secvit::cpu
