// AVX2 depthwise convolution: the generic loops of depthwise_impl.h compiled with -mavx2 -mfma,
// and a register-blocked kernel for the common case. Called only after the run-time CPU check.
//
// Register-blocked case: channels-last x (channel stride 1), C a multiple of 8, a residual (if
// any) with channel stride 1 -- every depthwise conv of SecViT (LCE 5x5, CPE and the FFN's
// 3x3). Per output row and block of 8 channels, 4 output pixels at a time keep their sums in
// registers: each tap loads its weights once for the 4 pixels and x once per FMA. The generic
// loop keeps the sums of a whole pixel in memory, a load and a store of the accumulator per
// FMA (load/store-bound: 22-34 GFLOP/s at 2 threads). Pixels whose taps leave the image along x
// go one at a time. Same summation order as the generic loop: bias, then taps in (ky, kx).
// Cost: 2 * B * OH * OW * C * kh * kw flops; x read from L1/L2 about once per kernel row.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "gemm.h"
#include "ops/conv2d.h"
#include "vec_math_avx2.h"

namespace secvit::cpu {
namespace conv_avx2 {
#include "depthwise_impl.h"
}  // namespace conv_avx2

namespace {

void depthwise_rows_blocked(const Conv2dOpParams& p, const float* x, const float* wt, const float* bias,
                            const float* residual, float* y, int64_t r0, int64_t r1) {
  const int64_t C = p.c, px = p.xs[3];
  // Output columns whose taps are all inside the image along x: [ox_lo, ox_hi).
  const int64_t ox_lo = std::min(p.ow, (p.pad_w + p.stride_w - 1) / p.stride_w);
  const int64_t last_tap = (p.kw - 1) * p.dil_w - p.pad_w;  // ix of the last tap at ox = 0
  const int64_t ox_hi = p.w - 1 - last_tap < 0 ? 0 : std::min(p.ow, (p.w - 1 - last_tap) / p.stride_w + 1);
  const Act act = Act(p.act);
  for (int64_t row = r0; row < r1; ++row) {
    const int64_t b = row / p.oh, oy = row % p.oh;
    const float* xb = x + b * p.xs[0];
    float* yrow = y + row * p.ow * C;
    const float* rrow = residual != nullptr ? residual + b * p.rs[0] + oy * p.rs[2] : nullptr;
    for (int64_t c0 = 0; c0 < C; c0 += 8) {
      const __m256 bv = bias != nullptr ? _mm256_loadu_ps(bias + c0) : _mm256_setzero_ps();
      auto finish = [&](int64_t ox, __m256 acc) {
        if (act == Act::Gelu) acc = avx2::gelu(acc);
        else if (act == Act::Silu) acc = avx2::silu(acc);
        if (rrow != nullptr) acc = _mm256_add_ps(acc, _mm256_loadu_ps(rrow + ox * p.rs[3] + c0));
        _mm256_storeu_ps(yrow + ox * C + c0, acc);
      };
      auto one = [&](int64_t ox) {
        __m256 acc = bv;
        for (int64_t ky = 0; ky < p.kh; ++ky) {
          const int64_t iy = oy * p.stride_h - p.pad_h + ky * p.dil_h;
          if (iy < 0 || iy >= p.h) continue;
          for (int64_t kx = 0; kx < p.kw; ++kx) {
            const int64_t ix = ox * p.stride_w - p.pad_w + kx * p.dil_w;
            if (ix < 0 || ix >= p.w) continue;
            acc = _mm256_fmadd_ps(_mm256_loadu_ps(xb + iy * p.xs[2] + ix * px + c0),
                                  _mm256_loadu_ps(wt + (ky * p.kw + kx) * C + c0), acc);
          }
        }
        finish(ox, acc);
      };
      int64_t ox = 0;
      for (; ox < ox_lo; ++ox) one(ox);
      const int64_t step = p.stride_w * px;  // x's offset from one output pixel to the next
      for (; ox + 4 <= ox_hi; ox += 4) {
        __m256 a0 = bv, a1 = bv, a2 = bv, a3 = bv;
        for (int64_t ky = 0; ky < p.kh; ++ky) {
          const int64_t iy = oy * p.stride_h - p.pad_h + ky * p.dil_h;
          if (iy < 0 || iy >= p.h) continue;
          const float* s = xb + iy * p.xs[2] + (ox * p.stride_w - p.pad_w) * px + c0;
          const float* wk = wt + ky * p.kw * C + c0;
          for (int64_t kx = 0; kx < p.kw; ++kx, s += p.dil_w * px) {
            const __m256 w = _mm256_loadu_ps(wk + kx * C);
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(s), w, a0);
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(s + step), w, a1);
            a2 = _mm256_fmadd_ps(_mm256_loadu_ps(s + 2 * step), w, a2);
            a3 = _mm256_fmadd_ps(_mm256_loadu_ps(s + 3 * step), w, a3);
          }
        }
        finish(ox, a0);
        finish(ox + 1, a1);
        finish(ox + 2, a2);
        finish(ox + 3, a3);
      }
      for (; ox < p.ow; ++ox) one(ox);
    }
  }
}

}  // namespace

void depthwise_rows_avx2(const Conv2dOpParams& p, const float* x, const float* wt, const float* bias,
                         const float* residual, float* y, int64_t r0, int64_t r1, float* acc) {
  if (p.xs[1] == 1 && p.c % 8 == 0 && (residual == nullptr || p.rs[1] == 1))
    depthwise_rows_blocked(p, x, wt, bias, residual, y, r0, r1);
  else if (p.xs[1] == 1)
    conv_avx2::depthwise_rows<true>(p, x, wt, bias, residual, y, r0, r1, acc, act_inplace_avx2);
  else
    conv_avx2::depthwise_rows<false>(p, x, wt, bias, residual, y, r0, r1, acc, act_inplace_avx2);
}

}  // namespace secvit::cpu
