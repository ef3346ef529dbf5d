#include "ops/conv2d.h"

#include "core/op.h"

namespace secvit {
namespace {

// The geometry attributes (stride, padding, dilation) and the output size of a convolution of
// p's h x w image with its kh x kw kernel, checked.
void geometry(OpCall& c, Conv2dOpParams& p) {
  const char* op = c.op();
  const int64_t big = int64_t(1) << 20;
  p.stride_h = c.attr_int("strideH", 1, big);
  p.stride_w = c.attr_int("strideW", 1, big);
  p.pad_h = c.attr_int("padH", 0, big);
  p.pad_w = c.attr_int("padW", 0, big);
  p.dil_h = c.attr_int("dilationH", 1, big);
  p.dil_w = c.attr_int("dilationW", 1, big);
  const int64_t eff_h = checked_add(checked_mul(p.dil_h, p.kh - 1, op), 1, op);
  const int64_t eff_w = checked_add(checked_mul(p.dil_w, p.kw - 1, op), 1, op);
  const int64_t ph = checked_add(p.h, 2 * p.pad_h, op), pw = checked_add(p.w, 2 * p.pad_w, op);
  if (p.kh < 1 || p.kw < 1 || eff_h > ph || eff_w > pw)
    throw_range_error(op, ": the kernel (", p.kh, " x ", p.kw, ", dilation ", p.dil_h, " x ", p.dil_w,
                      ") is larger than the padded input (", ph, " x ", pw, ")");
  p.oh = (ph - eff_h) / p.stride_h + 1;
  p.ow = (pw - eff_w) / p.stride_w + 1;
}

void prepare_conv2d(OpCall& c) {
  const char* op = c.op();
  c.require_float(kConvX);
  c.require_same_dtype(kConvX, kConvWeight);
  c.require_rank(kConvX, 4, "[B, C, H, W]");
  c.require_rank(kConvWeight, 4, "[O, C/groups, kh, kw]");
  const Tensor& x = c.in(kConvX);
  const Tensor& w = c.in(kConvWeight);
  Conv2dOpParams p{};
  p.b = x.shape[0];
  p.c = x.shape[1];
  p.h = x.shape[2];
  p.w = x.shape[3];
  p.o = w.shape[0];
  p.kh = w.shape[2];
  p.kw = w.shape[3];
  const int64_t big = int64_t(1) << 20;
  p.groups = c.attr_int("groups", 1, big);
  p.act = int(c.attr_int("act", 0, 2));
  if (p.c % p.groups != 0 || p.o % p.groups != 0)
    throw_range_error(op, ": groups (", p.groups, ") must divide the input channels (", p.c,
                      ") and the output channels (", p.o, ")");
  if (w.shape[1] != p.c / p.groups)
    throw_range_error(op, ": weight ", shape_string(w.shape), " needs ", w.shape[1] * p.groups,
                      " input channels for groups=", p.groups, ", x ", shape_string(x.shape), " has ", p.c);
  geometry(c, p);
  for (int i = 0; i < 4; ++i) p.xs[i] = x.strides[size_t(i)];
  const Shape out{p.b, p.o, p.oh, p.ow};
  if (c.has(kConvBias)) {
    c.require_same_dtype(kConvX, kConvBias);
    if (c.in(kConvBias).shape != Shape{p.o})
      throw_range_error(op, ": bias must be [", p.o, "], got ", shape_string(c.in(kConvBias).shape));
  }
  if (c.has(kConvScale)) {
    c.require_same_dtype(kConvX, kConvScale);
    if (c.in(kConvScale).shape != Shape{p.o})
      throw_range_error(op, ": scale must be [", p.o, "], got ", shape_string(c.in(kConvScale).shape));
    if (conv2d_is_depthwise(p))
      throw_range_error(op, ": scale is supported for dense, grouped and 1x1 convolutions, not depthwise ones (groups = channels = ",
                        p.c, ")");
  }
  if (c.has(kConvResidual)) {
    c.require_same_dtype(kConvX, kConvResidual);
    if (c.in(kConvResidual).shape != out)
      throw_range_error(op, ": residual must be ", shape_string(out), ", got ",
                        shape_string(c.in(kConvResidual).shape));
    for (int i = 0; i < 4; ++i) p.rs[i] = c.in(kConvResidual).strides[size_t(i)];
    // The kernels address residual pixels as rows (b, pixel); a layout where a pixel row does
    // not follow from (y, x) by one stride is packed first.
    if (!conv2d_pixels_are_rows(p.oh, p.ow, p.rs)) {
      c.require_contiguous(kConvResidual);
      const Strides s = contiguous_strides(out);
      for (int i = 0; i < 4; ++i) p.rs[i] = s[size_t(i)];
    }
  }
  c.set_profile_label(conv2d_is_depthwise(p) ? "conv2d:depthwise"
                      : conv2d_is_pointwise(p) ? "conv2d:1x1"
                                               : "conv2d:dense");
  static const int kChannelsLast[4] = {0, 2, 3, 1};
  c.add_output(out, x.dtype, kChannelsLast);
  c.set_params(p);
}

void prepare_im2col(OpCall& c) {
  c.require_float(0);
  c.require_rank(0, 4, "[B, C, H, W]");
  const Tensor& x = c.in(0);
  Conv2dOpParams p{};
  p.b = x.shape[0];
  p.c = x.shape[1];
  p.h = x.shape[2];
  p.w = x.shape[3];
  p.kh = c.attr_int("kh", 1, int64_t(1) << 20);
  p.kw = c.attr_int("kw", 1, int64_t(1) << 20);
  geometry(c, p);
  for (int i = 0; i < 4; ++i) p.xs[i] = x.strides[size_t(i)];
  const char* op = c.op();
  c.add_output(Shape{checked_mul(checked_mul(p.b, p.oh, op), p.ow, op), checked_mul(checked_mul(p.kh, p.kw, op), p.c, op)},
               x.dtype);
  c.set_params(p);
}

void prepare_col2im(OpCall& c) {
  c.require_float(0);
  c.require_rank(0, 2, "[B * OH * OW, kh * kw * C]");
  const char* op = c.op();
  const int64_t big = int64_t(1) << 30;
  Conv2dOpParams p{};
  p.b = c.attr_int("batch", 0, big);
  p.c = c.attr_int("channels", 0, big);
  p.h = c.attr_int("height", 1, big);
  p.w = c.attr_int("width", 1, big);
  p.kh = c.attr_int("kh", 1, int64_t(1) << 20);
  p.kw = c.attr_int("kw", 1, int64_t(1) << 20);
  geometry(c, p);
  const Shape want{checked_mul(checked_mul(p.b, p.oh, op), p.ow, op), checked_mul(checked_mul(p.kh, p.kw, op), p.c, op)};
  if (c.in(0).shape != want)
    throw_range_error(op, ": cols must be ", shape_string(want), " for that geometry, got ", shape_string(c.in(0).shape));
  c.require_contiguous(0);
  static const int kChannelsLast[4] = {0, 2, 3, 1};
  c.add_output(Shape{p.b, p.c, p.h, p.w}, c.in(0).dtype, kChannelsLast);
  c.set_params(p);
}

void prepare_depthwise_backward(OpCall& c) {
  const char* op = c.op();
  for (int i = 0; i < 3; ++i) c.require_float(i);
  c.require_same_dtype(1, 0);
  c.require_same_dtype(1, 2);
  c.require_rank(0, 4, "[B, C, OH, OW]");
  c.require_rank(1, 4, "[B, C, H, W]");
  c.require_rank(2, 4, "[C, 1, kh, kw]");
  const Tensor& dy = c.in(0);
  const Tensor& x = c.in(1);
  const Tensor& w = c.in(2);
  ConvBackwardParams p{};
  p.g.b = x.shape[0];
  p.g.c = p.g.o = p.g.groups = x.shape[1];
  p.g.h = x.shape[2];
  p.g.w = x.shape[3];
  p.g.kh = w.shape[2];
  p.g.kw = w.shape[3];
  if (w.shape[0] != p.g.c || w.shape[1] != 1)
    throw_range_error(op, ": weight must be [", p.g.c, ", 1, kh, kw], got ", shape_string(w.shape));
  geometry(c, p.g);
  const Shape out{p.g.b, p.g.c, p.g.oh, p.g.ow};
  if (dy.shape != out) throw_range_error(op, ": dy must be ", shape_string(out), ", got ", shape_string(dy.shape));
  for (int i = 0; i < 4; ++i) {
    p.g.xs[i] = x.strides[size_t(i)];
    p.ds[i] = dy.strides[size_t(i)];
  }
  p.need_input = c.attr_bool("needInput");
  p.need_weight = c.attr_bool("needWeight");
  static const int kChannelsLast[4] = {0, 2, 3, 1};
  c.add_output(p.need_input ? x.shape : Shape{0, p.g.c, p.g.h, p.g.w}, x.dtype, kChannelsLast);
  c.add_output(p.need_weight ? w.shape : Shape{0, 1, p.g.kh, p.g.kw}, x.dtype);
  c.set_params(p);
}

void prepare_transpose_weight(OpCall& c) {
  c.require_float(0);
  c.require_rank(0, 4, "[O, C, kh, kw]");
  const Shape& s = c.in(0).shape;
  c.add_output(Shape{s[1], s[0], s[2], s[3]}, c.in(0).dtype);
}

}  // namespace

SECVIT_OP(im2col, "x", "kh,kw,strideH=1,strideW=1,padH=0,padW=0,dilationH=1,dilationW=1", prepare_im2col);
SECVIT_OP(col2im, "cols", "batch,channels,height,width,kh,kw,strideH=1,strideW=1,padH=0,padW=0,dilationH=1,dilationW=1",
          prepare_col2im);
SECVIT_OP(depthwiseConv2dBackward, "dy,x,weight",
          "strideH=1,strideW=1,padH=0,padW=0,dilationH=1,dilationW=1,needInput=1,needWeight=1", prepare_depthwise_backward);
SECVIT_OP(conv2dTransposeWeight, "weight", "", prepare_transpose_weight);
SECVIT_OP(conv2d, "x,weight,bias?,residual?,scale?",
          "strideH=1,strideW=1,padH=0,padW=0,dilationH=1,dilationW=1,groups=1,act=0",
          prepare_conv2d);

}  // namespace secvit
