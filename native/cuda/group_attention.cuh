// The fused fp32 attention kernel shared by SEC, window and global attention: one kernel, one
// tiling, one precision, so the three differ only in how tokens are grouped (a Map).
//
// Layout: q, k, v, out [BH, L, D] fp32 row-major. A Map says, for (head, group, slot), which
// token sits in the slot (-1: padding, never a key, never written) and, when kMasked, a region
// label (keys of another label are masked out: Swin's shifted-window mask).
// Algorithm: grid (group, query tile, head). Each query is owned by G = DMAX/32 lanes (1 for
// D <= 32) that hold its q slice and an fp32 accumulator in registers. The block walks the
// group's keys in tiles of KT: gathers K and V rows through the Map into shared memory (the
// SEC gather), then every query computes its scores against the tile (shared-memory
// broadcast), with an online softmax (running max and sum, rescaling the accumulator), so
// groups of any size work (C = 1 at L = 3136 included). The output row is written straight to
// out[token] (the inverse-permutation scatter), so q, k, v are read once per query tile and
// out written once.
// Cost: 4 * n_q * n_k * D flops per group; bytes 4*D*(n_q + 2 n_k * query_tiles + n_q).
// DMAX in {16, 32, 64, 128, 256} with runtime d <= DMAX (channels beyond d are zero), so any
// head dim up to 256 runs.
#pragma once

#include <cmath>
#include <type_traits>

#include "cuda_compat.h"

namespace secvit {
namespace SV_CUDA_NS {

constexpr int kGroupThreads = 128;

// Calls go(std::integral_constant<int, DMAX>{}) for the smallest DMAX in {16, 32, 64, ...} with
// d <= DMAX, or for kMax when d is larger (each kernel family's supports() keeps d <= kMax):
// the attention kernels' one head-dim dispatch.
template <int kDmax, int kMax, class F>
void by_head_dim_from(int64_t d, F& go) {
  if constexpr (kDmax >= kMax) {
    go(std::integral_constant<int, kMax>{});
  } else {
    if (d <= kDmax) go(std::integral_constant<int, kDmax>{});
    else by_head_dim_from<kDmax * 2, kMax>(d, go);
  }
}
template <int kMax, class F>
void by_head_dim(int64_t d, F&& go) {
  by_head_dim_from<16, kMax>(d, go);
}

// A Map with `kBiased` adds bias_at(bh, query slot, key slot) to each logit (window
// attention's relative position bias) and takes add_dbias(bh, query slot, key slot, dS) in the
// backward; the other Maps compile it away.
template <class M, class = void>
struct MapHasBias : std::false_type {};
template <class M>
struct MapHasBias<M, std::void_t<decltype(M::kBiased)>> : std::bool_constant<M::kBiased> {};

struct GroupTensors {
  const float* q;
  const float* k;
  const float* v;
  float* out;
  int l, d;
  float* lse;  // [BH, L] log-sum-exps (m + log lsum), or null
};

template <int DMAX>
struct GroupTiling {
  static constexpr int G = DMAX >= 32 ? DMAX / 32 : 1;  // lanes per query
  static constexpr int DPL = DMAX / G;                  // channels per lane
  static constexpr int QPB = kGroupThreads / G;         // queries per block
  static constexpr int KT = (4096 / DMAX) < 128 ? (4096 / DMAX) : 128;  // keys per tile
  static constexpr size_t smem_bytes = size_t(2) * KT * DMAX * sizeof(float) + KT * 2 * sizeof(int);
};

template <int DMAX, class Map>
__global__ void __launch_bounds__(kGroupThreads)
    group_attention_kernel(GroupTensors t, Map map) {
  using T = GroupTiling<DMAX>;
  SV_DYNAMIC_SHARED(float, smem);
  float* ks = smem;                    // [KT][DMAX]
  float* vs = ks + T::KT * DMAX;       // [KT][DMAX]
  int* tok = reinterpret_cast<int*>(vs + T::KT * DMAX);  // [KT] token of each key slot
  int* lab = tok + T::KT;                                // [KT] region label

  // Groups on x (up to 2^31-1 of them), query tiles on y, heads on z.
  const int bh = blockIdx.z, group = blockIdx.x;
  const int n = map.size(bh, group);
  const int gl = threadIdx.x % T::G;                     // lane within the query's lanes
  const int slot = blockIdx.y * T::QPB + threadIdx.x / T::G;
  const int qtok = slot < n ? map.token(bh, group, slot) : -1;
  const int qlab = slot < n ? map.label(group, slot) : 0;
  const int64_t head = int64_t(bh) * t.l * t.d;

  float qr[T::DPL], acc[T::DPL];
  for (int c = 0; c < T::DPL; ++c) {
    const int ch = gl * T::DPL + c;
    qr[c] = (qtok >= 0 && ch < t.d) ? t.q[head + int64_t(qtok) * t.d + ch] : 0.0f;
    acc[c] = 0.0f;
  }
  float m = -INFINITY, lsum = 0.0f;
  constexpr float kLog2e = 1.4426950408889634f;

  for (int k0 = 0; k0 < n; k0 += T::KT) {
    const int nk = min(T::KT, n - k0);
    __syncthreads();  // the previous tile is no longer read
    for (int j = threadIdx.x; j < T::KT; j += kGroupThreads) {
      const int tk = j < nk ? map.token(bh, group, k0 + j) : -1;
      tok[j] = tk;
      lab[j] = j < nk ? map.label(group, k0 + j) : 0;
    }
    __syncthreads();
    for (int e = threadIdx.x; e < T::KT * DMAX; e += kGroupThreads) {
      const int j = e / DMAX, ch = e % DMAX;
      const int tk = tok[j];
      const bool ok = tk >= 0 && ch < t.d;
      ks[e] = ok ? t.k[head + int64_t(tk) * t.d + ch] : 0.0f;
      vs[e] = ok ? t.v[head + int64_t(tk) * t.d + ch] : 0.0f;
    }
    __syncthreads();
    for (int j = 0; j < nk; ++j) {
      const float* kr = ks + j * DMAX + gl * T::DPL;
      float s = 0.0f;
      for (int c = 0; c < T::DPL; ++c) s = fmaf(qr[c], kr[c], s);
      // Every lane shuffles (no divergence around the collective); validity is applied after.
      for (int off = T::G / 2; off > 0; off /= 2) s += __shfl_xor_sync(0xffffffffu, s, off);
      if constexpr (MapHasBias<Map>::value) {
        if (slot < n) s += map.bias_at(bh, slot, k0 + j);
      }
      const bool valid = tok[j] >= 0 && (!Map::kMasked || lab[j] == qlab);
      if (!valid) continue;
      const float* vr = vs + j * DMAX + gl * T::DPL;
      // Infinities and NaN as a max-subtracted softmax over the whole row gives them (the CPU
      // kernels and the float64 reference): a +inf maximum makes its own weight exp(inf - inf) =
      // NaN; a -inf logit weighs 0 unless every logit is -inf (then lsum stays 0: 0/0 = NaN);
      // a NaN logit is never > m, takes the second branch and poisons lsum through exp2f(NaN).
      if (s > m) {
        const float corr = exp2f((m - s) * kLog2e);  // 0 on the first key (m = -inf)
        const float self = s == INFINITY ? __int_as_float(0x7fc00000) : 1.0f;  // s > m: never -inf
        lsum = lsum * corr + self;
        for (int c = 0; c < T::DPL; ++c) acc[c] = fmaf(acc[c], corr, self * vr[c]);
        m = s;
      } else if (s != -INFINITY) {
        const float p = exp2f((s - m) * kLog2e);
        lsum += p;
        for (int c = 0; c < T::DPL; ++c) acc[c] = fmaf(p, vr[c], acc[c]);
      }
    }
  }
  if (qtok < 0) return;
  if (t.lse != nullptr && gl == 0) t.lse[int64_t(bh) * t.l + qtok] = m + logf(lsum);
  const float inv = 1.0f / lsum;
  for (int c = 0; c < T::DPL; ++c) {
    const int ch = gl * T::DPL + c;
    if (ch < t.d) t.out[head + int64_t(qtok) * t.d + ch] = acc[c] * inv;
  }
}

// Launches group_attention_kernel for the smallest DMAX >= d.
template <class Map>
void launch_group_attention(const GroupTensors& t, const Map& map, int groups, int max_group,
                            int bh, cudaStream_t stream, const char* what) {
  auto go = [&](auto dmax_tag) {
    constexpr int DMAX = decltype(dmax_tag)::value;
    using T = GroupTiling<DMAX>;
    auto* kernel = &group_attention_kernel<DMAX, Map>;
    const dim3 grid(unsigned(groups), unsigned((max_group + T::QPB - 1) / T::QPB), unsigned(bh));
    SV_LAUNCH(kernel, grid, dim3(kGroupThreads), T::smem_bytes, stream, t, map);
    SV_CUDA_CHECK_LAUNCH(what);
  };
  by_head_dim<256>(t.d, go);
}

}  // namespace SV_CUDA_NS
}  // namespace secvit
