#include "ops/matmul.h"

#include "core/op.h"

namespace secvit {
namespace {

void prepare_matmul(OpCall& c) {
  const char* op = c.op();
  const Tensor& a = c.in(0);
  const Tensor& b = c.in(1);
  c.require_float(0);
  c.require_same_dtype(0, 1);
  const size_t ra = a.ndim(), rb = b.ndim();
  if (ra < 2 || ra > 3) throw_range_error(op, ": a must be [M,K] or [B,M,K], got ", shape_string(a.shape));
  if (rb < 2 || rb > 3) throw_range_error(op, ": b must be [K,N] or [B,K,N], got ", shape_string(b.shape));
  if (rb == 3 && ra != 3) throw_range_error(op, ": a batched b [B,K,N] needs a batched a [B,M,K]");
  const int64_t batch = ra == 3 ? a.shape[0] : 1;
  const int64_t m = a.shape[ra - 2], k = a.shape[ra - 1];
  const int64_t kb = b.shape[rb - 2], n = b.shape[rb - 1];
  if (k != kb)
    throw_range_error(op, ": inner dimensions differ: a ", shape_string(a.shape), " has K=", k,
                      ", b ", shape_string(b.shape), " has K=", kb);
  if (rb == 3 && b.shape[0] != batch)
    throw_range_error(op, ": batch sizes differ: a has ", batch, ", b has ", b.shape[0]);
  c.add_output(ra == 3 ? Shape{batch, m, n} : Shape{m, n}, a.dtype);
  MatmulOpParams p{batch, m, k, n, rb == 3, 0, 0, 0, 0, 0, 0};
  p.a_bs = ra == 3 ? a.strides[0] : 0;
  p.a_rs = a.strides[ra - 2];
  p.a_cs = a.strides[ra - 1];
  p.b_bs = rb == 3 ? b.strides[0] : 0;
  p.b_ks = b.strides[rb - 2];
  p.b_ns = b.strides[rb - 1];
  c.set_params(p);
}

}  // namespace

SECVIT_OP(matmul, "a,b", "", prepare_matmul);

}  // namespace secvit
