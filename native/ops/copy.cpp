// copy(x; dtype, keep_layout): a packed copy of any view of x, converted to `dtype`.
//   keep_layout 0: row-major contiguous; 1: the dims in x's memory order (a channels-last view
//   stays channels-last).
// The dispatcher's own tool (contiguous inputs, widening, narrowing) and behind contiguous(),
// cast() and Tensor.to(). Conversions: between any two dtypes (float <-> int32 as C casts,
// round to nearest even into 16-bit floats). Kernels: native/cpu/copy.cpp, native/cuda/copy.cu.
#include "ops/copy.h"

#include "core/op.h"

namespace secvit {
namespace {

void prepare_copy(OpCall& c) {
  const DType to = DType(c.attr_int(0, 0, 3));
  const Tensor& x = c.in(0);
  CopyOpParams p{};
  if (c.attr_bool(1)) layout_order(x, p.order);
  else
    for (size_t i = 0; i < x.ndim(); ++i) p.order[i] = int(i);
  c.add_output(x.shape, to, p.order);
  c.set_params(p);
}

}  // namespace

SECVIT_OP(copy, "x", "dtype,keep_layout", prepare_copy);

}  // namespace secvit
