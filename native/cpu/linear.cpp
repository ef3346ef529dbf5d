// CPU kernels of `linear` (native/ops/linear.h): one call of the fused GEMM (gemm.h) with the
// weight as a [N, K] operand and the op's prologue and epilogue; and of its epilogue's gradient,
// linearEpilogueBackward: rows in parallel blocks, each row's dz in one pass (the rotation
// transposed, the activation's derivative by the SIMD path of the epilogue's activation), the
// column sums (dbias, dscale) in double per block, added up at the end.
// Cost (backward): reads dy and pre once, writes dz once; ~20 flops per element with GELU.
#include <algorithm>
#include <vector>

#include "core/cpu_features.h"
#include "core/op.h"
#include "core/thread_pool.h"
#include "gemm.h"
#include "ops/linear.h"
#include "rope2d.h"
#include "scratch.h"

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
  if (p.save_pre) g.pre = RowMap{a.out[1].ptr<float>(), 0, 0, p.n, 1};
  if (a.in[kLinResidual].present())
    g.residual = RowMap{a.in[kLinResidual].ptr<float>(), p.res_group_rows, p.res_group_stride,
                        p.res_row_stride, p.res_col_stride};
  gemm_f32(g);
}

void linear_backward_kernel(const KernelArgs& a) {
  const LinearBackwardParams& p = a.p<LinearBackwardParams>();
  const int64_t m = p.m, n = p.n;
  const RowMap dy{a.in[kLbDy].ptr<float>(), p.dy_group_rows, p.dy_group_stride, p.dy_row_stride, 1};
  const float* pre = a.in[kLbPre].ptr<float>();
  const float* scale = a.in[kLbScale].ptr<float>();
  float* dz = a.out[0].ptr<float>();
  float* dbias = p.has_bias ? a.out[1].ptr<float>() : nullptr;
  float* dscale = p.need_scale ? a.out[2].ptr<float>() : nullptr;
  const bool avx2 = cpu_simd() == CpuSimd::Avx2Fma;
  const Act act = Act(p.act);
  std::vector<float> cs;
  const int64_t e = p.rope_heads * p.rope_d, q4 = p.rope_d / 4;
  if (p.rope_heads > 0) {
    cs.resize(size_t((p.rope_height + p.rope_width) * q4 * 2));
    rope_table(a.in[kLbRopeAngle].ptr<float>(), p.rope_d, p.rope_height, p.rope_width, cs.data());
  }
  ThreadPool& pool = ThreadPool::instance();
  const int64_t blocks = std::max<int64_t>(1, std::min<int64_t>(m, int64_t(pool.threads()) * 4));
  const bool sums = dbias != nullptr || dscale != nullptr;
  std::vector<double> partial(sums ? size_t(blocks * 2 * n) : 0, 0.0);
  pool.parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
    thread_local ScratchVec<float> t_row;
    float* h = t_row.get(size_t(2 * n));
    float* g = h + n;
    for (int64_t b = b0; b < b1; ++b) {
      double* pb = sums ? partial.data() + b * 2 * n : nullptr;
      for (int64_t r = b * m / blocks; r < (b + 1) * m / blocks; ++r) {
        const float* dyr = dy.data + dy.row_offset(r);
        const float* pr = pre != nullptr ? pre + r * n : nullptr;
        const int64_t l = p.rope_heads > 0 ? r % (p.rope_height * p.rope_width) : 0;
        const int64_t ty = p.rope_heads > 0 ? l / p.rope_width : 0, tx = p.rope_heads > 0 ? l % p.rope_width : 0;
        // dscale: sum of dy * rope(act(pre)).
        if (dscale != nullptr) {
          std::copy(pr, pr + n, h);
          if (avx2) act_inplace_avx2(act, h, n);
          else act_inplace_scalar(act, h, n);
          for (int64_t j = 0; j + 1 < 2 * e && j < n; j += 2) {
            const float* c = rope_pair(cs.data(), q4, p.rope_height, ty, tx, (j % p.rope_d) / 2);
            const float k = j >= e ? p.k_scale : 1.0f;
            const float u = h[j], v = h[j + 1];
            h[j] = k * (u * c[0] - v * c[1]);
            h[j + 1] = k * (v * c[0] + u * c[1]);
          }
          for (int64_t j = 0; j < n; ++j) pb[n + j] += double(dyr[j]) * double(h[j]);
        }
        // g = rope^T(scale * dy), then dz = act'(pre) * g.
        if (scale != nullptr)
          for (int64_t j = 0; j < n; ++j) g[j] = dyr[j] * scale[j];
        else
          std::copy(dyr, dyr + n, g);
        for (int64_t j = 0; j + 1 < 2 * e && j < n; j += 2) {
          const float* c = rope_pair(cs.data(), q4, p.rope_height, ty, tx, (j % p.rope_d) / 2);
          const float k = j >= e ? p.k_scale : 1.0f;
          const float du = k * g[j], dv = k * g[j + 1];
          g[j] = du * c[0] + dv * c[1];
          g[j + 1] = dv * c[0] - du * c[1];
        }
        float* out = dz + r * n;
        if (act != Act::None) {
          if (avx2) act_grad_avx2(act, g, pr, out, n);
          else act_grad_scalar(act, g, pr, out, n);
        } else {
          std::copy(g, g + n, out);
        }
        if (dbias != nullptr)
          for (int64_t j = 0; j < n; ++j) pb[j] += double(out[j]);
      }
    }
  });
  for (int64_t j = 0; j < n; ++j) {
    double sb = 0.0, ss = 0.0;
    for (int64_t b = 0; b < blocks; ++b) {
      sb += partial.empty() ? 0.0 : partial[size_t(b * 2 * n + j)];
      ss += partial.empty() ? 0.0 : partial[size_t(b * 2 * n + n + j)];
    }
    if (dbias != nullptr) dbias[j] = float(sb);
    if (dscale != nullptr) dscale[j] = float(ss);
  }
}

}  // namespace

SECVIT_KERNEL(linearEpilogueBackward, Device::Cpu, kF32, linear_backward_kernel, nullptr, 1u << kLbDy);

// x, add and residual are addressed through their strides (the rules copy what does not fit).
SECVIT_KERNEL(linear, Device::Cpu, kF32, linear_kernel, nullptr,
              (1u << kLinX) | (1u << kLinAdd) | (1u << kLinResidual));

}  // namespace secvit::cpu
