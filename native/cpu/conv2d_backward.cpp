// CPU kernels of conv2d's gradient ops (native/ops/conv2d.h): im2col, col2im,
// depthwiseConv2dBackward and conv2dTransposeWeight. The loops are conv2d_backward_impl.h,
// compiled portable here and with AVX2 in conv2d_backward_avx2.cpp; rows of the output are the
// unit of parallel work, and the depthwise weight gradient is summed per task into private
// [tap][C] rows (float over at most a task's pixels), added in double at the end.
#include <algorithm>
#include <vector>

#include "core/cpu_features.h"
#include "core/op.h"
#include "core/thread_pool.h"
#include "gemm.h"
#include "ops/conv2d.h"
#include "scratch.h"

namespace secvit::cpu {

namespace conv_backward_scalar {
#include "conv2d_backward_impl.h"
}  // namespace conv_backward_scalar

#if defined(SECVIT_HAVE_AVX2_KERNELS)
namespace conv_backward_avx2 {
void im2col_rows(const Conv2dOpParams& p, const float* x, float* cols, int64_t m0, int64_t m1);
void col2im_rows(const Conv2dOpParams& p, const float* cols, float* dx, int64_t r0, int64_t r1, float* acc);
void depthwise_dx_rows(const ConvBackwardParams& q, const float* dy, const float* wt, float* dx, int64_t r0, int64_t r1,
                       float* acc);
void depthwise_dw_rows(const ConvBackwardParams& q, const float* dy, const float* x, float* dw, int64_t r0, int64_t r1,
                       float* g, float* xr);
}  // namespace conv_backward_avx2
#define SV_CONV_BWD(fn, ...) \
  (cpu_simd() == CpuSimd::Avx2Fma ? conv_backward_avx2::fn(__VA_ARGS__) : conv_backward_scalar::fn(__VA_ARGS__))
#else
#define SV_CONV_BWD(fn, ...) conv_backward_scalar::fn(__VA_ARGS__)
#endif

namespace {

void im2col_kernel(const KernelArgs& a) {
  const Conv2dOpParams& p = a.p<Conv2dOpParams>();
  const float* x = a.in[0].ptr<float>();
  float* cols = a.out[0].ptr<float>();
  const int64_t m = p.b * p.oh * p.ow;
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 14) / std::max<int64_t>(1, p.kh * p.kw * p.c));
  ThreadPool::instance().parallel_for(m, grain, [&](int64_t m0, int64_t m1) { SV_CONV_BWD(im2col_rows, p, x, cols, m0, m1); });
}

void col2im_kernel(const KernelArgs& a) {
  const Conv2dOpParams& p = a.p<Conv2dOpParams>();
  const float* cols = a.in[0].ptr<float>();
  float* dx = a.out[0].ptr<float>();
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 14) / std::max<int64_t>(1, p.w * p.c * p.kh * p.kw));
  ThreadPool::instance().parallel_for(p.b * p.h, grain, [&](int64_t r0, int64_t r1) {
    thread_local ScratchVec<float> t_acc;
    float* acc = t_acc.get(size_t(p.c));
    SV_CONV_BWD(col2im_rows, p, cols, dx, r0, r1, acc);
  });
}

void depthwise_backward_kernel(const KernelArgs& a) {
  const ConvBackwardParams& q = a.p<ConvBackwardParams>();
  const Conv2dOpParams& p = q.g;
  const float* dy = a.in[0].ptr<float>();
  const float* x = a.in[1].ptr<float>();
  const float* w = a.in[2].ptr<float>();
  const int64_t C = p.c, taps = p.kh * p.kw;
  ThreadPool& pool = ThreadPool::instance();
  if (q.need_input) {
    std::vector<float> wt(static_cast<size_t>(taps * C));
    for (int64_t c = 0; c < C; ++c)
      for (int64_t t = 0; t < taps; ++t) wt[size_t(t * C + c)] = w[c * taps + t];
    float* dx = a.out[0].ptr<float>();
    const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 15) / std::max<int64_t>(1, p.w * C * taps));
    pool.parallel_for(p.b * p.h, grain, [&](int64_t r0, int64_t r1) {
      thread_local ScratchVec<float> t_acc;
      float* acc = t_acc.get(size_t(C));
      SV_CONV_BWD(depthwise_dx_rows, q, dy, wt.data(), dx, r0, r1, acc);
    });
  }
  if (q.need_weight) {
    const int64_t rows = p.b * p.oh;
    const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(rows, int64_t(pool.threads()) * 4));
    std::vector<float> part(static_cast<size_t>(chunks * taps * C), 0.0f);
    pool.parallel_for(chunks, 1, [&](int64_t c0, int64_t c1) {
      thread_local ScratchVec<float> t_buf;
      float* g = t_buf.get(size_t(2 * C));
      for (int64_t ch = c0; ch < c1; ++ch)
        SV_CONV_BWD(depthwise_dw_rows, q, dy, x, part.data() + ch * taps * C, ch * rows / chunks, (ch + 1) * rows / chunks, g,
                    g + C);
    });
    float* dw = a.out[1].ptr<float>();
    for (int64_t c = 0; c < C; ++c)
      for (int64_t t = 0; t < taps; ++t) {
        double s = 0.0;
        for (int64_t ch = 0; ch < chunks; ++ch) s += part[size_t((ch * taps + t) * C + c)];
        dw[c * taps + t] = float(s);
      }
  }
}

void transpose_weight_kernel(const KernelArgs& a) {
  const Shape& s = a.in[0].shape;
  const int64_t o = s[0], c = s[1], kh = s[2], kw = s[3];
  const float* w = a.in[0].ptr<float>();
  float* t = a.out[0].ptr<float>();
  for (int64_t i = 0; i < o; ++i)
    for (int64_t j = 0; j < c; ++j)
      for (int64_t y = 0; y < kh; ++y)
        for (int64_t x = 0; x < kw; ++x) t[((j * o + i) * kh + y) * kw + x] = w[((i * c + j) * kh + (kh - 1 - y)) * kw + (kw - 1 - x)];
}

}  // namespace

// x and dy are read through their strides.
SECVIT_KERNEL(im2col, Device::Cpu, kF32, im2col_kernel, nullptr, 1u);
SECVIT_KERNEL(col2im, Device::Cpu, kF32, col2im_kernel, nullptr, 0);
SECVIT_KERNEL(depthwiseConv2dBackward, Device::Cpu, kF32, depthwise_backward_kernel, nullptr, 0x3);
SECVIT_KERNEL(conv2dTransposeWeight, Device::Cpu, kF32, transpose_weight_kernel, nullptr, 0);

}  // namespace secvit::cpu
