#include "ops/rope2d.h"

#include "core/op.h"

namespace secvit {
namespace {

void prepare_rope2d(OpCall& c) {
  const char* op = c.op();
  c.require_float(0);
  c.require_same_dtype(0, 1);
  c.require_rank(0, 4, "[B, heads, L, d]");
  const Tensor& x = c.in(0);
  Rope2dOpParams p{};
  p.b = x.shape[0];
  p.h = x.shape[1];
  p.l = x.shape[2];
  p.d = x.shape[3];
  p.height = c.attr_int("height", 1, int64_t(1) << 30);
  p.width = c.attr_int("width", 1, int64_t(1) << 30);
  if (p.height * p.width != p.l)
    throw_range_error(op, ": height x width (", p.height, " x ", p.width, " = ", p.height * p.width,
                      ") must equal L (", p.l, ")");
  if (p.d % 4 != 0) throw_range_error(op, ": the head dim d must be a multiple of 4, got ", p.d);
  if (c.in(1).shape != Shape{p.d / 2})
    throw_range_error(op, ": angle must be [d/2] = [", p.d / 2, "], got ", shape_string(c.in(1).shape));
  for (int i = 0; i < 4; ++i) p.xs[i] = x.strides[size_t(i)];
  c.add_output(x.shape, x.dtype);
  c.set_params(p);
}

}  // namespace

SECVIT_OP(rope2d, "x,angle", "height,width", prepare_rope2d);

}  // namespace secvit
