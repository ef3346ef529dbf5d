// CPU kernel of `linear` (native/ops/linear.h): one call of the fused GEMM (gemm.h) with the
// weight as a [N, K] operand and the op's prologue and epilogue.
#include "core/op.h"
#include "gemm.h"
#include "ops/linear.h"

namespace secvit::cpu {
namespace {

void linear_kernel(const KernelArgs& a) {
  const LinearOpParams& p = a.p<LinearOpParams>();
  GemmArgs g;
  g.m = p.m;
  g.n = p.n;
  g.k = p.k;
  g.a = RowMap{a.in[kLinX].ptr<float>(), p.x_group_rows, p.x_group_stride, p.x_row_stride, 1};
  g.b = a.in[kLinWeight].ptr<float>();
  g.b_n_stride = p.k;
  g.b_k_stride = 1;
  g.c = RowMap{a.out[0].ptr<float>(), 0, 0, p.n, 1};
  if (a.in[kLinAdd].present())
    g.add = RowMap{a.in[kLinAdd].ptr<float>(), p.add_group_rows, p.add_group_stride, p.add_row_stride, 1};
  g.layer_norm = p.layer_norm;
  g.ln_eps = p.ln_eps;
  g.ln_weight = a.in[kLinLnWeight].ptr<float>();
  g.ln_bias = a.in[kLinLnBias].ptr<float>();
  g.bias = a.in[kLinBias].ptr<float>();
  g.act = Act(p.act);
  if (p.rope_heads > 0)
    g.rope = GemmRope{a.in[kLinRopeAngle].ptr<float>(), p.rope_heads, p.rope_d, p.rope_height, p.rope_width, p.k_scale};
  g.scale = a.in[kLinScale].ptr<float>();
  if (a.in[kLinResidual].present())
    g.residual = RowMap{a.in[kLinResidual].ptr<float>(), p.res_group_rows, p.res_group_stride,
                        p.res_row_stride, p.res_col_stride};
  gemm_f32(g);
}

}  // namespace

// x, add and residual are addressed through their strides (the rules copy what does not fit).
SECVIT_KERNEL(linear, Device::Cpu, kF32, linear_kernel, nullptr,
              (1u << kLinX) | (1u << kLinAdd) | (1u << kLinResidual));

}  // namespace secvit::cpu
