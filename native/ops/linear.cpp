#include "ops/linear.h"

#include "core/op.h"

namespace secvit {
namespace {

// Two-level row addressing of the leading dims of `t` (last dim excluded): rows r of group g
// at g * group_stride + r * row_stride. False when the leading dims do not collapse so.
bool collapse_rows(const Tensor& t, int64_t* group_rows, int64_t* group_stride, int64_t* row_stride) {
  const size_t nd = t.ndim() - 1;
  // Merge leading dims that are contiguous with each other into runs; at most two runs.
  int64_t sizes[kMaxDims], strides[kMaxDims];
  int runs = 0;
  for (size_t i = 0; i < nd; ++i) {
    if (t.shape[i] == 1) continue;
    if (runs > 0 && strides[runs - 1] == t.shape[i] * t.strides[i]) {
      sizes[runs - 1] *= t.shape[i];
      strides[runs - 1] = t.strides[i];
    } else {
      sizes[runs] = t.shape[i];
      strides[runs] = t.strides[i];
      ++runs;
    }
  }
  if (runs == 0) {
    *group_rows = 0;
    *group_stride = 0;
    *row_stride = 0;
    return true;
  }
  if (runs == 1) {
    *group_rows = 0;
    *group_stride = 0;
    *row_stride = strides[0];
    return true;
  }
  if (runs == 2) {
    *group_rows = sizes[1];
    *group_stride = strides[0];
    *row_stride = strides[1];
    return true;
  }
  return false;
}

// Input i's rows (its last dim of `cols` values) as two levels of rows, or, when they do not
// collapse so (or, with `unit_cols`, when the last dim is strided), a request to pack it first
// and the row-major addressing of the packed copy.
void rows_or_pack(OpCall& c, int i, int64_t cols, bool unit_cols, int64_t* gr, int64_t* gs, int64_t* rs,
                  int64_t* cs) {
  const Tensor& t = c.in(i);
  const int64_t col_stride = t.strides[t.ndim() - 1];
  if (collapse_rows(t, gr, gs, rs) && (!unit_cols || cols <= 1 || col_stride == 1)) {
    if (cs != nullptr) *cs = col_stride;
    return;
  }
  c.require_contiguous(i);
  *gr = 0;
  *gs = 0;
  *rs = cols;
  if (cs != nullptr) *cs = 1;
}

void require_vector(OpCall& c, int i, int64_t n, const char* of) {
  if (!c.has(i)) return;
  c.require_same_dtype(0, i);
  if (c.in(i).ndim() != 1 || c.in(i).shape[0] != n)
    throw_range_error(c.op(), ": ", c.input_name(i), " must be [", n, "] (", of, "), got ",
                      shape_string(c.in(i).shape));
}

void rope_params(OpCall& c, int64_t n, int64_t m, int angle_input, int64_t* heads, int64_t* d, int64_t* height,
                 int64_t* width);

void prepare_linear(OpCall& c) {
  const char* op = c.op();
  const Tensor& x = c.in(kLinX);
  const Tensor& w = c.in(kLinWeight);
  c.require_float(kLinX);
  c.require_same_dtype(kLinX, kLinWeight);
  if (x.ndim() < 1) throw_range_error(op, ": x must have at least one dim, got a scalar");
  // [out, in], or a 1x1 convolution's [out, in, 1, 1] (the same elements).
  if (!(w.ndim() == 2 || (w.ndim() == 4 && w.shape[2] == 1 && w.shape[3] == 1)))
    throw_range_error(op, ": weight must be [out, in] (or [out, in, 1, 1]), got ", shape_string(w.shape));
  const int64_t k = x.shape[x.ndim() - 1], n = w.shape[0];
  if (w.shape[1] != k)
    throw_range_error(op, ": weight ", shape_string(w.shape), " needs x's last dim to be ", w.shape[1],
                      ", got x ", shape_string(x.shape));
  Shape out = x.shape;
  out[out.size() - 1] = n;
  LinearOpParams p{};
  p.n = n;
  p.k = k;
  p.m = checked_numel(Shape(x.shape.begin(), x.shape.end() - 1), op);
  p.act = int(c.attr_int("act", 0, 2));
  p.layer_norm = c.attr_bool("layerNorm");
  p.ln_eps = float(c.attr_float("lnEps"));
  p.k_scale = float(c.attr_float("kScale"));
  if (p.layer_norm && !(p.ln_eps > 0)) throw_range_error(op, ": lnEps must be positive, got ", p.ln_eps);
  require_vector(c, kLinBias, n, "out");
  require_vector(c, kLinScale, n, "out");
  require_vector(c, kLinLnWeight, k, "in");
  require_vector(c, kLinLnBias, k, "in");
  if ((c.has(kLinLnWeight) || c.has(kLinLnBias)) && !p.layer_norm)
    throw_range_error(op, ": lnWeight/lnBias given without layerNorm");
  for (int i : {int(kLinResidual), int(kLinAdd)}) {
    if (!c.has(i)) continue;
    c.require_same_dtype(kLinX, i);
    const Shape& want = i == kLinResidual ? out : x.shape;
    if (c.in(i).shape != want)
      throw_range_error(op, ": ", c.input_name(i), " must be ", shape_string(want), ", got ",
                        shape_string(c.in(i).shape));
  }
  rope_params(c, n, p.m, kLinRopeAngle, &p.rope_heads, &p.rope_d, &p.rope_height, &p.rope_width);
  // Row layouts the kernels address directly; anything else is packed first. x and add need
  // contiguous rows; the residual may have any column stride.
  rows_or_pack(c, kLinX, k, true, &p.x_group_rows, &p.x_group_stride, &p.x_row_stride, nullptr);
  if (c.has(kLinAdd))
    rows_or_pack(c, kLinAdd, k, true, &p.add_group_rows, &p.add_group_stride, &p.add_row_stride, nullptr);
  if (c.has(kLinResidual))
    rows_or_pack(c, kLinResidual, n, false, &p.res_group_rows, &p.res_group_stride, &p.res_row_stride,
                 &p.res_col_stride);
  c.add_output(out, x.dtype);
  p.save_pre = c.attr_bool("savePre");
  if (p.save_pre) c.add_output(out, x.dtype);
  c.set_params(p);
}

// RoPE attributes shared by linear and its backward; the checks need the head count to divide
// the columns of a qkv projection.
void rope_params(OpCall& c, int64_t n, int64_t m, int angle_input, int64_t* heads, int64_t* d, int64_t* height,
                 int64_t* width) {
  const char* op = c.op();
  *heads = c.attr_int("ropeHeads", 0, int64_t(1) << 20);
  *height = c.attr_int("ropeHeight", 0, int64_t(1) << 30);
  *width = c.attr_int("ropeWidth", 0, int64_t(1) << 30);
  if (*heads == 0) {
    if (c.has(angle_input)) throw_range_error(op, ": ropeAngle given without ropeHeads");
    return;
  }
  if (!c.has(angle_input)) throw_range_error(op, ": RoPE needs ropeAngle");
  if (n < 2 * *heads * 4 || (n / 3) % *heads != 0 || n % 3 != 0)
    throw_range_error(op, ": RoPE needs a qkv projection (out = 3 E, E = heads x d), got out ", n, " for ", *heads, " heads");
  *d = n / 3 / *heads;
  if (*d % 4 != 0) throw_range_error(op, ": RoPE needs a head dim divisible by 4, got ", *d);
  require_vector(c, angle_input, *d / 2, "head dim / 2");
  if (*height < 1 || *width < 1 || m % (*height * *width) != 0)
    throw_range_error(op, ": RoPE grid ", *height, " x ", *width, " does not divide the ", m, " rows into images");
}

void prepare_linear_backward(OpCall& c) {
  const char* op = c.op();
  c.require_float(kLbDy);
  const Tensor& dy = c.in(kLbDy);
  if (dy.ndim() < 1) throw_range_error(op, ": dy must have at least one dim, got a scalar");
  LinearBackwardParams p{};
  p.n = dy.shape[dy.ndim() - 1];
  p.m = checked_numel(Shape(dy.shape.begin(), dy.shape.end() - 1), op);
  p.act = int(c.attr_int("act", 0, 2));
  p.k_scale = float(c.attr_float("kScale"));
  p.need_scale = c.attr_bool("needScale");
  p.has_bias = c.attr_bool("needBias");
  if (c.has(kLbPre)) {
    c.require_same_dtype(kLbDy, kLbPre);
    if (c.in(kLbPre).shape != dy.shape)
      throw_range_error(op, ": pre must have dy's shape ", shape_string(dy.shape), ", got ", shape_string(c.in(kLbPre).shape));
    c.require_contiguous(kLbPre);
  }
  if ((p.act != 0 || p.need_scale) && !c.has(kLbPre))
    throw_range_error(op, ": the activation's and the scale's gradients need pre (linear's savePre output)");
  if (p.need_scale && !c.has(kLbScale)) throw_range_error(op, ": needScale without scale");
  require_vector(c, kLbBias, p.n, "out");
  require_vector(c, kLbScale, p.n, "out");
  rope_params(c, p.n, p.m, kLbRopeAngle, &p.rope_heads, &p.rope_d, &p.rope_height, &p.rope_width);
  // dy's rows as the kernels address them (contiguous columns), else packed.
  int64_t cs = 1;
  rows_or_pack(c, kLbDy, p.n, true, &p.dy_group_rows, &p.dy_group_stride, &p.dy_row_stride, &cs);
  c.add_output(Shape{p.m, p.n}, dy.dtype);                          // dz
  c.add_output(Shape{p.has_bias ? p.n : 0}, dy.dtype);              // dbias
  c.add_output(Shape{p.need_scale ? p.n : 0}, dy.dtype);            // dscale
  c.set_params(p);
}

}  // namespace

SECVIT_OP(linear, "x,weight,bias?,residual?,scale?,lnWeight?,lnBias?,add?,ropeAngle?",
          "act=0,layerNorm=0,lnEps=1e-6,ropeHeads=0,ropeHeight=0,ropeWidth=0,kScale=1,savePre=0", prepare_linear);
SECVIT_OP(linearEpilogueBackward, "dy,pre?,bias?,scale?,ropeAngle?",
          "act=0,ropeHeads=0,ropeHeight=0,ropeWidth=0,kScale=1,needScale=0,needBias=0", prepare_linear_backward);

}  // namespace secvit
