// Tensor-core (bf16 / fp16 in, fp32 accumulate) twin of group_attention.cuh: same Maps, same
// grouping, same online softmax; the products run on mma.sync m16n8k16 (sv_mma_* in mma.cuh,
// emulated with the hardware fragment layout under cuda-emu).
//
// Layout: q, k, v, out [BH, L, D] 16-bit (T = __nv_bfloat16 or __half), row-major; D <= 128.
// Algorithm (FlashAttention-2 style): grid (group, query tile of 64, head); 4 warps, each owns
// 16 queries. Per key tile of KT keys (gathered through the Map into shared memory; V stored
// transposed so its mma fragments are 32-bit loads):
//   S[16 x KT] = Q K^T          mma over D in chunks of 16, KT/8 n-blocks
//   + the Map's logit bias (Swin's relative position bias, fp32), mask (padding, Swin regions),
//   online softmax per row: rows g and g+8 of the fragment, the
//   row max and sum reduced over the 4 lanes of a quad with shuffles
//   O[16 x D] += P V            the S accumulators of two n-blocks are exactly the A fragment
//                               of one k-chunk of P (converted to T), so P never leaves registers
// Output rows O / l are written as T to out[token] (the scatter).
// Cost: 4 * n_q * n_k * D flops per group on tensor cores; bytes 2*D*(n_q + 2 n_k + n_q).
#pragma once

#include <cmath>
#include <cstdint>

#include "cuda_compat.h"
#include "dtype_io.cuh"
#include "group_attention.cuh"
#include "mma.cuh"

namespace secvit {
namespace SV_CUDA_NS {

constexpr int kMmaWarps = 4;
constexpr int kMmaQueries = 16 * kMmaWarps;

struct GroupTensors16 {
  const unsigned short* q;  // raw 16-bit values
  const unsigned short* k;
  const unsigned short* v;
  unsigned short* out;
  int l, d;
  float* lse;  // [BH, L] log-sum-exps (m + log lsum), or null
};

template <int DMAX>
struct MmaTiling {
  static constexpr int KT = DMAX <= 64 ? 64 : 32;  // keys per tile
  static constexpr int QS = DMAX + 8;  // row strides padded by 8 halves against bank conflicts
  static constexpr int VS = KT + 8;
  static constexpr size_t smem_bytes =
      sizeof(unsigned short) * (size_t(kMmaQueries) * QS + size_t(KT) * QS + size_t(DMAX) * VS) +
      sizeof(int) * (2 * KT + 2 * kMmaQueries);
};

template <bool kBf16>
__device__ __forceinline__ uint32_t pack2(float lo, float hi) {
  return uint32_t(float_to_half<kBf16>(lo)) | (uint32_t(float_to_half<kBf16>(hi)) << 16);
}

template <bool kBf16>
__device__ __forceinline__ void mma16816(float d[4], const uint32_t a[4], const uint32_t b[2]) {
  if constexpr (kBf16) sv_mma_m16n8k16_bf16(d, a, b, d);
  else sv_mma_m16n8k16_f16(d, a, b, d);
}

template <bool kBf16, int DMAX, class Map>
__global__ void __launch_bounds__(kMmaWarps * 32)
    group_attention_mma_kernel(GroupTensors16 t, Map map) {
  using T = MmaTiling<DMAX>;
  constexpr int KT = T::KT, QS = T::QS, VS = T::VS, NB = KT / 8, DB = DMAX / 8, KC = DMAX / 16;
  SV_DYNAMIC_SHARED(unsigned short, smem);
  unsigned short* qs = smem;                   // [64][QS]
  unsigned short* ks = qs + kMmaQueries * QS;  // [KT][QS]
  unsigned short* vt = ks + KT * QS;           // [DMAX][VS]  (transposed)
  int* tok = reinterpret_cast<int*>(vt + DMAX * VS);  // [KT]
  int* lab = tok + KT;                                 // [KT]
  int* qtok = lab + KT;                                // [64]
  int* qlab = qtok + kMmaQueries;                      // [64]

  const int bh = blockIdx.z, group = blockIdx.x;  // groups on x, query tiles on y
  const int n = map.size(bh, group);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int g = lane >> 2, tq = lane & 3;
  const int64_t head = int64_t(bh) * t.l * t.d;
  const int q0 = blockIdx.y * kMmaQueries;

  for (int r = threadIdx.x; r < kMmaQueries; r += blockDim.x) {
    const int slot = q0 + r;
    qtok[r] = slot < n ? map.token(bh, group, slot) : -1;
    qlab[r] = slot < n ? map.label(group, slot) : 0;
  }
  __syncthreads();
  for (int e = threadIdx.x; e < kMmaQueries * DMAX; e += blockDim.x) {
    const int r = e / DMAX, ch = e % DMAX;
    const int tk = qtok[r];
    qs[r * QS + ch] = (tk >= 0 && ch < t.d) ? t.q[head + int64_t(tk) * t.d + ch] : 0;
  }
  __syncthreads();

  // This warp's Q fragments stay in registers for the whole group.
  uint32_t qa[KC][4];
  const unsigned short* qw = qs + (warp * 16) * QS;
  for (int kc = 0; kc < KC; ++kc) {
    qa[kc][0] = load2(qw + g * QS + kc * 16 + 2 * tq);
    qa[kc][1] = load2(qw + (g + 8) * QS + kc * 16 + 2 * tq);
    qa[kc][2] = load2(qw + g * QS + kc * 16 + 2 * tq + 8);
    qa[kc][3] = load2(qw + (g + 8) * QS + kc * 16 + 2 * tq + 8);
  }
  const int row_lab[2] = {qlab[warp * 16 + g], qlab[warp * 16 + g + 8]};

  float o[DB][4];
  for (int b = 0; b < DB; ++b) o[b][0] = o[b][1] = o[b][2] = o[b][3] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY}, lsum[2] = {0.0f, 0.0f};
  constexpr float kLog2e = 1.4426950408889634f;

  for (int k0 = 0; k0 < n; k0 += KT) {
    const int nk = min(KT, n - k0);
    __syncthreads();  // previous tile fully consumed
    for (int j = threadIdx.x; j < KT; j += blockDim.x) {
      tok[j] = j < nk ? map.token(bh, group, k0 + j) : -1;
      lab[j] = j < nk ? map.label(group, k0 + j) : 0;
    }
    __syncthreads();
    for (int e = threadIdx.x; e < KT * DMAX; e += blockDim.x) {
      const int j = e / DMAX, ch = e % DMAX;
      const int tk = tok[j];
      const bool ok = tk >= 0 && ch < t.d;
      ks[j * QS + ch] = ok ? t.k[head + int64_t(tk) * t.d + ch] : 0;
      vt[ch * VS + j] = ok ? t.v[head + int64_t(tk) * t.d + ch] : 0;
    }
    __syncthreads();

    float s[NB][4];
    for (int nb = 0; nb < NB; ++nb) {
      s[nb][0] = s[nb][1] = s[nb][2] = s[nb][3] = 0.0f;
      const unsigned short* kr = ks + (nb * 8 + g) * QS;
      for (int kc = 0; kc < KC; ++kc) {
        const uint32_t b[2] = {load2(kr + kc * 16 + 2 * tq), load2(kr + kc * 16 + 2 * tq + 8)};
        mma16816<kBf16>(s[nb], qa[kc], b);
      }
    }
    // Mask and row maxima (element e: row g + 8*(e>>1), key column nb*8 + 2*tq + (e&1)).
    float mx[2] = {m[0], m[1]};
    for (int nb = 0; nb < NB; ++nb) {
      for (int e = 0; e < 4; ++e) {
        const int col = nb * 8 + 2 * tq + (e & 1);
        const int r = e >> 1;
        const bool valid = tok[col] >= 0 && (!Map::kMasked || lab[col] == row_lab[r]);
        if constexpr (MapHasBias<Map>::value) {
          const int qslot = q0 + warp * 16 + g + 8 * r;
          if (valid && qslot < n) s[nb][e] += map.bias_at(bh, qslot, k0 + col);
        }
        s[nb][e] = valid ? s[nb][e] : -INFINITY;
        mx[r] = fmaxf(mx[r], s[nb][e]);
      }
    }
    float alpha[2], rs[2] = {0.0f, 0.0f};
    for (int r = 0; r < 2; ++r) {
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
      alpha[r] = mx[r] == -INFINITY ? 1.0f : exp2f((m[r] - mx[r]) * kLog2e);
    }
    for (int nb = 0; nb < NB; ++nb) {
      for (int e = 0; e < 4; ++e) {
        const int r = e >> 1;
        const float p = mx[r] == -INFINITY ? 0.0f : exp2f((s[nb][e] - mx[r]) * kLog2e);
        s[nb][e] = p;
        rs[r] += p;
      }
    }
    for (int r = 0; r < 2; ++r) {
      rs[r] += __shfl_xor_sync(0xffffffffu, rs[r], 1);
      rs[r] += __shfl_xor_sync(0xffffffffu, rs[r], 2);
      lsum[r] = lsum[r] * alpha[r] + rs[r];
      m[r] = mx[r];
    }
    for (int b = 0; b < DB; ++b) {
      o[b][0] *= alpha[0];
      o[b][1] *= alpha[0];
      o[b][2] *= alpha[1];
      o[b][3] *= alpha[1];
    }
    // O += P V: n-blocks 2c and 2c+1 of S form the A fragment of key chunk c.
    for (int c = 0; c < KT / 16; ++c) {
      const uint32_t pa[4] = {pack2<kBf16>(s[2 * c][0], s[2 * c][1]),
                              pack2<kBf16>(s[2 * c][2], s[2 * c][3]),
                              pack2<kBf16>(s[2 * c + 1][0], s[2 * c + 1][1]),
                              pack2<kBf16>(s[2 * c + 1][2], s[2 * c + 1][3])};
      for (int b = 0; b < DB; ++b) {
        const unsigned short* vr = vt + (b * 8 + g) * VS + c * 16;
        const uint32_t vb[2] = {load2(vr + 2 * tq), load2(vr + 2 * tq + 8)};
        mma16816<kBf16>(o[b], pa, vb);
      }
    }
  }

  for (int r = 0; r < 2; ++r) {
    const int tk = qtok[warp * 16 + g + 8 * r];
    if (tk < 0) continue;
    if (t.lse != nullptr && tq == 0) t.lse[int64_t(bh) * t.l + tk] = m[r] + logf(lsum[r]);
    const float inv = 1.0f / lsum[r];
    unsigned short* dst = t.out + head + int64_t(tk) * t.d;
    for (int b = 0; b < DB; ++b) {
      const int ch = b * 8 + 2 * tq;
      if (ch < t.d) dst[ch] = float_to_half<kBf16>(o[b][2 * r] * inv);
      if (ch + 1 < t.d) dst[ch + 1] = float_to_half<kBf16>(o[b][2 * r + 1] * inv);
    }
  }
}

// Launches the tensor-core kernel for the smallest DMAX in {16, 32, 64, 128} >= d.
template <class Map>
void launch_group_attention_mma(bool bf16, const GroupTensors16& t, const Map& map, int groups,
                                int max_group, int bh, cudaStream_t stream, const char* what) {
  auto go = [&](auto bf16_tag, auto dmax_tag) {
    constexpr bool kBf16 = decltype(bf16_tag)::value;
    constexpr int DMAX = decltype(dmax_tag)::value;
    auto* kernel = &group_attention_mma_kernel<kBf16, DMAX, Map>;
    const dim3 grid(unsigned(groups), unsigned((max_group + kMmaQueries - 1) / kMmaQueries),
                    unsigned(bh));
    SV_LAUNCH(kernel, grid, dim3(kMmaWarps * 32), MmaTiling<DMAX>::smem_bytes, stream, t, map);
    SV_CUDA_CHECK_LAUNCH(what);
  };
  auto by_d = [&](auto bf16_tag) { by_head_dim<128>(t.d, [&](auto dmax_tag) { go(bf16_tag, dmax_tag); }); };
  if (bf16) by_d(std::true_type{});
  else by_d(std::false_type{});
}

}  // namespace SV_CUDA_NS
}  // namespace secvit
