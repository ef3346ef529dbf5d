// copy(x; dtype, keepLayout): a packed copy of any view of x, converted to `dtype`.
//   keepLayout 0: row-major contiguous; 1: the dims in x's memory order (a channels-last view
//   stays channels-last).
// The dispatcher's own tool (contiguous inputs, widening, narrowing) and behind contiguous(),
// cast() and Tensor.to(). Conversions: between any two dtypes (float <-> int32 as C casts,
// round to nearest even into 16-bit floats). Kernels: native/cpu/copy.cpp, native/cuda/copy.cu.
#include "ops/copy.h"

#include "core/op.h"

namespace secvit {
namespace {

void prepare_copy(OpCall& c) {
  const DType to = DType(c.attr_int("dtype", 0, 3));
  const Tensor& x = c.in(0);
  CopyOpParams p{};
  if (c.attr_bool("keepLayout")) layout_order(x, p.order);
  else
    for (size_t i = 0; i < x.ndim(); ++i) p.order[i] = int(i);
  c.add_output(x.shape, to, p.order);
  c.set_params(p);
}

void prepare_pad(OpCall& c) {
  const Tensor& x = c.in(0);
  const int64_t rank = int64_t(x.ndim());
  if (rank < 1) throw_range_error(c.op(), ": x must have at least one dim, got a scalar");
  int64_t dim = c.attr_int("dim", -rank, rank - 1);
  if (dim < 0) dim += rank;
  const int64_t big = int64_t(1) << 40;
  PadOpParams p{};
  p.dim = int(dim);
  p.before = c.attr_int("before", 0, big);
  const int64_t after = c.attr_int("after", 0, big);
  Shape out = x.shape;
  out[size_t(dim)] = checked_add(checked_add(out[size_t(dim)], p.before, c.op()), after, c.op());
  if (!dense_layout_order(x, p.order))
    for (int i = 0; i < int(rank); ++i) p.order[i] = i;
  c.add_output(out, x.dtype, p.order);
  c.set_params(p);
}

}  // namespace

SECVIT_OP(copy, "x", "dtype,keepLayout=0", prepare_copy);
SECVIT_OP(pad, "x", "dim,before=0,after=0", prepare_pad);

}  // namespace secvit
