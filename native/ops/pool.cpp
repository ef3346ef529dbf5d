#include "ops/pool.h"

#include "core/op.h"

namespace secvit {
namespace {

void prepare_pool(OpCall& c) {
  c.require_float(0);
  c.require_rank(0, 4, "[B, C, H, W]");
  const Tensor& x = c.in(0);
  PoolOpParams p{};
  p.b = x.shape[0];
  p.c = x.shape[1];
  p.h = x.shape[2];
  p.w = x.shape[3];
  if (p.h * p.w == 0 && p.b * p.c != 0)
    throw_range_error(c.op(), ": x has no pixels to average: ", shape_string(x.shape));
  for (int i = 0; i < 4; ++i) p.xs[i] = x.strides[size_t(i)];
  c.add_output(Shape{p.b, p.c, 1, 1}, x.dtype);
  c.set_params(p);
}

}  // namespace

SECVIT_OP(globalAvgPool2d, "x", "", prepare_pool);

}  // namespace secvit
