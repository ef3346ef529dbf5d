// CPU kernel of `globalAvgPool2d` (native/ops/pool.h): per image, sums over the pixels in
// double (H * W may be large), channel-vectorised when channels are innermost. Parallel over
// images and channel blocks.
#include <vector>

#include "core/op.h"
#include "core/thread_pool.h"
#include "ops/pool.h"

namespace secvit::cpu {
namespace {

void pool_kernel(const KernelArgs& a) {
  const PoolOpParams& p = a.p<PoolOpParams>();
  const float* x = a.in[0].ptr<float>();
  float* y = a.out[0].ptr<float>();
  const int64_t cb = 64;  // channels per task
  const int64_t blocks = (p.c + cb - 1) / cb;
  const double inv = 1.0 / double(p.h * p.w);
  ThreadPool::instance().parallel_for(p.b * blocks, 1, [&](int64_t t0, int64_t t1) {
    std::vector<double> acc(static_cast<size_t>(cb));
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t b = t / blocks, c0 = (t % blocks) * cb, nc = std::min(cb, p.c - c0);
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t yy = 0; yy < p.h; ++yy)
        for (int64_t xx = 0; xx < p.w; ++xx) {
          const float* px = x + b * p.xs[0] + yy * p.xs[2] + xx * p.xs[3] + c0 * p.xs[1];
          for (int64_t c = 0; c < nc; ++c) acc[size_t(c)] += px[c * p.xs[1]];
        }
      for (int64_t c = 0; c < nc; ++c) y[b * p.c + c0 + c] = float(acc[size_t(c)] * inv);
    }
  });
}

}  // namespace

SECVIT_KERNEL(globalAvgPool2d, Device::Cpu, kF32, pool_kernel, nullptr, 1u);

}  // namespace secvit::cpu
