#include "ops/norm.h"

#include "core/op.h"

namespace secvit {
namespace {

// x dense in some order (else it is packed first); the output gets the same layout. Fills the
// dims other than `dim` in memory order.
void layout(OpCall& c, NormOpParams& p, int64_t dim) {
  const Tensor& x = c.in(0);
  int order[kMaxDims];
  if (!dense_layout_order(x, order)) {
    c.require_contiguous(0);
    for (size_t i = 0; i < x.ndim(); ++i) order[i] = int(i);
  }
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
  int64_t dim = c.attr_int(0, -rank, rank - 1);
  if (dim < 0) dim += rank;
  NormOpParams p{};
  p.eps = float(c.attr_float(1));
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
  p.eps = float(c.attr_float(0));
  if (!(p.eps > 0)) throw_range_error(c.op(), ": eps must be positive, got ", p.eps);
  layout(c, p, 1);
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
  p.eps = float(c.attr_float(0));
  if (!(p.eps > 0)) throw_range_error(c.op(), ": eps must be positive, got ", p.eps);
  p.o = o;
  p.per_o = o == 0 ? 0 : checked_numel(w.shape, c.op()) / o;
  c.add_output(w.shape, w.dtype);
  c.add_output(Shape{o}, w.dtype);
  c.set_params(p);
}

}  // namespace

SECVIT_OP(layerNorm, "x,weight?,bias?", "dim,eps", prepare_layer_norm);
SECVIT_OP(batchNorm, "x,mean,var,weight?,bias?", "eps", prepare_batch_norm);
SECVIT_OP(foldBatchNorm, "weight,bias?,mean,var,gamma?,beta?", "eps", prepare_fold_bn);

}  // namespace secvit
