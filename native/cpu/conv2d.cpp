// CPU kernel of `conv2d` (native/ops/conv2d.h). Four paths:
//   depthwise (C = O = groups): direct loops over channels-last pixels (depthwise_impl.h);
//   3x3, stride 1, dilation 1, groups 1, C and O >= 8, AVX2: Winograd F(2x2, 3x3)
//   (conv2d_winograd_avx2.cpp; finite, moderate inputs only, else the im2col GEMM below);
//   1x1, stride 1, no padding, groups 1: the GEMM with the pixels as rows of A;
//   anything else: per group, the GEMM with A the im2col view of x, gathered while packing
//   (gemm.h), and B read straight from the [O, C/g, kh, kw] weight in (ky, kx, c) order;
//   with few output pixels (B*OH*OW <= kGemmDotMaxM: the last downsample, 7 x 7) the im2col
//   rows are gathered first in the weight's own (c, ky, kx) order, so that the GEMM's
//   dot-product path reads the weight in place instead of packing it (packing the 256 -> 512
//   downsample's 4.7 MB weight cost as much as its product).
// Every path fuses bias, activation and residual and writes the channels-last output once.
#include <algorithm>
#include <vector>

#include "core/cpu_features.h"
#include "core/op.h"
#include "core/thread_pool.h"
#include "gemm.h"
#include "ops/conv2d.h"
#include "scratch.h"

namespace secvit::cpu {

namespace conv_scalar {
#include "depthwise_impl.h"
}  // namespace conv_scalar

#if defined(SECVIT_HAVE_AVX2_KERNELS)
// Winograd F(2x2, 3x3) (conv2d_winograd_avx2.cpp): false when the input or weight holds values
// it cannot take exactly (not finite, or huge); the im2col GEMM then runs.
bool conv2d_winograd_applies(const Conv2dOpParams& p);
bool conv2d_winograd_avx2(const Conv2dOpParams& p, const float* x, const float* w, const float* bias,
                          const float* col_scale, const float* res, float* y);
void depthwise_rows_avx2(const Conv2dOpParams& p, const float* x, const float* wt, const float* bias,
                         const float* residual, float* y, int64_t r0, int64_t r1, float* acc);
#endif

namespace {

void depthwise(const Conv2dOpParams& p, const float* x, const float* w, const float* bias,
               const float* residual, float* y) {
  // Weights [C, 1, kh, kw] -> [tap][C].
  const int64_t taps = p.kh * p.kw;
  std::vector<float> wt(size_t(taps * p.c));
  for (int64_t c = 0; c < p.c; ++c)
    for (int64_t t = 0; t < taps; ++t) wt[size_t(t * p.c + c)] = w[c * taps + t];
  const bool avx2 = cpu_simd() == CpuSimd::Avx2Fma;
  const int64_t rows = p.b * p.oh;
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 15) / std::max<int64_t>(1, p.ow * p.c * taps));
  ThreadPool::instance().parallel_for(rows, grain, [&](int64_t r0, int64_t r1) {
    std::vector<float> acc(size_t(p.c));
#if defined(SECVIT_HAVE_AVX2_KERNELS)
    if (avx2) {
      depthwise_rows_avx2(p, x, wt.data(), bias, residual, y, r0, r1, acc.data());
      return;
    }
#endif
    (void)avx2;
    if (p.xs[1] == 1)
      conv_scalar::depthwise_rows<true>(p, x, wt.data(), bias, residual, y, r0, r1, acc.data(), act_inplace_scalar);
    else
      conv_scalar::depthwise_rows<false>(p, x, wt.data(), bias, residual, y, r0, r1, acc.data(), act_inplace_scalar);
  });
}

// The im2col rows of the cg channels at x (one group), k in the weight's (c, ky, kx) order,
// zeros outside the image: rows[m * cg * kh * kw + k].
void gather_im2col_ckk(const Conv2dOpParams& p, const float* x, int64_t cg, float* rows) {
  const int64_t hw = p.oh * p.ow, kdim = cg * p.kh * p.kw;
  for (int64_t m = 0; m < p.b * hw; ++m) {
    const int64_t b = m / hw, oy = (m % hw) / p.ow, ox = m % p.ow;
    float* r = rows + m * kdim;
    for (int64_t c = 0; c < cg; ++c)
      for (int64_t ky = 0; ky < p.kh; ++ky) {
        const int64_t iy = oy * p.stride_h - p.pad_h + ky * p.dil_h;
        for (int64_t kx = 0; kx < p.kw; ++kx, ++r) {
          const int64_t ix = ox * p.stride_w - p.pad_w + kx * p.dil_w;
          *r = iy < 0 || iy >= p.h || ix < 0 || ix >= p.w ? 0.0f
                                                          : x[b * p.xs[0] + c * p.xs[1] + iy * p.xs[2] + ix * p.xs[3]];
        }
      }
  }
}

void conv2d_kernel(const KernelArgs& a) {
  const Conv2dOpParams& p = a.p<Conv2dOpParams>();
  const float* x = a.in[kConvX].ptr<float>();
  const float* w = a.in[kConvWeight].ptr<float>();
  const float* bias = a.in[kConvBias].ptr<float>();
  const float* res = a.in[kConvResidual].ptr<float>();
  float* y = a.out[0].ptr<float>();
  if (p.b * p.o * p.oh * p.ow == 0) return;
  if (conv2d_is_depthwise(p)) {
    depthwise(p, x, w, bias, res, y);
    return;
  }
#if defined(SECVIT_HAVE_AVX2_KERNELS)
  if (cpu_simd() == CpuSimd::Avx2Fma && conv2d_winograd_applies(p) &&
      conv2d_winograd_avx2(p, x, w, bias, a.in[kConvScale].ptr<float>(), res, y))
    return;
#endif
  const int64_t og = p.o / p.groups, cg = p.c / p.groups;
  const int64_t hw = p.oh * p.ow;
  std::vector<int64_t> koff;
  Im2col ic{};
  // A 1x1 convolution is a GEMM over pixels when they are rows; otherwise (and for every other
  // kernel size) the im2col GEMM.
  const bool pointwise = conv2d_is_pointwise(p) && conv2d_pixels_are_rows(p.h, p.w, p.xs);
  const int64_t m = p.b * hw, kdim = cg * p.kh * p.kw;
  const bool gathered = !pointwise && m <= kGemmDotMaxM;
  int64_t xs[4] = {p.xs[0], p.xs[1], p.xs[2], p.xs[3]};
  thread_local ScratchVec<float> t_cl;
  if (!pointwise && !gathered && xs[1] != 1) {
    // An input whose channels are not contiguous (NCHW: the stem's image) is copied
    // channels-last first: im2col then copies each kernel row's taps and channels as one run
    // (kw * C floats) instead of gathering every (c, ky, kx) value on its own, for every output
    // pixel (12544 x 27 gathers against 150k copied values for the stem's first conv).
    float* xc = t_cl.get(size_t(p.b * p.h * p.w * p.c));
    ThreadPool::instance().parallel_for(p.b * p.h, 8, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t b = r / p.h, y = r % p.h;
        float* dst = xc + r * p.w * p.c;
        for (int64_t c = 0; c < p.c; ++c) {
          const float* src = x + b * p.xs[0] + c * p.xs[1] + y * p.xs[2];
          for (int64_t xi = 0; xi < p.w; ++xi) dst[xi * p.c + c] = src[xi * p.xs[3]];
        }
      }
    });
    x = xc;
    xs[0] = p.h * p.w * p.c;
    xs[1] = 1;
    xs[2] = p.w * p.c;
    xs[3] = p.c;
  }
  if (!pointwise) {
    // k = (ky, kx, c) -> offset c * kh * kw + ky * kw + kx in a weight row.
    koff.resize(size_t(p.kh * p.kw * cg));
    for (int64_t ky = 0; ky < p.kh; ++ky)
      for (int64_t kx = 0; kx < p.kw; ++kx)
        for (int64_t c = 0; c < cg; ++c) koff[size_t((ky * p.kw + kx) * cg + c)] = c * p.kh * p.kw + ky * p.kw + kx;
    ic = Im2col{nullptr, xs[0], xs[1], xs[2], xs[3], cg, p.h, p.w, p.oh, p.ow,
                p.kh, p.kw, p.stride_h, p.stride_w, p.pad_h, p.pad_w, p.dil_h, p.dil_w};
  }
  thread_local ScratchVec<float> t_rows;
  float* rows = gathered ? t_rows.get(size_t(m * kdim)) : nullptr;
  for (int64_t g = 0; g < p.groups; ++g) {
    GemmArgs ga;
    ga.m = m;
    ga.n = og;
    ga.k = kdim;
    ga.b = w + g * og * ga.k;
    ga.b_n_stride = ga.k;
    if (pointwise) {
      ga.a = RowMap{x, hw, p.xs[0], p.xs[3], p.xs[1]};
      ga.b_k_stride = 1;
    } else if (gathered) {
      gather_im2col_ckk(p, x + g * cg * p.xs[1], cg, rows);
      ga.a = RowMap{rows, 0, 0, kdim, 1};
      ga.b_k_stride = 1;
    } else {
      ic.data = x + g * cg * xs[1];
      ga.im2col = &ic;
      ga.b_koff = koff.data();
    }
    ga.c = RowMap{y + g * og, 0, 0, p.o, 1};
    ga.bias = bias != nullptr ? bias + g * og : nullptr;
    const float* scale = a.in[kConvScale].ptr<float>();
    ga.col_scale = scale != nullptr ? scale + g * og : nullptr;
    ga.act = Act(p.act);
    if (res != nullptr) ga.residual = RowMap{res + g * og * p.rs[1], hw, p.rs[0], p.rs[3], p.rs[1]};
    gemm_f32(ga);
  }
}

}  // namespace

// x and the residual are read through their strides.
SECVIT_KERNEL(conv2d, Device::Cpu, kF32, conv2d_kernel, nullptr, (1u << kConvX) | (1u << kConvResidual));

}  // namespace secvit::cpu
