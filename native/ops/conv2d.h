// conv2d(x, weight, bias?, residual?, scale?; stride, padding, dilation, groups, act): PyTorch's
// F.conv2d on NCHW-shaped tensors, with a per-output-channel scale, a fused activation and
// residual add:
//   y = residual + act(scale * conv(x, weight) + bias)
// (scale and bias together are a batch norm after the conv, applied without folding it into a
// copy of the weight; not for depthwise convs.)
// x [B, C, H, W] in any layout (channels-last preferred: the kernels vectorise over channels);
// weight [O, C / groups, kh, kw]; bias [O]; residual [B, O, OH, OW] in any layout. The output
// is channels-last: shape [B, O, OH, OW], memory B, OH, OW, O (the layout every conv, norm and
// 1x1 projection of the model consumes without a copy).
// Kernels pick a path by shape: depthwise (C = O = groups), 1x1 (a GEMM over pixels), or a
// general im2col/implicit GEMM per group. Rules: native/ops/conv2d.cpp; kernels:
// native/cpu/conv2d.cpp, native/cuda/conv2d.cu.
#pragma once

#include <cstdint>

namespace secvit {

enum Conv2dInput : int { kConvX = 0, kConvWeight, kConvBias, kConvResidual, kConvScale };

struct Conv2dOpParams {
  int64_t b, c, h, w;          // input
  int64_t o, oh, ow;           // output
  int64_t kh, kw;
  int64_t stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups;
  int act;                     // 0 none, 1 gelu, 2 silu
  // Element strides of x (b, c, y, x) and of the residual (b, o, y, x).
  int64_t xs[4];
  int64_t rs[4];
};

inline bool conv2d_is_depthwise(const Conv2dOpParams& p) {
  return p.groups == p.c && p.o == p.c;
}
// Whether the pixels of an image with element strides s (b, c, y, x) and h x w pixels can be
// addressed as rows (b, pixel): a pixel row follows from (y, x) by one stride.
inline bool conv2d_pixels_are_rows(int64_t h, int64_t w, const int64_t* s) {
  return h == 1 || s[2] == w * s[3];
}
inline bool conv2d_is_pointwise(const Conv2dOpParams& p) {
  return p.kh == 1 && p.kw == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_h == 0 &&
         p.pad_w == 0 && p.groups == 1;
}

}  // namespace secvit
