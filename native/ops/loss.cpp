#include "ops/loss.h"

#include "core/op.h"

namespace secvit {
namespace {

CrossEntropyParams check(OpCall& c, int logits, int target) {
  const char* op = c.op();
  c.require_float(logits);
  c.require_rank(logits, 2, "[B, C] logits");
  const Tensor& z = c.in(logits);
  const Tensor& t = c.in(target);
  CrossEntropyParams p{};
  p.b = z.shape[0];
  p.c = z.shape[1];
  p.smoothing = float(c.attr_float("labelSmoothing"));
  if (!(p.smoothing >= 0.0f && p.smoothing <= 1.0f))
    throw_range_error(op, ": labelSmoothing must be in [0, 1], got ", p.smoothing);
  p.reduction = int(c.attr_int("reduction", 0, 2));
  p.ignore = c.attr_int("ignoreIndex", -(int64_t(1) << 31), (int64_t(1) << 31) - 1);
  if (t.dtype == DType::Int32) {
    p.class_target = true;
    if (t.shape != Shape{p.b})
      throw_range_error(op, ": class-index target must be [", p.b, "] (one per row of logits ", shape_string(z.shape),
                        "), got ", shape_string(t.shape));
  } else {
    c.require_same_dtype(logits, target);
    if (t.shape != z.shape)
      throw_range_error(op, ": probability target must have logits' shape ", shape_string(z.shape), ", got ",
                        shape_string(t.shape));
  }
  if (p.c < 1) throw_range_error(op, ": logits need at least one class, got ", shape_string(z.shape));
  c.require_contiguous(logits);
  c.require_contiguous(target);
  c.set_compute_dtype(z.dtype);
  return p;
}

void prepare_cross_entropy(OpCall& c) {
  const CrossEntropyParams p = check(c, 0, 1);
  c.add_output(p.reduction == 2 ? Shape{p.b} : Shape{}, c.in(0).dtype);
  c.add_output(Shape{p.b}, DType::Float32);
  c.set_params(p);
}

void prepare_cross_entropy_backward(OpCall& c) {
  const CrossEntropyParams p = check(c, 1, 2);
  const Shape want = p.reduction == 2 ? Shape{p.b} : Shape{};
  c.require_same_dtype(1, 0);
  if (c.in(0).shape != want)
    throw_range_error(c.op(), ": dloss must be ", shape_string(want), ", got ", shape_string(c.in(0).shape));
  c.require_dtype(3, DType::Float32);
  if (c.in(3).shape != Shape{p.b}) throw_range_error(c.op(), ": lse must be [", p.b, "], got ", shape_string(c.in(3).shape));
  c.require_contiguous(0);
  c.require_contiguous(3);
  c.add_output(c.in(1).shape, c.in(1).dtype);
  c.set_params(p);
}

}  // namespace

SECVIT_OP(crossEntropy, "logits,target", "labelSmoothing=0,reduction=0,ignoreIndex=-100", prepare_cross_entropy);
SECVIT_OP(crossEntropyBackward, "dloss,logits,target,lse", "labelSmoothing=0,reduction=0,ignoreIndex=-100",
          prepare_cross_entropy_backward);

}  // namespace secvit
