// CPU kernel of `rope2d` (native/ops/rope2d.h). cos/sin of y * angle and x * angle are
// tabulated once per call ((height + width) * d/2 pairs), so each element costs a lookup and
// two FMAs. Parallel over (image, head, row of the grid).
#include <cmath>
#include <vector>

#include "core/op.h"
#include "core/thread_pool.h"
#include "ops/rope2d.h"

namespace secvit::cpu {
namespace {

void rope2d_kernel(const KernelArgs& a) {
  const Rope2dOpParams& p = a.p<Rope2dOpParams>();
  const float* x = a.in[0].ptr<float>();
  const float* angle = a.in[1].ptr<float>();
  float* y = a.out[0].ptr<float>();
  const int64_t half = p.d / 2;
  // cs[(pos, j)] for j < d/2: (cos, sin) of pos * angle[j]; rows 0..height-1 are y, then x.
  std::vector<float> cs(size_t((p.height + p.width) * half * 2));
  for (int64_t pos = 0; pos < p.height + p.width; ++pos) {
    const double v = double(pos < p.height ? pos : pos - p.height);
    for (int64_t j = 0; j < half; ++j) {
      cs[size_t((pos * half + j) * 2)] = float(std::cos(v * double(angle[j])));
      cs[size_t((pos * half + j) * 2 + 1)] = float(std::sin(v * double(angle[j])));
    }
  }
  ThreadPool::instance().parallel_for(p.b * p.h * p.height, 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t bh = r / p.height, yy = r % p.height;
      const int64_t b = bh / p.h, h = bh % p.h;
      for (int64_t xx = 0; xx < p.width; ++xx) {
        const int64_t l = yy * p.width + xx;
        const float* src = x + b * p.xs[0] + h * p.xs[1] + l * p.xs[2];
        float* dst = y + ((b * p.h + h) * p.l + l) * p.d;
        for (int64_t j = 0; j < p.d; j += 2) {
          // The pair (j, j+1) shares its angle; the first half of the dims rotates by y.
          const float* c = j < half ? &cs[size_t((yy * half + j) * 2)]
                                    : &cs[size_t(((p.height + xx) * half + (j - half)) * 2)];
          const float v0 = src[j * p.xs[3]], v1 = src[(j + 1) * p.xs[3]];
          dst[j] = v0 * c[0] - v1 * c[1];
          dst[j + 1] = v1 * c[0] + v0 * c[1];
        }
      }
    }
  });
}

}  // namespace

SECVIT_KERNEL(rope2d, Device::Cpu, kF32, rope2d_kernel, nullptr, 1u);

}  // namespace secvit::cpu
