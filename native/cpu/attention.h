// SEC, window and global attention on the CPU (SPEC section 1 and 2). No d^-0.5 scale inside:
// the model folds it into k.
//
// Layout: q, k, v, out are [B, H, L, D] fp32 with any (image, head, token) strides and the head
// dim contiguous (views of a [B, L, 3, H, D] projection; a token-major [B, L, H, D] output);
// order is [B, H, L] int32, contiguous.
// All three run on group_attention's engine, parallel over (image, head, group, block of 64
// queries) on the native pool.
//
// SEC (per image and head): g = mean_i k_i; s_i = <g/|g|, k_i/|k_i|> (eps 1e-12, in double so
// that near-ties order like the double reference); order = indices sorted by (s_i, i); cluster
// c = sorted positions [floor(cL/C), floor((c+1)L/C)); attention within each cluster; outputs
// written to out[order[p]]. C <= 1 is one cluster (global attention).
// Cost: 4 * B*H * sum_c n_c^2 * D flops (+ the sort, L log L per head); q, k, v read once
// (k twice: scores, then attention), out written once.
#pragma once

#include <cstdint>
#include <vector>

#include "group_attention.h"

namespace secvit::cpu {

struct AttentionParams {
  const float* q;
  const float* k;
  const float* v;
  float* out;
  int64_t b, h, l, d;
  int64_t qs[3], ks[3], vs[3], os[3];  // element strides of (image, head, token)
  float* lse = nullptr;                // [B, H, L] log-sum-exps, contiguous (or not written)
};

// order may be null when the caller does not want it (a scratch buffer is used).
void sec_attention_f32(const AttentionParams& p, int64_t clusters, int32_t* order);

// The same computation as a sequence of separate passes with materialized intermediates
// (scores; sort; gather q, k, v into sorted order; attention per contiguous cluster with the
// full n x n score matrix; scatter), as a composition of separate ops would run it. Exists as
// the benchmark's baseline for what fusion saves.
void sec_attention_unfused_f32(const AttentionParams& p, int64_t clusters, int32_t* order);

struct WindowParams {
  int64_t height, width;        // L = height * width, row-major
  int64_t win_h, win_w;         // window size
  int64_t shift_h, shift_w;     // cyclic shift (0: none), each < the window size
};

// Swin-style window attention: the grid is padded to multiples of the window (padded keys
// masked out), rolled by (-shift_h, -shift_w), cut into windows; with a shift, tokens attend
// only to tokens of the same region (Swin's mask, as exact exclusion). Outputs land at the
// tokens' original positions.
void window_attention_f32(const AttentionParams& p, const WindowParams& w, const float* bias = nullptr);

// The windows of a grid (shared by the forward and backward kernels): each window's members
// (original token indices, padding left out) and, for windows that mix Swin's regions, their
// region labels.
struct WindowGroups {
  std::vector<int32_t> members, labels, slots;  // slots: each member's place in its window (row * ww + column)
  std::vector<int64_t> count;
  std::vector<char> mixed;
  int64_t windows = 0, wsize = 0;
  // `bias`: this head's [wsize, wsize] relative position bias, or null.
  TokenGroup group(int64_t win, const float* bias = nullptr) const {
    TokenGroup g{members.data() + win * wsize, count[size_t(win)],
                 mixed[size_t(win)] ? labels.data() + win * wsize : nullptr, 0, 0};
    if (bias != nullptr) {
      g.bias = bias;
      g.bias_n = wsize;
      // A window without padding lists its members in slot order: slots are the identity
      // (nullptr), and the bias rows are read contiguously (vectorised).
      g.slots = count[size_t(win)] == wsize ? nullptr : slots.data() + win * wsize;
    }
    return g;
  }
};
WindowGroups window_groups(const WindowParams& w);

void global_attention_f32(const AttentionParams& p);

}  // namespace secvit::cpu
