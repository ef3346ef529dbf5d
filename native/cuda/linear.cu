// CUDA kernel of `linear` (native/ops/linear.h): one launch of the fused GEMM (gemm.cuh) with the
// weight as a [N, K] operand, after the LayerNorm statistics when the prologue has a norm.
#include "gemm.cuh"

#include "../core/op.h"
#include "../ops/linear.h"
#include "cuda_backend.h"
#include "device_buffer.cuh"

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
  DeviceBuffer stats(lp.layer_norm ? size_t(lp.m) * 2 * sizeof(float) : 0);
  launch_gemm(p, lp.ln_eps, lp.layer_norm ? stats.as<float>() : nullptr, stream());
}

bool linear_supports(const OpCall& c, std::string* why) {
  const LinearOpParams& p = c.params<LinearOpParams>();
  return gemm_supports(p.m, p.n, p.k, why);
}

}  // namespace

SECVIT_KERNEL(linear, SV_CUDA_DEVICE, kF32 | kF16 | kBF16, linear_cuda, linear_supports,
              (1u << kLinX) | (1u << kLinAdd) | (1u << kLinResidual));

}  // namespace SV_CUDA_NS
}  // namespace secvit
