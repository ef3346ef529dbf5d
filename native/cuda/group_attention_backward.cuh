// The gradient of the grouped attention (group_attention.cuh's forward), shared by SEC, window and
// global attention through the same Maps: FlashAttention-2's backward without atomics.
//
// Layout: q, k, v, out, dout, dq, dk, dv [BH, L, D] of one dtype (fp32, bf16 or fp16; fp32
// arithmetic), lse and delta [BH, L] fp32 (delta_i = <dO_i, O_i>, from attn_delta_kernel).
// Two kernels, each recomputing P = exp(q k - lse) from the forward's log-sum-exp:
//   dK/dV: grid (group, key tile, head); a key is owned by G = DMAX/32 lanes holding its k and v
//          slices and its dk, dv accumulators; the block walks the group's queries in tiles
//          (q, dO, lse, delta, label staged in shared memory through the Map):
//          p = exp(s - lse), dv += p dO, dp = <dO, v>, ds = p (dp - delta), dk += ds q.
//   dQ:    grid (group, query tile, head); a query holds q, dO, lse, delta and dq; the block
//          walks the group's keys in tiles (k, v staged): dq += p (<dO, v> - delta) k.
// Each output row has one writer (its owner), written once to its token.
// Cost: 4 n^2 D flops per group in each kernel (8 n^2 D in all, + the exponentials).
#pragma once

#include <cmath>

#include "cuda_compat.h"
#include "dtype_io.cuh"
#include "group_attention.cuh"

namespace secvit {
namespace SV_CUDA_NS {

struct GroupGrads {
  const void *q, *k, *v, *dout;
  const float *lse, *delta;
  void *dq, *dk, *dv;
  int l, d, dtype;
};

// delta[bh, token] = <dO, O> over the head dim: one warp per row.
static __global__ void __launch_bounds__(256) attn_delta_kernel(const void* out, const void* dout, float* delta, int64_t rows, int d,
                                                         int dtype) {
  const int lane = threadIdx.x % 32;
  const int64_t r = int64_t(blockIdx.x) * 8 + threadIdx.x / 32;
  if (r >= rows) return;
  float acc = 0.0f;
  for (int c = lane; c < d; c += 32)
    acc += load_as_float(out, dtype, r * d + c) * load_as_float(dout, dtype, r * d + c);
  for (int off = 16; off > 0; off /= 2) acc += __shfl_xor_sync(0xffffffffu, acc, off);
  if (lane == 0) delta[r] = acc;
}

template <int DMAX>
struct BwdTiling {
  static constexpr int G = GroupTiling<DMAX>::G;
  static constexpr int DPL = GroupTiling<DMAX>::DPL;
  static constexpr int RPB = kGroupThreads / G;  // rows (keys or queries) owned per block
  static constexpr int T = GroupTiling<DMAX>::KT;  // staged rows per tile
  static constexpr size_t smem_bytes = size_t(2) * T * DMAX * sizeof(float) + size_t(T) * (2 * sizeof(int) + 2 * sizeof(float));
};

// Lane-sum over the G lanes of a row (every lane shuffles).
template <int G>
__device__ __forceinline__ float row_sum(float s) {
  for (int off = G / 2; off > 0; off /= 2) s += __shfl_xor_sync(0xffffffffu, s, off);
  return s;
}

// Rows tok[0, T) of two [BH, L, D] tensors x, y (this head's at `head`) as floats into a and b,
// [T][DMAX] each: zeros for padding slots (token -1) and channels past d.
template <int DMAX, int T>
__device__ __forceinline__ void stage_rows(const GroupGrads& t, const int* tok, int64_t head, const void* x, const void* y,
                                           float* a, float* b) {
  SV_NO_UNROLL
  for (int e = threadIdx.x; e < T * DMAX; e += kGroupThreads) {
    const int j = e / DMAX, ch = e % DMAX;
    const int tk = tok[j];
    const bool ok = tk >= 0 && ch < t.d;
    a[e] = ok ? load_as_float(x, t.dtype, head + int64_t(tk) * t.d + ch) : 0.0f;
    b[e] = ok ? load_as_float(y, t.dtype, head + int64_t(tk) * t.d + ch) : 0.0f;
  }
}

template <int DMAX, class Map>
__global__ void __launch_bounds__(kGroupThreads) attn_bwd_dkdv_kernel(GroupGrads t, Map map) {
  using B = BwdTiling<DMAX>;
  SV_DYNAMIC_SHARED(float, smem);
  float* qs = smem;                 // [T][DMAX]
  float* gs = qs + B::T * DMAX;     // [T][DMAX]  dO
  int* tok = reinterpret_cast<int*>(gs + B::T * DMAX);
  int* lab = tok + B::T;
  float* ls = reinterpret_cast<float*>(lab + B::T);
  float* ds = ls + B::T;
  const int bh = blockIdx.z, group = blockIdx.x;
  const int n = map.size(bh, group);
  const int gl = threadIdx.x % B::G;
  const int slot = blockIdx.y * B::RPB + threadIdx.x / B::G;
  const int ktok = slot < n ? map.token(bh, group, slot) : -1;
  const int klab = slot < n ? map.label(group, slot) : 0;
  const int64_t head = int64_t(bh) * t.l * t.d;
  float kr[B::DPL], vr[B::DPL], dk[B::DPL], dv[B::DPL];
  for (int c = 0; c < B::DPL; ++c) {
    const int ch = gl * B::DPL + c;
    const bool ok = ktok >= 0 && ch < t.d;
    kr[c] = ok ? load_as_float(t.k, t.dtype, head + int64_t(ktok) * t.d + ch) : 0.0f;
    vr[c] = ok ? load_as_float(t.v, t.dtype, head + int64_t(ktok) * t.d + ch) : 0.0f;
    dk[c] = dv[c] = 0.0f;
  }
  for (int q0 = 0; q0 < n; q0 += B::T) {
    const int nq = min(B::T, n - q0);
    __syncthreads();
    for (int j = threadIdx.x; j < B::T; j += kGroupThreads) {
      const int tq = j < nq ? map.token(bh, group, q0 + j) : -1;
      tok[j] = tq;
      lab[j] = j < nq ? map.label(group, q0 + j) : 0;
      ls[j] = tq >= 0 ? t.lse[int64_t(bh) * t.l + tq] : 0.0f;
      ds[j] = tq >= 0 ? t.delta[int64_t(bh) * t.l + tq] : 0.0f;
    }
    __syncthreads();
    stage_rows<DMAX, B::T>(t, tok, head, t.q, t.dout, qs, gs);
    __syncthreads();
    SV_NO_UNROLL
    for (int j = 0; j < nq; ++j) {
      const float* qj = qs + j * DMAX + gl * B::DPL;
      const float* gj = gs + j * DMAX + gl * B::DPL;
      float s = 0.0f, dp = 0.0f;
      for (int c = 0; c < B::DPL; ++c) {
        s = fmaf(kr[c], qj[c], s);
        dp = fmaf(vr[c], gj[c], dp);
      }
      s = row_sum<B::G>(s);
      dp = row_sum<B::G>(dp);
      if constexpr (MapHasBias<Map>::value) {
        if (slot < n) s += map.bias_at(bh, q0 + j, slot);
      }
      const bool valid = tok[j] >= 0 && (!Map::kMasked || lab[j] == klab);
      if (!valid) continue;
      const float p = expf(s - ls[j]);
      const float dsv = p * (dp - ds[j]);
      if constexpr (MapHasBias<Map>::value) {
        if (ktok >= 0 && gl == 0) map.add_dbias(bh, q0 + j, slot, dsv);
      }
      for (int c = 0; c < B::DPL; ++c) {
        dv[c] = fmaf(p, gj[c], dv[c]);
        dk[c] = fmaf(dsv, qj[c], dk[c]);
      }
    }
  }
  if (ktok < 0) return;
  for (int c = 0; c < B::DPL; ++c) {
    const int ch = gl * B::DPL + c;
    if (ch >= t.d) continue;
    store_from_float(t.dk, t.dtype, head + int64_t(ktok) * t.d + ch, dk[c]);
    store_from_float(t.dv, t.dtype, head + int64_t(ktok) * t.d + ch, dv[c]);
  }
}

template <int DMAX, class Map>
__global__ void __launch_bounds__(kGroupThreads) attn_bwd_dq_kernel(GroupGrads t, Map map) {
  using B = BwdTiling<DMAX>;
  SV_DYNAMIC_SHARED(float, smem);
  float* ks = smem;                 // [T][DMAX]
  float* vs = ks + B::T * DMAX;     // [T][DMAX]
  int* tok = reinterpret_cast<int*>(vs + B::T * DMAX);
  int* lab = tok + B::T;
  const int bh = blockIdx.z, group = blockIdx.x;
  const int n = map.size(bh, group);
  const int gl = threadIdx.x % B::G;
  const int slot = blockIdx.y * B::RPB + threadIdx.x / B::G;
  const int qtok = slot < n ? map.token(bh, group, slot) : -1;
  const int qlab = slot < n ? map.label(group, slot) : 0;
  const int64_t head = int64_t(bh) * t.l * t.d;
  float qr[B::DPL], gr[B::DPL], dq[B::DPL];
  for (int c = 0; c < B::DPL; ++c) {
    const int ch = gl * B::DPL + c;
    const bool ok = qtok >= 0 && ch < t.d;
    qr[c] = ok ? load_as_float(t.q, t.dtype, head + int64_t(qtok) * t.d + ch) : 0.0f;
    gr[c] = ok ? load_as_float(t.dout, t.dtype, head + int64_t(qtok) * t.d + ch) : 0.0f;
    dq[c] = 0.0f;
  }
  const float lse = qtok >= 0 ? t.lse[int64_t(bh) * t.l + qtok] : 0.0f;
  const float delta = qtok >= 0 ? t.delta[int64_t(bh) * t.l + qtok] : 0.0f;
  for (int k0 = 0; k0 < n; k0 += B::T) {
    const int nk = min(B::T, n - k0);
    __syncthreads();
    for (int j = threadIdx.x; j < B::T; j += kGroupThreads) {
      tok[j] = j < nk ? map.token(bh, group, k0 + j) : -1;
      lab[j] = j < nk ? map.label(group, k0 + j) : 0;
    }
    __syncthreads();
    stage_rows<DMAX, B::T>(t, tok, head, t.k, t.v, ks, vs);
    __syncthreads();
    SV_NO_UNROLL
    for (int j = 0; j < nk; ++j) {
      const float* kj = ks + j * DMAX + gl * B::DPL;
      const float* vj = vs + j * DMAX + gl * B::DPL;
      float s = 0.0f, dp = 0.0f;
      for (int c = 0; c < B::DPL; ++c) {
        s = fmaf(qr[c], kj[c], s);
        dp = fmaf(gr[c], vj[c], dp);
      }
      s = row_sum<B::G>(s);
      dp = row_sum<B::G>(dp);
      if constexpr (MapHasBias<Map>::value) {
        if (slot < n) s += map.bias_at(bh, slot, k0 + j);
      }
      const bool valid = tok[j] >= 0 && (!Map::kMasked || lab[j] == qlab);
      if (!valid) continue;
      const float dsv = expf(s - lse) * (dp - delta);
      for (int c = 0; c < B::DPL; ++c) dq[c] = fmaf(dsv, kj[c], dq[c]);
    }
  }
  if (qtok < 0) return;
  for (int c = 0; c < B::DPL; ++c) {
    const int ch = gl * B::DPL + c;
    if (ch < t.d) store_from_float(t.dq, t.dtype, head + int64_t(qtok) * t.d + ch, dq[c]);
  }
}

// Both kernels for the smallest DMAX >= d, after delta.
template <class Map>
void launch_group_attention_backward(const GroupGrads& t, const void* out, float* delta, const Map& map, int groups,
                                     int max_group, int bh, cudaStream_t stream, const char* what) {
  const int64_t rows = int64_t(bh) * t.l;
  if (rows == 0) return;
  SV_LAUNCH(attn_delta_kernel, dim3(unsigned((rows + 7) / 8)), dim3(256), 0, stream, out, t.dout, delta, rows, t.d, t.dtype);
  SV_CUDA_CHECK_LAUNCH("attn_delta_kernel");
  auto go = [&](auto dmax_tag) {
    constexpr int DMAX = decltype(dmax_tag)::value;
    using B = BwdTiling<DMAX>;
    const dim3 grid(unsigned(groups), unsigned((max_group + B::RPB - 1) / B::RPB), unsigned(bh));
    auto* kv = &attn_bwd_dkdv_kernel<DMAX, Map>;
    SV_LAUNCH(kv, grid, dim3(kGroupThreads), B::smem_bytes, stream, t, map);
    SV_CUDA_CHECK_LAUNCH(what);
    auto* kq = &attn_bwd_dq_kernel<DMAX, Map>;
    SV_LAUNCH(kq, grid, dim3(kGroupThreads), B::smem_bytes, stream, t, map);
    SV_CUDA_CHECK_LAUNCH(what);
  };
  by_head_dim<256>(t.d, go);
}

}  // namespace SV_CUDA_NS
}  // namespace secvit
