// CUDA kernel of `conv2d` (native/ops/conv2d.h). Three paths, as on the CPU:
//   depthwise (C = O = groups): one thread per output element in channels-last order, so
//     neighbouring threads read neighbouring channels of a pixel (coalesced for channels-last
//     x); taps accumulate in fp32; bias, activation and residual fused. Cost 2 * OH*OW*C*kh*kw
//     flops per image, x read kh*kw times (mostly from L1/L2).
//   1x1 stride 1: the GEMM (gemm.cuh) with the pixels as rows of A.
//   otherwise: per group, the GEMM with A the implicit im2col of x (addresses computed in the
//     tile loads, nothing materialised) and B the weight read in (ky, kx, c) order.
// fp32 and bf16/fp16 (tensor cores for the GEMM paths); the output is channels-last.
#include "gemm.cuh"

#include "../core/op.h"
#include "../ops/conv2d.h"
#include "cuda_backend.h"

namespace secvit {
namespace SV_CUDA_NS {
namespace {

struct DwParams {
  Conv2dOpParams p;
  const void* x;
  const void* w;
  const void* bias;
  const void* residual;
  void* y;
  int dtype;
};

__global__ void __launch_bounds__(256) depthwise_kernel(DwParams d) {
  const Conv2dOpParams& p = d.p;
  const int64_t total = p.b * p.oh * p.ow * p.c;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
       e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = e % p.c, pix = e / p.c;
    const int64_t ox = pix % p.ow, oy = (pix / p.ow) % p.oh, b = pix / (p.ow * p.oh);
    float acc = d.bias != nullptr ? load_as_float(d.bias, d.dtype, c) : 0.0f;
    for (int64_t ky = 0; ky < p.kh; ++ky) {
      const int64_t iy = oy * p.stride_h - p.pad_h + ky * p.dil_h;
      if (iy < 0 || iy >= p.h) continue;
      for (int64_t kx = 0; kx < p.kw; ++kx) {
        const int64_t ix = ox * p.stride_w - p.pad_w + kx * p.dil_w;
        if (ix < 0 || ix >= p.w) continue;
        acc = fmaf(load_as_float(d.x, d.dtype, b * p.xs[0] + c * p.xs[1] + iy * p.xs[2] + ix * p.xs[3]),
                   load_as_float(d.w, d.dtype, (c * p.kh + ky) * p.kw + kx), acc);
      }
    }
    acc = gemm_act(p.act, acc);
    if (d.residual != nullptr)
      acc += load_as_float(d.residual, d.dtype, b * p.rs[0] + c * p.rs[1] + oy * p.rs[2] + ox * p.rs[3]);
    store_from_float(d.y, d.dtype, e, acc);
  }
}

void conv2d_cuda(const KernelArgs& a) {
  const Conv2dOpParams& p = a.p<Conv2dOpParams>();
  if (p.b * p.o * p.oh * p.ow == 0) return;
  const int dtype = int(a.in[kConvX].dtype);
  const size_t es = dtype_size(a.in[kConvX].dtype);
  const void* bias = a.in[kConvBias].data;
  const void* res = a.in[kConvResidual].data;
  if (conv2d_is_depthwise(p)) {
    const DwParams d{p, a.in[kConvX].data, a.in[kConvWeight].data, bias, res, a.out[0].data, dtype};
    SV_LAUNCH(depthwise_kernel, dim3(grid_for(p.b * p.oh * p.ow * p.c, 256)), dim3(256), 0, stream(), d);
    SV_CUDA_CHECK_LAUNCH("depthwise_kernel");
    return;
  }
  const int64_t og = p.o / p.groups, cg = p.c / p.groups, hw = p.oh * p.ow;
  const bool pointwise = conv2d_is_pointwise(p) && conv2d_pixels_are_rows(p.h, p.w, p.xs);
  for (int64_t g = 0; g < p.groups; ++g) {
    GemmParamsCuda q{};
    q.m = int(p.b * hw);
    q.n = int(og);
    q.k = int(cg * p.kh * p.kw);
    q.dtype = dtype;
    const char* x = static_cast<const char*>(a.in[kConvX].data) + size_t(g * cg * p.xs[1]) * es;
    if (pointwise) {
      q.a = x;
      q.a_gr = hw;
      q.a_gs = p.xs[0];
      q.a_rs = p.xs[3];
      q.a_cs = p.xs[1];
      q.b_ks = 1;
    } else {
      q.a = x;
      q.im2col = 1;
      q.xsb = p.xs[0];
      q.xsc = p.xs[1];
      q.xsy = p.xs[2];
      q.xsx = p.xs[3];
      q.ic = int(cg);
      q.ih = int(p.h);
      q.iw = int(p.w);
      q.oh = int(p.oh);
      q.ow = int(p.ow);
      q.kh = int(p.kh);
      q.kw = int(p.kw);
      q.sh = int(p.stride_h);
      q.sw = int(p.stride_w);
      q.ph = int(p.pad_h);
      q.pw = int(p.pad_w);
      q.dh = int(p.dil_h);
      q.dw = int(p.dil_w);
      q.b_conv = 1;
    }
    q.b = static_cast<const char*>(a.in[kConvWeight].data) + size_t(g * og * q.k) * es;
    q.b_ns = q.k;
    q.c = static_cast<char*>(a.out[0].data) + size_t(g * og) * es;
    q.ldc = p.o;
    q.bias = bias != nullptr ? static_cast<const char*>(bias) + size_t(g * og) * es : nullptr;
    const void* scale = a.in[kConvScale].data;
    q.col_scale = scale != nullptr ? static_cast<const char*>(scale) + size_t(g * og) * es : nullptr;
    q.act = p.act;
    if (res != nullptr) {
      q.residual = static_cast<const char*>(res) + size_t(g * og * p.rs[1]) * es;
      q.r_gr = hw;
      q.r_gs = p.rs[0];
      q.r_rs = p.rs[3];
      q.r_cs = p.rs[1];
    }
    launch_gemm(q, 0.0f, nullptr, stream());
  }
}

bool conv2d_supports(const OpCall& c, std::string* why) {
  const Conv2dOpParams& p = c.params<Conv2dOpParams>();
  const int64_t big = int64_t(1) << 30;
  if (p.h > big || p.w > big || p.c > big) {
    *why = "image dimensions must be below 2^30";
    return false;
  }
  if (conv2d_is_depthwise(p)) return true;
  return gemm_supports(p.b * p.oh * p.ow, p.o / p.groups, p.c / p.groups * p.kh * p.kw, why);
}

// ---- gradient ops (native/ops/conv2d.h) ---------------------------------------------------------
// One thread per output element (grid-stride) for im2col, col2im (a gather: each input element
// sums the taps that read it), the depthwise input gradient (the same gather, weighted) and the
// weight transpose; the depthwise weight gradient takes one block per (channel, tap), its
// threads summing over the pixels, a block tree at the end.

__device__ __forceinline__ int source_index(int64_t i, int64_t pad, int64_t k, int64_t dil, int64_t stride, int64_t out) {
  const int64_t num = i + pad - k * dil;
  if (num < 0 || num % stride != 0) return -1;
  const int64_t o = num / stride;
  return o < out ? int(o) : -1;
}

// Calls fn(oy, ox, tap) for every (output pixel, kernel tap) pair that reads input pixel (iy, ix).
template <class F>
__device__ __forceinline__ void for_each_reader(const Conv2dOpParams& p, int64_t iy, int64_t ix, F&& fn) {
  for (int64_t ky = 0; ky < p.kh; ++ky) {
    const int oy = source_index(iy, p.pad_h, ky, p.dil_h, p.stride_h, p.oh);
    if (oy < 0) continue;
    for (int64_t kx = 0; kx < p.kw; ++kx) {
      const int ox = source_index(ix, p.pad_w, kx, p.dil_w, p.stride_w, p.ow);
      if (ox >= 0) fn(oy, ox, ky * p.kw + kx);
    }
  }
}

__global__ void __launch_bounds__(256) im2col_kernel(Conv2dOpParams p, const void* x, void* cols, int64_t total, int dtype) {
  const int64_t kk = p.kh * p.kw * p.c, hw = p.oh * p.ow;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t m = e / kk, k = e % kk;
    const int64_t c = k % p.c, tap = k / p.c, ky = tap / p.kw, kx = tap % p.kw;
    const int64_t b = m / hw, oy = (m % hw) / p.ow, ox = m % p.ow;
    const int64_t iy = oy * p.stride_h - p.pad_h + ky * p.dil_h, ix = ox * p.stride_w - p.pad_w + kx * p.dil_w;
    const bool in = iy >= 0 && iy < p.h && ix >= 0 && ix < p.w;
    store_from_float(cols, dtype, e, in ? load_as_float(x, dtype, b * p.xs[0] + c * p.xs[1] + iy * p.xs[2] + ix * p.xs[3]) : 0.0f);
  }
}

__global__ void __launch_bounds__(256) col2im_kernel(Conv2dOpParams p, const void* cols, void* dx, int64_t total, int dtype) {
  const int64_t kk = p.kh * p.kw * p.c;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = e % p.c, ix = (e / p.c) % p.w, iy = (e / (p.c * p.w)) % p.h, b = e / (p.c * p.w * p.h);
    float acc = 0.0f;
    for_each_reader(p, iy, ix, [&](int oy, int ox, int64_t tap) {
      acc += load_as_float(cols, dtype, ((b * p.oh + oy) * p.ow + ox) * kk + tap * p.c + c);
    });
    store_from_float(dx, dtype, e, acc);  // dx channels-last: e is (b, iy, ix, c)
  }
}

__global__ void __launch_bounds__(256) depthwise_dx_kernel(ConvBackwardParams q, const void* dy, const void* w, void* dx,
                                                           int64_t total, int dtype) {
  const Conv2dOpParams& p = q.g;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = e % p.c, ix = (e / p.c) % p.w, iy = (e / (p.c * p.w)) % p.h, b = e / (p.c * p.w * p.h);
    float acc = 0.0f;
    for_each_reader(p, iy, ix, [&](int oy, int ox, int64_t tap) {
      acc += load_as_float(dy, dtype, b * q.ds[0] + c * q.ds[1] + oy * q.ds[2] + ox * q.ds[3]) *
             load_as_float(w, dtype, c * p.kh * p.kw + tap);
    });
    store_from_float(dx, dtype, e, acc);
  }
}

// Block: 32 channels (tx, reads along the channels-last rows) x 8 pixel lanes (ty); grid: (channel
// blocks, taps). Lane ty walks output rows ty, ty + 8, ...; the 8 lanes' sums meet in shared memory.
__global__ void __launch_bounds__(256) depthwise_dw_kernel(ConvBackwardParams q, const void* dy, const void* x, void* dw,
                                                           int dtype) {
  SV_SHARED(float[8][33], part);
  const Conv2dOpParams& p = q.g;
  const int tx = threadIdx.x % 32, ty = threadIdx.x / 32;
  const int64_t taps = p.kh * p.kw;
  const int64_t c = int64_t(blockIdx.x) * 32 + tx, tap = blockIdx.y, ky = tap / p.kw, kx = tap % p.kw;
  float acc = 0.0f;
  if (c < p.c) {
    for (int64_t row = ty; row < p.b * p.oh; row += 8) {
      const int64_t b = row / p.oh, oy = row % p.oh;
      const int64_t iy = oy * p.stride_h - p.pad_h + ky * p.dil_h;
      if (iy < 0 || iy >= p.h) continue;
      for (int64_t ox = 0; ox < p.ow; ++ox) {
        const int64_t ix = ox * p.stride_w - p.pad_w + kx * p.dil_w;
        if (ix < 0 || ix >= p.w) continue;
        acc += load_as_float(dy, dtype, b * q.ds[0] + c * q.ds[1] + oy * q.ds[2] + ox * q.ds[3]) *
               load_as_float(x, dtype, b * p.xs[0] + c * p.xs[1] + iy * p.xs[2] + ix * p.xs[3]);
      }
    }
  }
  part[ty][tx] = acc;
  __syncthreads();
  if (ty == 0 && c < p.c) {
    float s = 0.0f;
    for (int i = 0; i < 8; ++i) s += part[i][tx];
    store_from_float(dw, dtype, c * taps + tap, s);
  }
}

__global__ void __launch_bounds__(256) transpose_weight_kernel(const void* w, void* t, int64_t o, int64_t c, int64_t kh,
                                                               int64_t kw, int dtype) {
  const int64_t total = o * c * kh * kw;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t x = e % kw, y = (e / kw) % kh, i = (e / (kw * kh)) % o, j = e / (kw * kh * o);
    store_from_float(t, dtype, e, load_as_float(w, dtype, ((i * c + j) * kh + (kh - 1 - y)) * kw + (kw - 1 - x)));
  }
}

void im2col_cuda(const KernelArgs& a) {
  const int64_t total = a.out[0].numel();
  if (total == 0) return;
  SV_LAUNCH(im2col_kernel, dim3(grid_for(total, 256)), dim3(256), 0, stream(), a.p<Conv2dOpParams>(), a.in[0].data,
            a.out[0].data, total, int(a.in[0].dtype));
  SV_CUDA_CHECK_LAUNCH("im2col_kernel");
}

void col2im_cuda(const KernelArgs& a) {
  const int64_t total = a.out[0].numel();
  if (total == 0) return;
  SV_LAUNCH(col2im_kernel, dim3(grid_for(total, 256)), dim3(256), 0, stream(), a.p<Conv2dOpParams>(), a.in[0].data,
            a.out[0].data, total, int(a.in[0].dtype));
  SV_CUDA_CHECK_LAUNCH("col2im_kernel");
}

void depthwise_backward_cuda(const KernelArgs& a) {
  const ConvBackwardParams& q = a.p<ConvBackwardParams>();
  const int dtype = int(a.in[1].dtype);
  const int64_t total = a.out[0].numel();
  if (q.need_input && total > 0) {
    SV_LAUNCH(depthwise_dx_kernel, dim3(grid_for(total, 256)), dim3(256), 0, stream(), q, a.in[0].data, a.in[2].data,
              a.out[0].data, total, dtype);
    SV_CUDA_CHECK_LAUNCH("depthwise_dx_kernel");
  }
  if (q.need_weight && q.g.c > 0) {
    SV_LAUNCH(depthwise_dw_kernel, dim3(unsigned((q.g.c + 31) / 32), unsigned(q.g.kh * q.g.kw)), dim3(256), 0, stream(), q,
              a.in[0].data, a.in[1].data, a.out[1].data, dtype);
    SV_CUDA_CHECK_LAUNCH("depthwise_dw_kernel");
  }
}

void transpose_weight_cuda(const KernelArgs& a) {
  const Shape& s = a.in[0].shape;
  const int64_t total = a.in[0].numel();
  if (total == 0) return;
  SV_LAUNCH(transpose_weight_kernel, dim3(grid_for(total, 256)), dim3(256), 0, stream(), a.in[0].data, a.out[0].data, s[0],
            s[1], s[2], s[3], int(a.in[0].dtype));
  SV_CUDA_CHECK_LAUNCH("transpose_weight_kernel");
}

bool depthwise_backward_supports(const OpCall& c, std::string* why) {
  const ConvBackwardParams& q = c.params<ConvBackwardParams>();
  if (q.g.kh * q.g.kw > 65535 || q.g.c >= (int64_t(1) << 36)) {
    *why = "more than 65535 kernel taps, or too many channels, for one launch";
    return false;
  }
  return true;
}

}  // namespace

SECVIT_KERNEL(im2col, SV_CUDA_DEVICE, kF32 | kF16 | kBF16, im2col_cuda, nullptr, 1u);
SECVIT_KERNEL(col2im, SV_CUDA_DEVICE, kF32 | kF16 | kBF16, col2im_cuda, nullptr, 0);
SECVIT_KERNEL(depthwiseConv2dBackward, SV_CUDA_DEVICE, kF32 | kF16 | kBF16, depthwise_backward_cuda,
              depthwise_backward_supports, 0x3);
SECVIT_KERNEL(conv2dTransposeWeight, SV_CUDA_DEVICE, kF32 | kF16 | kBF16, transpose_weight_cuda, nullptr, 0);
SECVIT_KERNEL(conv2d, SV_CUDA_DEVICE, kF32 | kF16 | kBF16, conv2d_cuda, conv2d_supports,
              (1u << kConvX) | (1u << kConvResidual));

}  // namespace SV_CUDA_NS
}  // namespace secvit
