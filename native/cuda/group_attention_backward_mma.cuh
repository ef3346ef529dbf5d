// Tensor-core (bf16 / fp16 operands, fp32 accumulation) twin of group_attention_backward.cuh:
// the same Maps, delta and log-sum-exps, FlashAttention-2's backward without atomics, for head
// dims D <= 64 (larger D: the fp32-arithmetic kernels; here every accumulator of a warp's 16 rows
// lives in registers, and at D = 128 the dK/dV kernel's four 16 x D sets would spill).
//
// Layout: q, k, v, dout, dq, dk, dv [BH, L, D] 16-bit raw bits (T = bf16 or fp16), row-major; lse
// and delta [BH, L] fp32. mma.sync m16n8k16 as in group_attention_mma.cuh: A fragments from
// registers or from accumulators (two 8-column accumulator blocks are one 16-wide A k-chunk),
// B fragments from rows staged in shared memory ([n][k], padded by 8 halves against bank
// conflicts); operands that are multiplied along the token dim are also staged transposed.
//   dK/dV: grid (group, key tile of 64, head); 4 warps x 16 keys. K and V of the warp's keys are
//          A fragments in registers. Per query tile of 32 (q, dO, lse, delta, labels staged):
//            S^T  = K Q^T, dP^T = V dO^T                   (16 x 32 each)
//            P^T  = exp(S^T + bias - lse_q) (0 where masked), dS^T = P^T (dP^T - delta_q)
//            (with the Map's bias, dS^T also goes to its gradient by fp32 atomics)
//            dV  += P^T dO, dK += dS^T Q                   (P^T, dS^T rounded to T)
//   dQ:    grid (group, query tile of 64, head); 4 warps x 16 queries. Q and dO are A fragments.
//          Per key tile of 32 (k, v staged, k also transposed):
//            S = Q K^T, dP = dO V^T, dS = exp(S - lse) (dP - delta), dQ += dS K
// Each output row has one writer (its warp), written once to its token, rounded to T.
// Cost: 4 n^2 D tensor-core flops per group in each kernel (8 n^2 D in all), + n^2 exponentials
// per kernel; bytes: each kernel reads the group's q, k, v, dO once per 64-row tile of the other.
#pragma once

#include <cmath>
#include <cstdint>

#include "cuda_compat.h"
#include "dtype_io.cuh"
#include "group_attention_backward.cuh"
#include "group_attention_mma.cuh"
#include "mma.cuh"

namespace secvit {
namespace SV_CUDA_NS {

constexpr int kBwdMmaRows = 16 * kMmaWarps;  // rows a block owns (keys in dK/dV, queries in dQ)
constexpr int kBwdMmaTile = 32;             // rows of the other side staged per step

template <int DMAX>
struct BwdMmaTiling {
  static constexpr int RS = DMAX + 8;            // [row][channel] strides, padded
  static constexpr int TS = kBwdMmaTile + 8;     // [channel][row] strides (transposed tiles)
  // dK/dV: own k, v [64][RS]; tile q, dO [32][RS]; q^T, dO^T [DMAX][TS]; tok, lab, lse, delta.
  static constexpr size_t kv_smem = sizeof(unsigned short) *
      (size_t(2) * kBwdMmaRows * RS + size_t(2) * kBwdMmaTile * RS + size_t(2) * DMAX * TS) +
      size_t(kBwdMmaTile) * (2 * sizeof(int) + 2 * sizeof(float)) + sizeof(int) * 2 * kBwdMmaRows;
  // dQ: own q, dO [64][RS]; tile k, v [32][RS]; k^T [DMAX][TS]; tok, lab.
  static constexpr size_t q_smem = sizeof(unsigned short) *
      (size_t(2) * kBwdMmaRows * RS + size_t(2) * kBwdMmaTile * RS + size_t(DMAX) * TS) +
      size_t(kBwdMmaTile) * 2 * sizeof(int) + sizeof(int) * 2 * kBwdMmaRows;
};

// Rows [slot0, slot0 + 64) of the group (tokens through the Map) into rows of a and b, zeros past
// the group and past D; their tokens and labels into tok/lab.
template <int DMAX, class Map>
__device__ __forceinline__ void stage_own_rows(const Map& map, int bh, int group, int n, int slot0, const unsigned short* x,
                                               const unsigned short* y, int64_t head, int d, unsigned short* a,
                                               unsigned short* b, int* tok, int* lab) {
  constexpr int RS = BwdMmaTiling<DMAX>::RS;
  for (int r = threadIdx.x; r < kBwdMmaRows; r += blockDim.x) {
    const int slot = slot0 + r;
    tok[r] = slot < n ? map.token(bh, group, slot) : -1;
    lab[r] = slot < n ? map.label(group, slot) : 0;
  }
  __syncthreads();
  SV_NO_UNROLL
  for (int e = threadIdx.x; e < kBwdMmaRows * DMAX; e += blockDim.x) {
    const int r = e / DMAX, ch = e % DMAX;
    const int tk = tok[r];
    const bool ok = tk >= 0 && ch < d;
    a[r * RS + ch] = ok ? x[head + int64_t(tk) * d + ch] : 0;
    b[r * RS + ch] = ok ? y[head + int64_t(tk) * d + ch] : 0;
  }
  __syncthreads();
}

// The A fragments of this warp's 16 rows of a staged [64][RS] array, over D in chunks of 16.
template <int DMAX>
__device__ __forceinline__ void load_a_frags(const unsigned short* rows, int warp, int g, int tq, uint32_t (*fa)[4]) {
  constexpr int RS = BwdMmaTiling<DMAX>::RS;
  const unsigned short* w = rows + (warp * 16) * RS;
  for (int kc = 0; kc < DMAX / 16; ++kc) {
    fa[kc][0] = load2(w + g * RS + kc * 16 + 2 * tq);
    fa[kc][1] = load2(w + (g + 8) * RS + kc * 16 + 2 * tq);
    fa[kc][2] = load2(w + g * RS + kc * 16 + 2 * tq + 8);
    fa[kc][3] = load2(w + (g + 8) * RS + kc * 16 + 2 * tq + 8);
  }
}

// acc[nb] = A . X^T over D for the 8-row n-blocks of a staged tile X [32][RS].
template <bool kBf16, int DMAX>
__device__ __forceinline__ void mma_rows(const uint32_t (*fa)[4], const unsigned short* x, int g, int tq, float (*acc)[4]) {
  constexpr int RS = BwdMmaTiling<DMAX>::RS;
  for (int nb = 0; nb < kBwdMmaTile / 8; ++nb) {
    acc[nb][0] = acc[nb][1] = acc[nb][2] = acc[nb][3] = 0.0f;
    const unsigned short* xr = x + (nb * 8 + g) * RS;
    for (int kc = 0; kc < DMAX / 16; ++kc) {
      const uint32_t b[2] = {load2(xr + kc * 16 + 2 * tq), load2(xr + kc * 16 + 2 * tq + 8)};
      mma16816<kBf16>(acc[nb], fa[kc], b);
    }
  }
}

// out[b] += P . Y for P [16 x 32] in accumulators (rounded to T) and Y^T staged as [DMAX][TS].
template <bool kBf16, int DMAX>
__device__ __forceinline__ void mma_acc(const float (*p)[4], const unsigned short* yt, int g, int tq, float (*out)[4]) {
  constexpr int TS = BwdMmaTiling<DMAX>::TS;
  for (int c = 0; c < kBwdMmaTile / 16; ++c) {
    const uint32_t pa[4] = {pack2<kBf16>(p[2 * c][0], p[2 * c][1]), pack2<kBf16>(p[2 * c][2], p[2 * c][3]),
                            pack2<kBf16>(p[2 * c + 1][0], p[2 * c + 1][1]), pack2<kBf16>(p[2 * c + 1][2], p[2 * c + 1][3])};
    for (int b = 0; b < DMAX / 8; ++b) {
      const unsigned short* yr = yt + (b * 8 + g) * TS + c * 16;
      const uint32_t yb[2] = {load2(yr + 2 * tq), load2(yr + 2 * tq + 8)};
      mma16816<kBf16>(out[b], pa, yb);
    }
  }
}

// This warp's rows (g and g + 8 of its 16) of a [DMAX]-wide accumulator set, rounded to T, to
// their tokens.
template <bool kBf16, int DMAX>
__device__ __forceinline__ void store_rows(const float (*acc)[4], const int* tok, int warp, int g, int tq, unsigned short* dst,
                                           int64_t head, int d) {
  for (int r = 0; r < 2; ++r) {
    const int tk = tok[warp * 16 + g + 8 * r];
    if (tk < 0) continue;
    unsigned short* row = dst + head + int64_t(tk) * d;
    for (int b = 0; b < DMAX / 8; ++b) {
      const int ch = b * 8 + 2 * tq;
      if (ch < d) row[ch] = float_to_half<kBf16>(acc[b][2 * r]);
      if (ch + 1 < d) row[ch + 1] = float_to_half<kBf16>(acc[b][2 * r + 1]);
    }
  }
}

template <bool kBf16, int DMAX, class Map>
__global__ void __launch_bounds__(kMmaWarps * 32) attn_bwd_dkdv_mma_kernel(GroupGrads t, Map map) {
  using Tl = BwdMmaTiling<DMAX>;
  constexpr int RS = Tl::RS, TS = Tl::TS, QT = kBwdMmaTile, NB = QT / 8, DB = DMAX / 8, KC = DMAX / 16;
  SV_DYNAMIC_SHARED(unsigned short, smem);
  unsigned short* kown = smem;                  // [64][RS]
  unsigned short* vown = kown + kBwdMmaRows * RS;
  unsigned short* qs = vown + kBwdMmaRows * RS;  // [QT][RS]
  unsigned short* gs = qs + QT * RS;             // [QT][RS]  dO
  unsigned short* qt = gs + QT * RS;             // [DMAX][TS]
  unsigned short* gt = qt + DMAX * TS;           // [DMAX][TS]
  int* tok = reinterpret_cast<int*>(gt + DMAX * TS);  // [QT]
  int* lab = tok + QT;
  float* ls = reinterpret_cast<float*>(lab + QT);
  float* dl = ls + QT;
  int* ktok = reinterpret_cast<int*>(dl + QT);  // [64]
  int* klab = ktok + kBwdMmaRows;

  const int bh = blockIdx.z, group = blockIdx.x;
  const int n = map.size(bh, group);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int g = lane >> 2, tq = lane & 3;
  const int64_t head = int64_t(bh) * t.l * t.d;
  const auto* q = static_cast<const unsigned short*>(t.q);
  const auto* k = static_cast<const unsigned short*>(t.k);
  const auto* v = static_cast<const unsigned short*>(t.v);
  const auto* dout = static_cast<const unsigned short*>(t.dout);

  stage_own_rows<DMAX>(map, bh, group, n, blockIdx.y * kBwdMmaRows, k, v, head, t.d, kown, vown, ktok, klab);
  uint32_t ka[KC][4], va[KC][4];
  load_a_frags<DMAX>(kown, warp, g, tq, ka);
  load_a_frags<DMAX>(vown, warp, g, tq, va);
  const int row_lab[2] = {klab[warp * 16 + g], klab[warp * 16 + g + 8]};

  float dk[DB][4], dv[DB][4];
  for (int b = 0; b < DB; ++b)
    for (int e = 0; e < 4; ++e) dk[b][e] = dv[b][e] = 0.0f;

  for (int q0 = 0; q0 < n; q0 += QT) {
    const int nq = min(QT, n - q0);
    __syncthreads();  // the previous tile is consumed
    for (int j = threadIdx.x; j < QT; j += blockDim.x) {
      const int tk = j < nq ? map.token(bh, group, q0 + j) : -1;
      tok[j] = tk;
      lab[j] = j < nq ? map.label(group, q0 + j) : 0;
      ls[j] = tk >= 0 ? t.lse[int64_t(bh) * t.l + tk] : 0.0f;
      dl[j] = tk >= 0 ? t.delta[int64_t(bh) * t.l + tk] : 0.0f;
    }
    __syncthreads();
    SV_NO_UNROLL
    for (int e = threadIdx.x; e < QT * DMAX; e += blockDim.x) {
      const int j = e / DMAX, ch = e % DMAX;
      const int tk = tok[j];
      const bool ok = tk >= 0 && ch < t.d;
      const unsigned short qv = ok ? q[head + int64_t(tk) * t.d + ch] : 0;
      const unsigned short gv = ok ? dout[head + int64_t(tk) * t.d + ch] : 0;
      qs[j * RS + ch] = qv;
      gs[j * RS + ch] = gv;
      qt[ch * TS + j] = qv;
      gt[ch * TS + j] = gv;
    }
    __syncthreads();

    float s[NB][4], dp[NB][4];
    mma_rows<kBf16, DMAX>(ka, qs, g, tq, s);   // S^T = K Q^T
    mma_rows<kBf16, DMAX>(va, gs, g, tq, dp);  // dP^T = V dO^T
    // Element e: key row g + 8 (e >> 1), query column nb * 8 + 2 tq + (e & 1).
    for (int nb = 0; nb < NB; ++nb)
      for (int e = 0; e < 4; ++e) {
        const int col = nb * 8 + 2 * tq + (e & 1);
        const bool valid = tok[col] >= 0 && (!Map::kMasked || lab[col] == row_lab[e >> 1]);
        const int kslot = blockIdx.y * kBwdMmaRows + warp * 16 + g + 8 * (e >> 1);
        if constexpr (MapHasBias<Map>::value) {
          if (valid && kslot < n) s[nb][e] += map.bias_at(bh, q0 + col, kslot);
        }
        const float p = valid ? expf(s[nb][e] - ls[col]) : 0.0f;
        s[nb][e] = p;
        dp[nb][e] = p * (dp[nb][e] - dl[col]);
        if constexpr (MapHasBias<Map>::value) {
          if (valid && ktok[warp * 16 + g + 8 * (e >> 1)] >= 0) map.add_dbias(bh, q0 + col, kslot, dp[nb][e]);
        }
      }
    mma_acc<kBf16, DMAX>(s, gt, g, tq, dv);   // dV += P^T dO
    mma_acc<kBf16, DMAX>(dp, qt, g, tq, dk);  // dK += dS^T Q
  }
  store_rows<kBf16, DMAX>(dk, ktok, warp, g, tq, static_cast<unsigned short*>(t.dk), head, t.d);
  store_rows<kBf16, DMAX>(dv, ktok, warp, g, tq, static_cast<unsigned short*>(t.dv), head, t.d);
}

template <bool kBf16, int DMAX, class Map>
__global__ void __launch_bounds__(kMmaWarps * 32) attn_bwd_dq_mma_kernel(GroupGrads t, Map map) {
  using Tl = BwdMmaTiling<DMAX>;
  constexpr int RS = Tl::RS, TS = Tl::TS, KT = kBwdMmaTile, NB = KT / 8, DB = DMAX / 8, KC = DMAX / 16;
  SV_DYNAMIC_SHARED(unsigned short, smem);
  unsigned short* qown = smem;                  // [64][RS]
  unsigned short* gown = qown + kBwdMmaRows * RS;
  unsigned short* ks = gown + kBwdMmaRows * RS;  // [KT][RS]
  unsigned short* vs = ks + KT * RS;             // [KT][RS]
  unsigned short* kt = vs + KT * RS;             // [DMAX][TS]
  int* tok = reinterpret_cast<int*>(kt + DMAX * TS);  // [KT]
  int* lab = tok + KT;
  int* qtok = lab + KT;  // [64]
  int* qlab = qtok + kBwdMmaRows;

  const int bh = blockIdx.z, group = blockIdx.x;
  const int n = map.size(bh, group);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int g = lane >> 2, tq = lane & 3;
  const int64_t head = int64_t(bh) * t.l * t.d;
  const auto* k = static_cast<const unsigned short*>(t.k);
  const auto* v = static_cast<const unsigned short*>(t.v);

  stage_own_rows<DMAX>(map, bh, group, n, blockIdx.y * kBwdMmaRows, static_cast<const unsigned short*>(t.q),
                       static_cast<const unsigned short*>(t.dout), head, t.d, qown, gown, qtok, qlab);
  uint32_t qa[KC][4], ga[KC][4];
  load_a_frags<DMAX>(qown, warp, g, tq, qa);
  load_a_frags<DMAX>(gown, warp, g, tq, ga);
  float lse[2], delta[2];
  int row_lab[2];
  for (int r = 0; r < 2; ++r) {
    const int tk = qtok[warp * 16 + g + 8 * r];
    lse[r] = tk >= 0 ? t.lse[int64_t(bh) * t.l + tk] : 0.0f;
    delta[r] = tk >= 0 ? t.delta[int64_t(bh) * t.l + tk] : 0.0f;
    row_lab[r] = qlab[warp * 16 + g + 8 * r];
  }

  float dq[DB][4];
  for (int b = 0; b < DB; ++b) dq[b][0] = dq[b][1] = dq[b][2] = dq[b][3] = 0.0f;

  for (int k0 = 0; k0 < n; k0 += KT) {
    const int nk = min(KT, n - k0);
    __syncthreads();
    for (int j = threadIdx.x; j < KT; j += blockDim.x) {
      tok[j] = j < nk ? map.token(bh, group, k0 + j) : -1;
      lab[j] = j < nk ? map.label(group, k0 + j) : 0;
    }
    __syncthreads();
    SV_NO_UNROLL
    for (int e = threadIdx.x; e < KT * DMAX; e += blockDim.x) {
      const int j = e / DMAX, ch = e % DMAX;
      const int tk = tok[j];
      const bool ok = tk >= 0 && ch < t.d;
      const unsigned short kv = ok ? k[head + int64_t(tk) * t.d + ch] : 0;
      ks[j * RS + ch] = kv;
      kt[ch * TS + j] = kv;
      vs[j * RS + ch] = ok ? v[head + int64_t(tk) * t.d + ch] : 0;
    }
    __syncthreads();

    float s[NB][4], dp[NB][4];
    mma_rows<kBf16, DMAX>(qa, ks, g, tq, s);   // S = Q K^T
    mma_rows<kBf16, DMAX>(ga, vs, g, tq, dp);  // dP = dO V^T
    for (int nb = 0; nb < NB; ++nb)
      for (int e = 0; e < 4; ++e) {
        const int col = nb * 8 + 2 * tq + (e & 1);
        const int r = e >> 1;
        const bool valid = tok[col] >= 0 && (!Map::kMasked || lab[col] == row_lab[r]);
        if constexpr (MapHasBias<Map>::value) {
          const int qslot = blockIdx.y * kBwdMmaRows + warp * 16 + g + 8 * r;
          if (valid && qslot < n) s[nb][e] += map.bias_at(bh, qslot, k0 + col);
        }
        dp[nb][e] = valid ? expf(s[nb][e] - lse[r]) * (dp[nb][e] - delta[r]) : 0.0f;
      }
    mma_acc<kBf16, DMAX>(dp, kt, g, tq, dq);  // dQ += dS K
  }
  store_rows<kBf16, DMAX>(dq, qtok, warp, g, tq, static_cast<unsigned short*>(t.dq), head, t.d);
}

// Both tensor-core kernels for the smallest DMAX in {16, 32, 64} >= d, after delta (D <= 64).
template <class Map>
void launch_group_attention_backward_mma(bool bf16, const GroupGrads& t, const void* out, float* delta, const Map& map,
                                         int groups, int max_group, int bh, cudaStream_t stream, const char* what) {
  const int64_t rows = int64_t(bh) * t.l;
  if (rows == 0) return;
  SV_LAUNCH(attn_delta_kernel, dim3(unsigned((rows + 7) / 8)), dim3(256), 0, stream, out, t.dout, delta, rows, t.d, t.dtype);
  SV_CUDA_CHECK_LAUNCH("attn_delta_kernel");
  auto go = [&](auto bf16_tag, auto dmax_tag) {
    constexpr bool kBf16 = decltype(bf16_tag)::value;
    constexpr int DMAX = decltype(dmax_tag)::value;
    using Tl = BwdMmaTiling<DMAX>;
    const dim3 grid(unsigned(groups), unsigned((max_group + kBwdMmaRows - 1) / kBwdMmaRows), unsigned(bh));
    auto* kv = &attn_bwd_dkdv_mma_kernel<kBf16, DMAX, Map>;
    SV_LAUNCH(kv, grid, dim3(kMmaWarps * 32), Tl::kv_smem, stream, t, map);
    SV_CUDA_CHECK_LAUNCH(what);
    auto* kq = &attn_bwd_dq_mma_kernel<kBf16, DMAX, Map>;
    SV_LAUNCH(kq, grid, dim3(kMmaWarps * 32), Tl::q_smem, stream, t, map);
    SV_CUDA_CHECK_LAUNCH(what);
  };
  auto by_d = [&](auto bf16_tag) { by_head_dim<64>(t.d, [&](auto dmax_tag) { go(bf16_tag, dmax_tag); }); };
  if (bf16) by_d(std::true_type{});
  else by_d(std::false_type{});
}

}  // namespace SV_CUDA_NS
}  // namespace secvit
