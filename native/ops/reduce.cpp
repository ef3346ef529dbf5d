#include "ops/reduce.h"

#include "core/op.h"

namespace secvit {
namespace {

void prepare_sum(OpCall& c) {
  c.require_float(0);
  const Tensor& x = c.in(0);
  const int rank = int(x.ndim());
  int64_t mask = c.attr_int("dims", 0, (int64_t(1) << kMaxDims) - 1);
  if (mask >> rank != 0)
    throw_range_error(c.op(), ": dims names a dim past x's rank ", rank, " (mask ", mask, ")");
  if (mask == 0) mask = (int64_t(1) << rank) - 1;
  const bool keep = c.attr_bool("keepDim");
  SumOpParams p{};
  Shape out;
  p.n_out = 1;
  p.n_red = 1;
  for (int d = 0; d < rank; ++d) {
    if (mask & (int64_t(1) << d)) {
      p.rshape[p.nr] = x.shape[size_t(d)];
      p.rstride[p.nr++] = x.strides[size_t(d)];
      p.n_red *= x.shape[size_t(d)];
      if (keep) out.push_back(1);
    } else {
      p.kshape[p.nk] = x.shape[size_t(d)];
      p.kstride[p.nk++] = x.strides[size_t(d)];
      p.n_out *= x.shape[size_t(d)];
      out.push_back(x.shape[size_t(d)]);
    }
  }
  c.add_output(out, x.dtype);
  c.set_params(p);
}

void prepare_sum_squares(OpCall& c) {
  c.require_float(0);
  const Tensor& x = c.in(0);
  SumOpParams p{};
  p.n_out = 1;
  p.n_red = 1;
  for (size_t d = 0; d < x.ndim(); ++d) {
    p.rshape[p.nr] = x.shape[d];
    p.rstride[p.nr++] = x.strides[d];
    p.n_red *= x.shape[d];
  }
  p.squares = true;
  c.set_compute_dtype(x.dtype);
  c.add_output(Shape{1}, DType::Float32);
  c.set_params(p);
}

}  // namespace

SECVIT_OP(sum, "x", "dims=0,keepDim=0", prepare_sum);
SECVIT_OP(sumSquares, "x", "", prepare_sum_squares);

}  // namespace secvit
