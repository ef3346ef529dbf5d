// CPU kernel of `rope2d` (native/ops/rope2d.h). cos/sin of y * angle and x * angle are
// tabulated once per call (rope_table: (height + width) * d/4 pairs, the table the qkv GEMM's
// epilogue uses), so each element costs a lookup and two FMAs. Parallel over (image, head, row
// of the grid).
#include <vector>

#include "core/op.h"
#include "core/thread_pool.h"
#include "ops/rope2d.h"
#include "rope2d.h"

namespace secvit::cpu {
namespace {

void rope2d_kernel(const KernelArgs& a) {
  const Rope2dOpParams& p = a.p<Rope2dOpParams>();
  const float* x = a.in[0].ptr<float>();
  const float* angle = a.in[1].ptr<float>();
  float* y = a.out[0].ptr<float>();
  if (a.out[0].numel() == 0) return;  // (no table for a grid of no image)
  const int64_t q4 = p.d / 4;
  std::vector<float> cs(size_t((p.height + p.width) * q4 * 2));
  rope_table(angle, p.d, p.height, p.width, cs.data());
  ThreadPool::instance().parallel_for(p.b * p.h * p.height, 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t bh = r / p.height, yy = r % p.height;
      const int64_t b = bh / p.h, h = bh % p.h;
      for (int64_t xx = 0; xx < p.width; ++xx) {
        const int64_t l = yy * p.width + xx;
        const float* src = x + b * p.xs[0] + h * p.xs[1] + l * p.xs[2];
        float* dst = y + ((b * p.h + h) * p.l + l) * p.d;
        for (int64_t j = 0; j < p.d; j += 2) {
          const float* c = rope_pair(cs.data(), q4, p.height, yy, xx, j / 2);
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
