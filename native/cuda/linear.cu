// CUDA kernels of `linear` (native/ops/linear.h): one launch of the fused GEMM (gemm.cuh) with
// the weight as a [N, K] operand, after the LayerNorm statistics when the prologue has a norm;
// and of linearEpilogueBackward: one thread per (row, column pair) forms dz (the rotation
// transposed, the activation's derivative) and, for the scale's gradient, dy * rope(act(pre))
// into scratch; then column sums (reduce.cuh) give dbias and dscale.
// Cost (backward): reads dy and pre, writes dz (and the scratch); column sums read them again.
#include "gemm.cuh"

#include "../core/op.h"
#include "../ops/linear.h"
#include "cuda_backend.h"
#include "device_buffer.cuh"
#include "sums.cuh"
#include "reduce.cuh"

namespace secvit {
namespace SV_CUDA_NS {
namespace {

void linear_cuda(const KernelArgs& a) {
  const LinearOpParams& lp = a.p<LinearOpParams>();
  GemmParamsCuda p{};
  p.m = int(lp.m);
  p.n = int(lp.n);
  p.k = int(lp.k);
  p.dtype = int(a.in[kLinX].dtype);
  p.a = a.in[kLinX].data;
  p.a_gr = lp.x_group_rows;
  p.a_gs = lp.x_group_stride;
  p.a_rs = lp.x_row_stride;
  p.a_cs = 1;
  p.add = a.in[kLinAdd].data;
  p.add_gr = lp.add_group_rows;
  p.add_gs = lp.add_group_stride;
  p.add_rs = lp.add_row_stride;
  p.add_cs = 1;
  p.ln_w = a.in[kLinLnWeight].data;
  p.ln_b = a.in[kLinLnBias].data;
  p.b = a.in[kLinWeight].data;
  p.b_ns = lp.k;
  p.b_ks = 1;
  p.c = a.out[0].data;
  p.ldc = lp.n;
  p.bias = a.in[kLinBias].data;
  p.act = lp.act;
  p.scale = a.in[kLinScale].data;
  p.residual = a.in[kLinResidual].data;
  p.r_gr = lp.res_group_rows;
  p.r_gs = lp.res_group_stride;
  p.r_rs = lp.res_row_stride;
  p.r_cs = lp.res_col_stride;
  if (lp.rope_heads > 0) {
    p.rope_angle = a.in[kLinRopeAngle].data;
    p.rope_heads = int(lp.rope_heads);
    p.rope_d = int(lp.rope_d);
    p.rope_h = int(lp.rope_height);
    p.rope_w = int(lp.rope_width);
    p.k_scale = lp.k_scale;
  }
  if (lp.save_pre) p.pre = a.out[1].data;
  DeviceBuffer stats(lp.layer_norm ? size_t(lp.m) * 2 * sizeof(float) : 0);
  launch_gemm(p, lp.ln_eps, lp.layer_norm ? stats.as<float>() : nullptr, stream());
}

__global__ void __launch_bounds__(256) linear_backward_kernel(LinearBackwardParams p, const void* dy, const void* pre,
                                                              const void* scale, const void* angle, void* dz,
                                                              float* prod, int dtype) {
  const int64_t half_n = (p.n + 1) / 2;
  const int64_t e = p.rope_heads * p.rope_d;
  for (int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; idx < p.m * half_n;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = idx / half_n, j = (idx % half_n) * 2;
    const bool two = j + 1 < p.n;
    const int64_t row = rowmap(r, p.dy_group_rows, p.dy_group_stride, p.dy_row_stride);
    float d0 = load_as_float(dy, dtype, row + j), d1 = two ? load_as_float(dy, dtype, row + j + 1) : 0.0f;
    const float z0 = pre != nullptr ? load_as_float(pre, dtype, r * p.n + j) : 0.0f;
    const float z1 = pre != nullptr && two ? load_as_float(pre, dtype, r * p.n + j + 1) : 0.0f;
    const bool rot = p.rope_heads > 0 && j < 2 * e;
    int64_t ty = 0, tx = 0;
    if (rot) {
      const int64_t l = r % (p.rope_height * p.rope_width);
      ty = l / p.rope_width;
      tx = l % p.rope_width;
    }
    const float k = rot && j >= e ? p.k_scale : 1.0f;
    if (prod != nullptr) {
      float h0 = gemm_act(p.act, z0), h1 = gemm_act(p.act, z1);
      if (rot) {
        rope_rotate_pair(h0, h1, angle, dtype, j % p.rope_d, p.rope_d, ty, tx);
        h0 *= k;
        h1 *= k;
      }
      prod[r * p.n + j] = d0 * h0;
      if (two) prod[r * p.n + j + 1] = d1 * h1;
    }
    if (scale != nullptr) {
      d0 *= load_as_float(scale, dtype, j);
      if (two) d1 *= load_as_float(scale, dtype, j + 1);
    }
    if (rot) {
      // The rotation's transpose: the rotation by minus the angle.
      d0 *= k;
      d1 *= k;
      const int64_t half = p.rope_d / 2, jj = j % p.rope_d;
      const float th = float(jj < half ? ty : tx) * load_as_float(angle, dtype, jj < half ? jj : jj - half);
      float sn, cs;
      sincosf(th, &sn, &cs);
      const float a0 = d0 * cs + d1 * sn, a1 = d1 * cs - d0 * sn;
      d0 = a0;
      d1 = a1;
    }
    store_from_float(dz, dtype, r * p.n + j, d0 * gemm_act_grad(p.act, z0));
    if (two) store_from_float(dz, dtype, r * p.n + j + 1, d1 * gemm_act_grad(p.act, z1));
  }
}

void linear_backward_cuda(const KernelArgs& a) {
  const LinearBackwardParams& p = a.p<LinearBackwardParams>();
  if (p.m == 0 || p.n == 0) {
    if (p.has_bias) backend()->fill(a.out[1].data, 0, a.out[1].numel() * dtype_size(a.out[1].dtype));
    if (p.need_scale) backend()->fill(a.out[2].data, 0, a.out[2].numel() * dtype_size(a.out[2].dtype));
    return;
  }
  const int dtype = int(a.in[kLbDy].dtype);
  DeviceBuffer prod(p.need_scale ? size_t(p.m * p.n) * sizeof(float) : 0);
  const int64_t pairs = p.m * ((p.n + 1) / 2);
  SV_LAUNCH(linear_backward_kernel, dim3(grid_for(pairs, 256)), dim3(256), 0, stream(), p, a.in[kLbDy].data,
            a.in[kLbPre].data, a.in[kLbScale].data, a.in[kLbRopeAngle].data, a.out[0].data,
            p.need_scale ? prod.as<float>() : nullptr, dtype);
  SV_CUDA_CHECK_LAUNCH("linear_backward_kernel");
  if (p.has_bias) launch_column_sums(a.out[0].data, dtype, p.m, p.n, p.n, a.out[1].data, dtype);
  if (p.need_scale) launch_column_sums(prod.as<float>(), int(DType::Float32), p.m, p.n, p.n, a.out[2].data, dtype);
}

bool linear_supports(const OpCall& c, std::string* why) {
  const LinearOpParams& p = c.params<LinearOpParams>();
  return gemm_supports(p.m, p.n, p.k, why);
}

}  // namespace

SECVIT_KERNEL(linear, SV_CUDA_DEVICE, kF32 | kF16 | kBF16, linear_cuda, linear_supports,
              (1u << kLinX) | (1u << kLinAdd) | (1u << kLinResidual));
SECVIT_KERNEL(linearEpilogueBackward, SV_CUDA_DEVICE, kF32 | kF16 | kBF16, linear_backward_cuda, nullptr, 1u << kLbDy);

}  // namespace SV_CUDA_NS
}  // namespace secvit
