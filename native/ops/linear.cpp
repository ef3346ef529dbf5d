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

void prepare_linear(OpCall& c) {
  const char* op = c.op();
  const Tensor& x = c.in(kLinX);
  const Tensor& w = c.in(kLinWeight);
  c.require_float(kLinX);
  c.require_same_dtype(kLinX, kLinWeight);
  if (x.ndim() < 1) throw_range_error(op, ": x must have at least one dim, got a scalar");
  if (w.ndim() != 2) throw_range_error(op, ": weight must be [out, in], got ", shape_string(w.shape));
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
  p.act = int(c.attr_int(0, 0, 2));
  p.layer_norm = c.attr_bool(1);
  p.ln_eps = float(c.attr_float(2));
  p.rope_heads = c.attr_int(3, 0, int64_t(1) << 20);
  p.rope_height = c.attr_int(4, 0, int64_t(1) << 30);
  p.rope_width = c.attr_int(5, 0, int64_t(1) << 30);
  p.k_scale = float(c.attr_float(6));
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
  if (p.rope_heads > 0) {
    if (!c.has(kLinRopeAngle)) throw_range_error(op, ": RoPE needs ropeAngle");
    if (n < 2 * p.rope_heads * 4 || (n / 3) % p.rope_heads != 0 || n % 3 != 0)
      throw_range_error(op, ": RoPE needs a qkv projection (out = 3 E, E = heads x d), got out ", n,
                        " for ", p.rope_heads, " heads");
    p.rope_d = n / 3 / p.rope_heads;
    if (p.rope_d % 4 != 0) throw_range_error(op, ": RoPE needs a head dim divisible by 4, got ", p.rope_d);
    require_vector(c, kLinRopeAngle, p.rope_d / 2, "head dim / 2");
    if (p.rope_height < 1 || p.rope_width < 1 || p.m % (p.rope_height * p.rope_width) != 0)
      throw_range_error(op, ": RoPE grid ", p.rope_height, " x ", p.rope_width,
                        " does not divide the ", p.m, " rows of x into images");
  } else if (c.has(kLinRopeAngle)) {
    throw_range_error(op, ": ropeAngle given without ropeHeads");
  }
  // Row layouts the kernels address directly; anything else is packed first. x and add need
  // contiguous rows; the residual may have any column stride.
  rows_or_pack(c, kLinX, k, true, &p.x_group_rows, &p.x_group_stride, &p.x_row_stride, nullptr);
  if (c.has(kLinAdd))
    rows_or_pack(c, kLinAdd, k, true, &p.add_group_rows, &p.add_group_stride, &p.add_row_stride, nullptr);
  if (c.has(kLinResidual))
    rows_or_pack(c, kLinResidual, n, false, &p.res_group_rows, &p.res_group_stride, &p.res_row_stride,
                 &p.res_col_stride);
  c.add_output(out, x.dtype);
  c.set_params(p);
}

}  // namespace

SECVIT_OP(linear, "x,weight,bias?,residual?,scale?,lnWeight?,lnBias?,add?,ropeAngle?",
          "act,layerNorm,lnEps,ropeHeads,ropeHeight,ropeWidth,kScale", prepare_linear);

}  // namespace secvit
