#include "ops/optim.h"

#include <cmath>

#include "core/op.h"

namespace secvit {
namespace {

// Every input a float32 contiguous tensor of the parameter's shape.
int64_t same_params(OpCall& c, int count) {
  const char* op = c.op();
  for (int i = 0; i < count; ++i) {
    if (!c.has(i)) continue;
    c.require_dtype(i, DType::Float32);
    if (c.in(i).shape != c.in(0).shape)
      throw_range_error(op, ": ", c.input_name(i), " must have param's shape ", shape_string(c.in(0).shape), ", got ",
                        shape_string(c.in(i).shape));
    c.require_contiguous(i);
  }
  return c.in(0).numel();
}

void prepare_adamw(OpCall& c) {
  AdamWParams p{};
  p.n = same_params(c, 4);
  p.lr = float(c.attr_float("lr"));
  p.beta1 = float(c.attr_float("beta1"));
  p.beta2 = float(c.attr_float("beta2"));
  p.eps = float(c.attr_float("eps"));
  p.weight_decay = float(c.attr_float("weightDecay"));
  const int64_t step = c.attr_int("step", 1, int64_t(1) << 50);
  for (float b : {p.beta1, p.beta2})
    if (!(b >= 0.0f && b < 1.0f)) throw_range_error(c.op(), ": betas must be in [0, 1), got ", b);
  p.bias1 = 1.0 - std::pow(double(p.beta1), double(step));
  p.bias2 = 1.0 - std::pow(double(p.beta2), double(step));
  for (int i : {0, 2, 3}) c.alias_output(i);
  c.set_params(p);
}

void prepare_sgd(OpCall& c) {
  SgdParams p{};
  p.n = same_params(c, 3);
  p.lr = float(c.attr_float("lr"));
  p.momentum = float(c.attr_float("momentum"));
  p.dampening = float(c.attr_float("dampening"));
  p.weight_decay = float(c.attr_float("weightDecay"));
  p.nesterov = c.attr_bool("nesterov");
  p.first = c.attr_bool("first");
  p.has_buffer = c.has(2);
  if (p.momentum != 0.0f && !p.has_buffer) throw_range_error(c.op(), ": momentum needs momentumBuffer");
  c.alias_output(0);
  if (p.has_buffer) c.alias_output(2);
  c.set_params(p);
}

void prepare_scale(OpCall& c) {
  c.require_dtype(0, DType::Float32);
  c.require_contiguous(0);
  c.alias_output(0);
  c.set_params(ScaleParams{float(c.attr_float("scale")), c.in(0).numel()});
}

void prepare_dropout(OpCall& c) {
  c.require_float(0);
  const Tensor& x = c.in(0);
  DropoutParams p{};
  p.p = float(c.attr_float("p"));
  if (!(p.p >= 0.0f && p.p < 1.0f)) throw_range_error(c.op(), ": p must be in [0, 1), got ", p.p);
  p.seed = uint64_t(c.attr_int("seed", 0, (int64_t(1) << 53)));
  p.offset = uint64_t(c.attr_int("offset", 0, (int64_t(1) << 53)));
  p.n = x.numel();
  if (c.attr_bool("perSample")) {
    if (x.ndim() < 1 || x.shape[0] == 0) throw_range_error(c.op(), ": perSample needs a batch dim, got ", shape_string(x.shape));
    p.per = p.n / x.shape[0];
  }
  c.require_contiguous(0);
  p.flat = true;
  c.add_output(x.shape, x.dtype);
  c.set_params(p);
}

}  // namespace

SECVIT_OP(adamwStep, "param,grad,expAvg,expAvgSq", "lr,beta1=0.9,beta2=0.999,eps=1e-8,weightDecay=0.01,step", prepare_adamw);
SECVIT_OP(sgdStep, "param,grad,momentumBuffer?", "lr,momentum=0,dampening=0,weightDecay=0,nesterov=0,first=0", prepare_sgd);
SECVIT_OP(scaleInPlace, "x", "scale", prepare_scale);
SECVIT_OP(dropout, "x", "p,seed,offset=0,perSample=0", prepare_dropout);

}  // namespace secvit
