// copy(x; dtype, keep_layout): a packed copy of any view of x, converted to `dtype`.
//   keep_layout 0: row-major contiguous; 1: the dims in x's memory order (a channels-last view
//   stays channels-last).
// The dispatcher's own tool (contiguous inputs, widening, narrowing) and behind contiguous(),
// cast() and Tensor.to(). Conversions: between any two dtypes (float <-> int32 as C casts,
// round to nearest even into 16-bit floats). Kernels: native/cpu/copy.cpp, native/cuda/copy.cu.
#include "core/op.h"

namespace secvit {
namespace {

void prepare_copy(OpCall& c) {
  const DType to = DType(c.attr_int(0, 0, 3));
  const Tensor& x = c.in(0);
  if (c.attr_bool(1)) {
    int order[kMaxDims];
    layout_order(x, order);
    c.add_output(x.shape, to, order);
  } else {
    c.add_output(x.shape, to);
  }
}

}  // namespace

SECVIT_OP(copy, "x", "dtype,keep_layout", prepare_copy);

}  // namespace secvit
