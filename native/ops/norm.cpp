#include "ops/norm.h"

#include <algorithm>

#include "core/op.h"

namespace secvit {
namespace {

// Input xi dense in some order (else it is packed first); the output gets the same layout. Fills
// the dims other than `dim` in memory order; `order` (optional) receives that order.
void layout(OpCall& c, NormOpParams& p, int64_t dim, int xi = 0, int* order_out = nullptr) {
  const Tensor& x = c.in(xi);
  int order[kMaxDims];
  if (!dense_layout_order(x, order)) {
    c.require_contiguous(xi);
    for (size_t i = 0; i < x.ndim(); ++i) order[i] = int(i);
  }
  if (order_out != nullptr) std::copy(order, order + x.ndim(), order_out);
  c.add_output(x.shape, x.dtype, order);
  const Strides strides = c.out_strides(0);  // x's, when x is dense
  p.d = x.shape[size_t(dim)];
  p.d_stride = strides[size_t(dim)];
  p.nd = 0;
  for (size_t i = 0; i < x.ndim(); ++i) {
    const int d = order[i];
    if (d == int(dim)) continue;
    p.shape[p.nd] = x.shape[size_t(d)];
    p.stride[p.nd] = strides[size_t(d)];
    ++p.nd;
  }
}

void require_channel_vector(OpCall& c, int i, int64_t n) {
  if (!c.has(i)) return;
  c.require_same_dtype(0, i);
  if (c.in(i).ndim() != 1 || c.in(i).shape[0] != n)
    throw_range_error(c.op(), ": ", c.input_name(i), " must be [", n, "], got ", shape_string(c.in(i).shape));
}

void prepare_layer_norm(OpCall& c) {
  c.require_float(0);
  const Tensor& x = c.in(0);
  const int64_t rank = int64_t(x.ndim());
  if (rank < 1) throw_range_error(c.op(), ": x must have at least one dim");
  int64_t dim = c.attr_int("dim", -rank, rank - 1);
  if (dim < 0) dim += rank;
  NormOpParams p{};
  p.eps = float(c.attr_float("eps"));
  if (!(p.eps > 0)) throw_range_error(c.op(), ": eps must be positive, got ", p.eps);
  require_channel_vector(c, 1, x.shape[size_t(dim)]);
  require_channel_vector(c, 2, x.shape[size_t(dim)]);
  layout(c, p, dim);
  c.set_params(p);
}

void prepare_batch_norm(OpCall& c) {
  c.require_float(0);
  const Tensor& x = c.in(0);
  if (x.ndim() < 2) throw_range_error(c.op(), ": x must be [B, C, ...], got ", shape_string(x.shape));
  const int64_t ch = x.shape[1];
  for (int i = 1; i < 5; ++i) require_channel_vector(c, i, ch);
  NormOpParams p{};
  p.eps = float(c.attr_float("eps"));
  if (!(p.eps > 0)) throw_range_error(c.op(), ": eps must be positive, got ", p.eps);
  layout(c, p, 1);
  c.set_params(p);
}

// dy (input 0, any strides) read through its own strides for the dims of p, in x's order.
void dy_strides(OpCall& c, const NormOpParams& p, int64_t dim, const int* order, int64_t* d_stride, int64_t* stride) {
  const Tensor& dy = c.in(0);
  const Tensor& x = c.in(1);
  if (dy.shape != x.shape)
    throw_range_error(c.op(), ": dy must have x's shape ", shape_string(x.shape), ", got ", shape_string(dy.shape));
  c.require_same_dtype(1, 0);
  *d_stride = dy.strides[size_t(dim)];
  int k = 0;
  for (size_t i = 0; i < x.ndim(); ++i)
    if (order[i] != int(dim)) stride[k++] = dy.strides[size_t(order[i])];
  (void)p;
}

void prepare_layer_norm_backward(OpCall& c) {
  c.require_float(1);
  const Tensor& x = c.in(1);
  const int64_t rank = int64_t(x.ndim());
  if (rank < 1) throw_range_error(c.op(), ": x must have at least one dim");
  int64_t dim = c.attr_int("dim", -rank, rank - 1);
  if (dim < 0) dim += rank;
  LayerNormBackwardParams p{};
  p.n.eps = float(c.attr_float("eps"));
  if (!(p.n.eps > 0)) throw_range_error(c.op(), ": eps must be positive, got ", p.n.eps);
  p.need_weight = c.attr_bool("needWeight");
  p.need_bias = c.attr_bool("needBias");
  const int64_t d = x.shape[size_t(dim)];
  if (c.has(2)) {
    c.require_same_dtype(1, 2);
    if (c.in(2).ndim() != 1 || c.in(2).shape[0] != d)
      throw_range_error(c.op(), ": weight must be [", d, "], got ", shape_string(c.in(2).shape));
  }
  int order[kMaxDims];
  layout(c, p.n, dim, 1, order);
  dy_strides(c, p.n, dim, order, &p.dy_d_stride, p.dy_stride);
  c.add_output(Shape{p.need_weight ? d : 0}, x.dtype);
  c.add_output(Shape{p.need_bias ? d : 0}, x.dtype);
  c.set_params(p);
}

void prepare_batch_norm_train(OpCall& c) {
  c.require_float(0);
  const Tensor& x = c.in(0);
  if (x.ndim() < 2) throw_range_error(c.op(), ": x must be [B, C, ...], got ", shape_string(x.shape));
  const int64_t ch = x.shape[1];
  for (int i = 1; i < 3; ++i) require_channel_vector(c, i, ch);
  for (int i = 3; i < 5; ++i)
    if (c.has(i) && (c.in(i).ndim() != 1 || c.in(i).shape[0] != ch))
      throw_range_error(c.op(), ": ", c.input_name(i), " must be [", ch, "], got ", shape_string(c.in(i).shape));
  if (c.has(3) != c.has(4)) throw_range_error(c.op(), ": runningMean and runningVar go together");
  BatchNormTrainParams p{};
  p.n.eps = float(c.attr_float("eps"));
  if (!(p.n.eps > 0)) throw_range_error(c.op(), ": eps must be positive, got ", p.n.eps);
  p.momentum = float(c.attr_float("momentum"));
  if (!(p.momentum >= 0 && p.momentum <= 1)) throw_range_error(c.op(), ": momentum must be in [0, 1], got ", p.momentum);
  p.act = int(c.attr_int("act", 0, 2));
  p.update = c.has(3);
  if (x.numel() / std::max<int64_t>(ch, 1) < 2 && x.numel() > 0)
    throw_range_error(c.op(), ": training needs more than one value per channel, got x ", shape_string(x.shape));
  layout(c, p.n, 1);
  c.add_output(Shape{ch}, DType::Float32);  // mean
  c.add_output(Shape{ch}, DType::Float32);  // biased variance
  if (p.update) {
    for (int i : {3, 4}) {
      if (c.in(i).dtype != DType::Float32)
        throw_type_error(c.op(), ": ", c.input_name(i), " must be float32 (running statistics are updated in place), got ",
                         dtype_name(c.in(i).dtype));
      c.alias_output(i);
    }
  }
  c.set_params(p);
}

void prepare_batch_norm_backward(OpCall& c) {
  c.require_float(1);
  const Tensor& x = c.in(1);
  if (x.ndim() < 2) throw_range_error(c.op(), ": x must be [B, C, ...], got ", shape_string(x.shape));
  const int64_t ch = x.shape[1];
  for (int i : {2, 3})
    if (c.in(i).ndim() != 1 || c.in(i).shape[0] != ch)
      throw_range_error(c.op(), ": ", c.input_name(i), " must be [", ch, "], got ", shape_string(c.in(i).shape));
  for (int i : {4, 5}) {
    if (!c.has(i)) continue;
    c.require_same_dtype(1, i);
    if (c.in(i).ndim() != 1 || c.in(i).shape[0] != ch)
      throw_range_error(c.op(), ": ", c.input_name(i), " must be [", ch, "], got ", shape_string(c.in(i).shape));
  }
  BatchNormBackwardParams p{};
  p.n.eps = float(c.attr_float("eps"));
  if (!(p.n.eps > 0)) throw_range_error(c.op(), ": eps must be positive, got ", p.n.eps);
  p.act = int(c.attr_int("act", 0, 2));
  p.training = c.attr_bool("training");
  // mean and var come as float32 (batchNormTrain's outputs) or in x's dtype (running statistics).
  c.set_compute_dtype(x.dtype);
  int order[kMaxDims];
  layout(c, p.n, 1, 1, order);
  dy_strides(c, p.n, 1, order, &p.dy_d_stride, p.dy_stride);
  c.add_output(Shape{ch}, x.dtype);  // dweight
  c.add_output(Shape{ch}, x.dtype);  // dbias
  c.set_params(p);
}

void prepare_fold_bn(OpCall& c) {
  c.require_float(0);
  const Tensor& w = c.in(0);
  if (w.ndim() < 1) throw_range_error(c.op(), ": weight must be [O, ...], got a scalar");
  const int64_t o = w.shape[0];
  require_channel_vector(c, 1, o);
  for (int i = 2; i < 6; ++i) require_channel_vector(c, i, o);
  FoldBnOpParams p{};
  p.eps = float(c.attr_float("eps"));
  if (!(p.eps > 0)) throw_range_error(c.op(), ": eps must be positive, got ", p.eps);
  p.o = o;
  p.per_o = o == 0 ? 0 : checked_numel(w.shape, c.op()) / o;
  c.add_output(w.shape, w.dtype);
  c.add_output(Shape{o}, w.dtype);
  c.set_params(p);
}

}  // namespace

SECVIT_OP(layerNorm, "x,weight?,bias?", "dim=-1,eps=1e-5", prepare_layer_norm);
SECVIT_OP(batchNorm, "x,mean,var,weight?,bias?", "eps=1e-5", prepare_batch_norm);
SECVIT_OP(foldBatchNorm, "weight,bias?,mean,var,gamma?,beta?", "eps=1e-5", prepare_fold_bn);
SECVIT_OP(layerNormBackward, "dy,x,weight?", "dim=-1,eps=1e-5,needWeight=0,needBias=0", prepare_layer_norm_backward);
SECVIT_OP(batchNormTrain, "x,weight?,bias?,runningMean?,runningVar?", "eps=1e-5,momentum=0.1,act=0", prepare_batch_norm_train);
SECVIT_OP(batchNormBackward, "dy,x,mean,var,weight?,bias?", "eps=1e-5,act=0,training=1", prepare_batch_norm_backward);

}  // namespace secvit
