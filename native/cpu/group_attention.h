// Softmax attention inside one group of tokens, gathered by index and written back in place:
// the engine behind SEC, window and global attention on the CPU (one engine, so that the three
// differ only in how they group tokens).
//
// Layout: q, k, v, out are one (image, head): [L, D] rows of D contiguous floats, each tensor
// with its own row stride (ldq ...: D for a contiguous head, 3E for a view of a qkv projection's
// [tokens, 3E] output, E for a token-major output), fp32.
// A group is a list of token indices (`members`); members [q_begin, q_end) are the queries of
// this call, all members are keys. Optional per-member `labels` mask out keys whose label
// differs from the query's (Swin's shifted-window regions).
//
// With t.lse, each query's log-sum-exp m_i + log l_i lands at lse[members[i]] (the backward
// recomputes the probabilities from it).
// Algorithm (flash-attention style, so a group of any size fits in cache): gather the queries
// once; for each tile of up to kKeyTile keys gather K^T and V, S = Q K^T (register-tiled
// matmul), online softmax (running max m, sum l, rescale of the accumulator by
// exp(m_old - m_new)), O += P V. Finally out[members[i]] = O_i / l_i: the scatter to the
// original token order is the write itself.
// Cost per call: 4 * nq * n * D flops; reads nq*D + 2*n*D floats, writes nq*D floats.
#pragma once

#include <cstdint>
#include <cstring>

namespace secvit::cpu {

constexpr int64_t kQueryBlock = 128;  // queries per task: a 98-token group is one task
constexpr int64_t kKeyTile = 256;     // keys per online-softmax step

struct HeadTensors {
  const float* q;
  const float* k;
  const float* v;
  float* out;
  int64_t d;
  int64_t ldq, ldk, ldv, ldo;  // row strides, in floats
  float* lse = nullptr;        // [L] per token: the log-sum-exp of its softmax (or not written)
};

struct TokenGroup {
  const int32_t* members;
  int64_t n;
  const int32_t* labels;  // nullptr: no mask
  int64_t q_begin, q_end;
  // >= 0: the group's q and v were already gathered into rows [rows, rows + n) of the head
  // tensors (in member order, row strides ldq = ldv = d), so they are read in place; K^T is
  // still gathered by members (it is built anyway), and outputs go to out[members[i]].
  int64_t rows = -1;
  // Optional additive logit bias (Swin's relative position bias): s_ij += bias[slots[i] *
  // bias_n + slots[j]] for members i, j (their places in the window; slots nullptr: member i is
  // in slot i).
  const float* bias = nullptr;
  const int32_t* slots = nullptr;
  int64_t bias_n = 0;
};

void attend_group(const HeadTensors& t, const TokenGroup& g);

// S[i, j] += the group's bias for members (i0 + i, j0 + j), an nq x nk tile of row stride nk.
inline void add_group_bias(const TokenGroup& g, float* s, int64_t i0, int64_t nq, int64_t j0, int64_t nk) {
  for (int64_t i = 0; i < nq; ++i) {
    const float* brow = g.bias + int64_t(g.slots ? g.slots[i0 + i] : i0 + i) * g.bias_n;
    float* row = s + i * nk;
    if (g.slots == nullptr) {
      for (int64_t j = 0; j < nk; ++j) row[j] += brow[j0 + j];
    } else {
      for (int64_t j = 0; j < nk; ++j) row[j] += brow[g.slots[j0 + j]];
    }
  }
}

// Its gradient over the same tile: dbias[the same entries] += dS[i, j] (dbias laid out as the bias).
inline void add_group_bias_grad(const TokenGroup& g, float* dbias, const float* ds, int64_t i0, int64_t nq, int64_t j0, int64_t nk) {
  for (int64_t i = 0; i < nq; ++i) {
    float* drow = dbias + int64_t(g.slots ? g.slots[i0 + i] : i0 + i) * g.bias_n;
    const float* row = ds + i * nk;
    if (g.slots == nullptr) {
      for (int64_t j = 0; j < nk; ++j) drow[j0 + j] += row[j];
    } else {
      for (int64_t j = 0; j < nk; ++j) drow[g.slots[j0 + j]] += row[j];
    }
  }
}

// Row copies of the gathers. For the common head dims the size is a constant, so the copy is a
// few inline vector moves rather than a memmove call per row.
inline void copy_row(const float* src, float* dst, int64_t d) {
  switch (d) {
    case 16: std::memcpy(dst, src, 16 * sizeof(float)); break;
    case 32: std::memcpy(dst, src, 32 * sizeof(float)); break;
    case 64: std::memcpy(dst, src, 64 * sizeof(float)); break;
    default: std::memcpy(dst, src, size_t(d) * sizeof(float));
  }
}

// Online-softmax step on a tile S [nq x nk] (row stride nk), one SIMD path each: replaces S
// by exp(S - m_new), updates m and l, and returns in alpha the factor for the accumulator rows.
void softmax_tile_scalar(float* s, int64_t nq, int64_t nk, float* m, float* l, float* alpha);
void softmax_tile_avx2(float* s, int64_t nq, int64_t nk, float* m, float* l, float* alpha);

// The backward's elementwise step on a tile (attention_backward.cpp): S <- P = exp(S - lse_i),
// dP <- dS = P (dP - D_i), row i of [nq x nk].
void attention_backward_probs_scalar(float* s, float* dp, int64_t nq, int64_t nk, const float* lse, const float* dvec);
void attention_backward_probs_avx2(float* s, float* dp, int64_t nq, int64_t nk, const float* lse, const float* dvec);

// Column sums of one head's keys [l, d] (rows ld apart), in double: g[c] = sum_i k[i, c] (any
// summation order; the rounding of a double sum of floats is far below what the scores' order
// can see).
void key_sum_scalar(const float* k, int64_t l, int64_t d, int64_t ld, double* g);
void key_sum_avx2(const float* k, int64_t l, int64_t d, int64_t ld, double* g);

// Cosine scores of one head's keys against g/|g| (see attention.h), in double:
// out[i] = <g, k_i> / (gn * max(|k_i|, 1e-12)).
// k's rows are ld apart. pf.a, pf.b (optional, [l, d] rows lda / ldb apart): rows prefetched
// into L2 as the scan passes them (the head's q and v, which the attention then gathers in
// cluster order).
struct RowPrefetch {
  const float* a = nullptr;
  int64_t lda = 0;
  const float* b = nullptr;
  int64_t ldb = 0;
};
void cosine_scores_scalar(const float* k, int64_t l, int64_t d, int64_t ld, const double* g, double gn, double* out,
                          const RowPrefetch& pf = {});
void cosine_scores_avx2(const float* k, int64_t l, int64_t d, int64_t ld, const double* g, double gn, double* out,
                        const RowPrefetch& pf = {});

}  // namespace secvit::cpu
