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

// The gradients of conv2d are built from these (lib/ops/layers.ts composes them with matmul):
//   im2col(x; kh, kw, stride..., pad..., dilation...): the rows of the convolution's implicit
//     GEMM, [B * OH * OW, kh * kw * C] in (ky, kx, c) order, zeros outside the image. x any
//     strides. (dW = dy_rows^T im2col(x).)
//   col2im(cols; batch, channels, height, width, kh, kw, ...): its transpose, the input-sized
//     sum of every column's contributions, [B, C, H, W] channels-last, as a gather (each input
//     pixel collects the taps that read it; no atomics). (dx = col2im(dy_rows W).)
//   depthwiseConv2dBackward(dy, x, weight; kh, kw, ..., needInput, needWeight): both gradients
//     of a depthwise convolution (C = O = groups): dx [B, C, H, W] channels-last (a gather over
//     the taps), dweight [C, 1, kh, kw] (per-task sums over pixels, added at the end); an output
//     not needed is empty.
//   conv2dTransposeWeight(w): w [O, C, kh, kw] as the weight of the convolution that maps dy to
//     dx for a stride-1 dense convolution: [C, O, kh, kw], the taps reversed.
struct ConvBackwardParams {
  Conv2dOpParams g;       // geometry (b, c, h, w, o, oh, ow, kh, kw, strides, pads, dilations)
  int64_t ds[4];          // strides of dy (b, o, y, x)
  bool need_input, need_weight;
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
