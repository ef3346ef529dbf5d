// Rules of secAttention, secAttentionUnfused (the benchmark baseline), windowAttention and
// globalAttention: one validation for every backend. Backend limits (CUDA grid sizes, head dim
// on tensor cores) are the kernels' `supports`.
#include "ops/attention.h"

#include <string>

#include "core/op.h"

namespace secvit {
namespace {

constexpr int64_t kBig = int64_t(1) << 30;

AttentionOpParams check_qkv(OpCall& c) {
  const char* op = c.op();
  for (int i = 0; i < 3; ++i) {
    c.require_float(i);
    if (i > 0 && c.in(i).dtype != c.in(0).dtype)
      throw_type_error(op, ": q, k and v must have one dtype, got ", dtype_name(c.in(0).dtype), ", ",
                       dtype_name(c.in(1).dtype), " and ", dtype_name(c.in(2).dtype));
  }
  for (int i = 0; i < 3; ++i) c.require_rank(i, 4, "[B, H, L, D]");
  const Shape& s = c.in(0).shape;
  if (c.in(1).shape != s || c.in(2).shape != s)
    throw_range_error(op, ": q, k and v must have one shape, got ", shape_string(s), ", ",
                      shape_string(c.in(1).shape), " and ", shape_string(c.in(2).shape));
  if (s[3] < 1 || s[3] > 256) throw_range_error(op, ": head dim D must be in [1, 256], got ", s[3]);
  if (s[2] > kBig) throw_range_error(op, ": L is too large: ", s[2]);
  // The CPU kernels read q, k and v through their strides (the model's views of its qkv
  // projection need no copy) when the head dim is contiguous; otherwise they get copies.
  for (int i = 0; i < 3; ++i)
    if (s[3] > 1 && c.in(i).strides[3] != 1) c.require_contiguous(i);
  // On the CPU the output is token-major ([B, L, H, D] in memory; the same values): the
  // model's out_proj then reads it as [B, L, E] tokens without a copy. CUDA writes [B, H, L, D].
  if (c.device() == Device::Cpu) {
    static const int kTokenMajor[4] = {0, 2, 1, 3};
    c.add_output(s, c.in(0).dtype, kTokenMajor);
  } else {
    c.add_output(s, c.in(0).dtype);
  }
  AttentionOpParams p{};
  p.b = s[0];
  p.h = s[1];
  p.l = s[2];
  p.d = s[3];
  p.clusters = 1;
  return p;
}

void add_lse(OpCall& c, AttentionOpParams& p) {
  p.save_lse = c.attr_bool("saveLse");
  if (p.save_lse) c.add_output(Shape{p.b, p.h, p.l}, DType::Float32);
}

void sec_clusters(OpCall& c, AttentionOpParams& p) {
  p.clusters = c.attr_int("clusters", -(int64_t(1) << 31), int64_t(1) << 31);
  if (p.clusters > p.l)
    throw_range_error(c.op(), ": clusters must be at most L (", p.l, "), got ", p.clusters);
}

void prepare_sec(OpCall& c) {
  AttentionOpParams p = check_qkv(c);
  sec_clusters(c, p);
  p.return_order = c.attr_bool("returnOrder");
  if (p.return_order) c.add_output(Shape{p.b, p.h, p.l}, DType::Int32);
  if (std::string(c.op()) == "secAttention") add_lse(c, p);
  c.set_params(p);
}

void window_geometry(OpCall& c, AttentionOpParams& p) {
  const char* op = c.op();
  p.height = c.attr_int("height", 1, kBig);
  p.width = c.attr_int("width", 1, kBig);
  p.win_h = c.attr_int("windowH", 1, kBig);
  p.win_w = c.attr_int("windowW", 1, kBig);
  p.shift_h = c.attr_int("shiftH", 0, kBig);
  p.shift_w = c.attr_int("shiftW", 0, kBig);
  if (p.height * p.width != p.l)
    throw_range_error(op, ": height x width (", p.height, " x ", p.width, " = ", p.height * p.width,
                      ") must equal L (", p.l, ")");
  if (p.win_h > p.height || p.win_w > p.width)
    throw_range_error(op, ": window [", p.win_h, ", ", p.win_w, "] is larger than the grid [",
                      p.height, ", ", p.width, "]");
  if (p.shift_h >= p.win_h || p.shift_w >= p.win_w)
    throw_range_error(op, ": shift [", p.shift_h, ", ", p.shift_w,
                      "] must be smaller than the window [", p.win_h, ", ", p.win_w, "]");
}

// Swin's relative position bias: an optional float32 input [H, N, N] (N = wh * ww), whatever
// q's dtype (a logit offset; 16-bit q, k, v with it run on the tensor-core kernels), added to
// the logits of every window: bias[h, i, j] for the query in window slot i and the key in slot j
// (slot = row * ww + column inside the window of the rolled, padded grid). Its gradient (the
// backward's dbias) is float32 too.
void window_bias(OpCall& c, AttentionOpParams& p, int index) {
  p.has_bias = c.has(index);
  if (!p.has_bias) return;
  c.require_dtype(index, DType::Float32);
  const int64_t n = p.win_h * p.win_w;
  if (c.in(index).shape != Shape{p.h, n, n})
    throw_range_error(c.op(), ": bias must be [H, wh*ww, wh*ww] = [", p.h, ", ", n, ", ", n, "], got ",
                      shape_string(c.in(index).shape));
  c.require_contiguous(index);
}

void prepare_window(OpCall& c) {
  AttentionOpParams p = check_qkv(c);
  window_geometry(c, p);
  window_bias(c, p, 3);
  add_lse(c, p);
  c.set_params(p);
}

void prepare_global(OpCall& c) {
  AttentionOpParams p = check_qkv(c);
  add_lse(c, p);
  c.set_params(p);
}

// Backward: q, k, v, out, dout as the forward's q and out (one dtype, [B, H, L, D], head dim
// contiguous, any other strides), lse float32 [B, H, L] contiguous, SEC's order int32 [B, H, L].
AttentionOpParams check_backward(OpCall& c) {
  const char* op = c.op();
  AttentionOpParams p = check_qkv(c);  // q, k, v; adds dq (the CPU's token-major layout)
  const Shape& s = c.in(0).shape;
  for (int i : {3, 4}) {
    c.require_same_dtype(0, i);
    if (c.in(i).shape != s)
      throw_range_error(op, ": ", c.input_name(i), " must be ", shape_string(s), ", got ", shape_string(c.in(i).shape));
    if (s[3] > 1 && c.in(i).strides[3] != 1) c.require_contiguous(i);
  }
  c.require_dtype(5, DType::Float32);
  if (c.in(5).shape != Shape{p.b, p.h, p.l})
    throw_range_error(op, ": lse must be [", p.b, ", ", p.h, ", ", p.l, "], got ", shape_string(c.in(5).shape));
  c.require_contiguous(5);
  // dk, dv in dq's layout.
  for (int i = 0; i < 2; ++i) {
    if (c.device() == Device::Cpu) {
      static const int kTokenMajor[4] = {0, 2, 1, 3};
      c.add_output(s, c.in(0).dtype, kTokenMajor);
    } else {
      c.add_output(s, c.in(0).dtype);
    }
  }
  return p;
}

void prepare_sec_backward(OpCall& c) {
  AttentionOpParams p = check_backward(c);
  sec_clusters(c, p);
  c.require_dtype(6, DType::Int32);
  if (c.in(6).shape != Shape{p.b, p.h, p.l})
    throw_range_error(c.op(), ": order must be [", p.b, ", ", p.h, ", ", p.l, "], got ", shape_string(c.in(6).shape));
  c.require_contiguous(6);
  c.set_params(p);
}

void prepare_window_backward(OpCall& c) {
  AttentionOpParams p = check_backward(c);
  window_geometry(c, p);
  window_bias(c, p, 6);
  if (p.has_bias) c.add_output(c.in(6).shape, c.in(6).dtype);  // dbias
  c.set_params(p);
}

void prepare_global_backward(OpCall& c) { c.set_params(check_backward(c)); }

}  // namespace

SECVIT_OP(secAttention, "q,k,v", "clusters,returnOrder=0,saveLse=0", prepare_sec);
SECVIT_OP(secAttentionUnfused, "q,k,v", "clusters,returnOrder=0", prepare_sec);
SECVIT_OP(windowAttention, "q,k,v,bias?", "height,width,windowH,windowW,shiftH=0,shiftW=0,saveLse=0", prepare_window);
SECVIT_OP(globalAttention, "q,k,v", "saveLse=0", prepare_global);
SECVIT_OP(secAttentionBackward, "q,k,v,out,dout,lse,order", "clusters", prepare_sec_backward);
SECVIT_OP(windowAttentionBackward, "q,k,v,out,dout,lse,bias?", "height,width,windowH,windowW,shiftH=0,shiftW=0",
          prepare_window_backward);
SECVIT_OP(globalAttentionBackward, "q,k,v,out,dout,lse", "", prepare_global_backward);

}  // namespace secvit
