#include "ops/elementwise.h"

#include <algorithm>

#include "core/op.h"

namespace secvit {
namespace {

void finish(OpCall& c, EwOpParams& p, const Shape& out, int b_input) {
  const Tensor& a = c.in(0);
  int order[kMaxDims];
  const bool a_full = a.shape == out;
  if (a_full && dense_layout_order(a, order)) {
    c.add_output(out, a.dtype, order);
  } else {
    for (size_t i = 0; i < out.size(); ++i) order[i] = int(i);
    c.add_output(out, a.dtype);
  }
  const Strides os = c.out_strides(0);
  // Flat when a (and b) have the output's shape and strides.
  p.flat = a_full && a.strides == os &&
           (b_input < 0 || !c.has(b_input) || (c.in(b_input).shape == out && c.in(b_input).strides == os));
  p.nd = int(out.size());
  const size_t nd = out.size();
  for (size_t k = 0; k < nd; ++k) {
    const size_t d = size_t(order[k]);
    p.shape[k] = out[d];
    // Broadcast operands are right-aligned; a size-1 dim broadcasts with stride 0.
    const size_t ao = nd - a.ndim();
    p.as[k] = d >= ao && a.shape[d - ao] != 1 ? a.strides[d - ao] : 0;
    p.bs[k] = 0;
    if (b_input >= 0 && c.has(b_input)) {
      const Tensor& b = c.in(b_input);
      const size_t bo = nd - b.ndim();
      p.bs[k] = d >= bo && b.shape[d - bo] != 1 ? b.strides[d - bo] : 0;
    }
  }
}

void prepare_unary(OpCall& c, EwOp op) {
  c.require_float(0);
  EwOpParams p{};
  p.op = op;
  finish(c, p, c.in(0).shape, -1);
  c.set_params(p);
}

void prepare_binary(OpCall& c, EwOp op) {
  const char* name = c.op();
  c.require_float(0);
  EwOpParams p{};
  p.op = op;
  Shape out = c.in(0).shape;
  if (c.has(1)) {
    c.require_same_dtype(0, 1);
    const Shape& as = c.in(0).shape;
    const Shape& bs = c.in(1).shape;
    const size_t nd = std::max(as.size(), bs.size());
    out.resize(nd);
    for (size_t i = 0; i < nd; ++i) {
      const int64_t da = i + as.size() >= nd ? as[i + as.size() - nd] : 1;
      const int64_t db = i + bs.size() >= nd ? bs[i + bs.size() - nd] : 1;
      if (da != db && da != 1 && db != 1)
        throw_range_error(name, ": shapes ", shape_string(as), " and ", shape_string(bs),
                          " do not broadcast (dim ", i, ": ", da, " vs ", db, ")");
      out[i] = da == 1 ? db : da;
    }
  } else {
    p.scalar = float(c.attr_float("scalar"));
  }
  finish(c, p, out, 1);
  c.set_params(p);
}

void prepare_activation_backward(OpCall& c) {
  c.require_float(0);
  c.require_same_dtype(0, 1);
  if (c.in(0).shape != c.in(1).shape)
    throw_range_error(c.op(), ": dy and x must have one shape, got ", shape_string(c.in(0).shape), " and ",
                      shape_string(c.in(1).shape));
  EwOpParams p{};
  p.op = c.attr_int("act", 1, 2) == 1 ? EwOp::GeluGrad : EwOp::SiluGrad;
  finish(c, p, c.in(0).shape, 1);
  c.set_params(p);
}

void prepare_gelu(OpCall& c) { prepare_unary(c, EwOp::Gelu); }
void prepare_silu(OpCall& c) { prepare_unary(c, EwOp::Silu); }
void prepare_add(OpCall& c) { prepare_binary(c, EwOp::Add); }
void prepare_mul(OpCall& c) { prepare_binary(c, EwOp::Mul); }

}  // namespace

SECVIT_OP(gelu, "x", "", prepare_gelu);
SECVIT_OP(silu, "x", "", prepare_silu);
SECVIT_OP(add, "a,b?", "scalar=0", prepare_add);
SECVIT_OP(mul, "a,b?", "scalar=1", prepare_mul);
SECVIT_OP(activationBackward, "dy,x", "act", prepare_activation_backward);

}  // namespace secvit
