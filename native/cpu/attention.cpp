#include "attention.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "../core/cpu_features.h"
#include "../core/tensor.h"
#include "../core/thread_pool.h"
#include "group_attention.h"
#include "matmul.h"

namespace secvit::cpu {
namespace {

HeadTensors head(const AttentionParams& p, int64_t bh) {
  const int64_t off = bh * p.l * p.d;
  return HeadTensors{p.q + off, p.k + off, p.v + off, p.out + off, p.d};
}

inline int64_t cluster_start(int64_t c, int64_t l, int64_t clusters) { return c * l / clusters; }

// Cosine scores against the mean key, in double (see attention.h), then the stable order:
// contiguous (score, index) pairs sort several times faster than indices with an indirect
// comparator (no dependent loads in the comparisons).
struct ScoredToken {  // 16 bytes: sorting moves whole entries, no indirection
  double score;
  int32_t index;
  bool operator<(const ScoredToken& o) const {
    return score < o.score || (score == o.score && index < o.index);
  }
};

void order_one_head(const float* k, int64_t l, int64_t d, int32_t* order,
                    std::vector<ScoredToken>& tokens, std::vector<double>& g,
                    std::vector<double>& scores) {
  g.assign(size_t(d), 0.0);
  for (int64_t i = 0; i < l; ++i)
    for (int64_t c = 0; c < d; ++c) g[c] += k[i * d + c];
  double gn = 0.0;
  for (int64_t c = 0; c < d; ++c) {
    g[c] /= double(l);
    gn += g[c] * g[c];
  }
  gn = std::max(std::sqrt(gn), 1e-12);
  scores.resize(size_t(l));
  if (cpu_simd() == CpuSimd::Avx2Fma) cosine_scores_avx2(k, l, d, g.data(), gn, scores.data());
  else cosine_scores_scalar(k, l, d, g.data(), gn, scores.data());
  tokens.resize(size_t(l));
  for (int64_t i = 0; i < l; ++i) tokens[i] = ScoredToken{scores[i], int32_t(i)};
  std::sort(tokens.begin(), tokens.end());
  for (int64_t i = 0; i < l; ++i) order[i] = tokens[i].index;
}

void order_all_heads(const AttentionParams& p, int32_t* order) {
  ThreadPool::instance().parallel_for(p.b * p.h, 1, [&](int64_t begin, int64_t end) {
    thread_local std::vector<ScoredToken> tokens;
    thread_local std::vector<double> g, scores;
    for (int64_t bh = begin; bh < end; ++bh)
      order_one_head(p.k + bh * p.l * p.d, p.l, p.d, order + bh * p.l, tokens, g, scores);
  });
}

// Runs attention over groups given as consecutive runs of `members` (one list per head):
// group c of head bh is members[bh*L + starts(c) ...]. Parallel over (head, group, q-block).
template <typename Starts>
void attend_partition(const AttentionParams& p, const int32_t* members, int64_t groups,
                      int64_t max_group, Starts starts) {
  const int64_t qblocks = (max_group + kQueryBlock - 1) / kQueryBlock;
  const int64_t tasks = p.b * p.h * groups * qblocks;
  ThreadPool::instance().parallel_for(tasks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t qb = t % qblocks;
      const int64_t c = (t / qblocks) % groups;
      const int64_t bh = t / (qblocks * groups);
      const int64_t s0 = starts(c), s1 = starts(c + 1);
      const int64_t q0 = qb * kQueryBlock;
      if (q0 >= s1 - s0) continue;
      TokenGroup g{members + bh * p.l + s0, s1 - s0, nullptr, q0,
                   std::min(s1 - s0, q0 + kQueryBlock)};
      attend_group(head(p, bh), g);
    }
  });
}

}  // namespace

void sec_order(const AttentionParams& p, int32_t* order) { order_all_heads(p, order); }

void sec_attention_f32(const AttentionParams& p, int64_t clusters, int32_t* order) {
  if (p.b * p.h * p.l == 0) return;
  if (clusters < 1) clusters = 1;
  std::vector<int32_t> scratch;
  if (clusters == 1 && order == nullptr) {
    global_attention_f32(p);
    return;
  }
  if (order == nullptr) {
    scratch.resize(size_t(p.b * p.h * p.l));
    order = scratch.data();
  }
  order_all_heads(p, order);
  const int64_t max_cluster = (p.l + clusters - 1) / clusters;
  attend_partition(p, order, clusters, max_cluster,
                   [&](int64_t c) { return cluster_start(c, p.l, clusters); });
}

void global_attention_f32(const AttentionParams& p) {
  if (p.b * p.h * p.l == 0) return;
  // Identity membership, shared by every head.
  std::vector<int32_t> identity(static_cast<size_t>(p.b * p.h * p.l));
  for (int64_t bh = 0; bh < p.b * p.h; ++bh)
    std::iota(identity.begin() + bh * p.l, identity.begin() + (bh + 1) * p.l, 0);
  attend_partition(p, identity.data(), 1, p.l, [&](int64_t c) { return c * p.l; });
}

void window_attention_f32(const AttentionParams& p, const WindowParams& w) {
  if (p.b * p.h * p.l == 0) return;
  const int64_t hp = (w.height + w.win_h - 1) / w.win_h * w.win_h;
  const int64_t wp = (w.width + w.win_w - 1) / w.win_w * w.win_w;
  const int64_t nwy = hp / w.win_h, nwx = wp / w.win_w;
  const int64_t windows = nwy * nwx;
  const int64_t wsize = w.win_h * w.win_w;
  const bool shifted = w.shift_h > 0 || w.shift_w > 0;
  // Swin's regions of the padded, rolled grid: [0, P-win), [P-win, P-shift), [P-shift, P).
  auto region = [](int64_t x, int64_t pdim, int64_t win, int64_t shift) -> int32_t {
    if (shift == 0) return 0;
    return x < pdim - win ? 0 : (x < pdim - shift ? 1 : 2);
  };
  // Members (original token indices) and labels of every window, shared by all heads.
  std::vector<int32_t> members(static_cast<size_t>(windows * wsize)), labels(static_cast<size_t>(windows * wsize));
  std::vector<int64_t> count(static_cast<size_t>(windows)), label_mixed(static_cast<size_t>(windows));
  for (int64_t wy = 0; wy < nwy; ++wy) {
    for (int64_t wx = 0; wx < nwx; ++wx) {
      const int64_t win = wy * nwx + wx;
      int64_t n = 0;
      bool mixed = false;
      for (int64_t ry = 0; ry < w.win_h; ++ry) {
        for (int64_t rx = 0; rx < w.win_w; ++rx) {
          const int64_t ys = wy * w.win_h + ry, xs = wx * w.win_w + rx;
          const int64_t y = (ys + w.shift_h) % hp, x = (xs + w.shift_w) % wp;
          if (y >= w.height || x >= w.width) continue;  // padding: neither key nor query
          const int32_t lab = region(ys, hp, w.win_h, w.shift_h) * 3 + region(xs, wp, w.win_w, w.shift_w);
          members[win * wsize + n] = int32_t(y * w.width + x);
          labels[win * wsize + n] = lab;
          if (n > 0 && lab != labels[win * wsize]) mixed = true;
          ++n;
        }
      }
      count[win] = n;
      label_mixed[win] = shifted && mixed;
    }
  }
  const int64_t qblocks = (wsize + kQueryBlock - 1) / kQueryBlock;
  const int64_t tasks = p.b * p.h * windows * qblocks;
  ThreadPool::instance().parallel_for(tasks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t qb = t % qblocks;
      const int64_t win = (t / qblocks) % windows;
      const int64_t bh = t / (qblocks * windows);
      const int64_t n = count[win];
      const int64_t q0 = qb * kQueryBlock;
      if (q0 >= n) continue;
      TokenGroup g{members.data() + win * wsize, n,
                   label_mixed[win] ? labels.data() + win * wsize : nullptr, q0,
                   std::min(n, q0 + kQueryBlock)};
      attend_group(head(p, bh), g);
    }
  });
}

void sec_attention_unfused_f32(const AttentionParams& p, int64_t clusters, int32_t* order) {
  if (p.b * p.h * p.l == 0) return;
  if (clusters < 1) clusters = 1;
  const int64_t bhl = p.b * p.h * p.l;
  std::vector<int32_t> own_order;
  if (order == nullptr) {
    own_order.resize(size_t(bhl));
    order = own_order.data();
  }
  ThreadPool& pool = ThreadPool::instance();
  // 1-2: scores and sort.
  order_all_heads(p, order);
  // 3: gather q, k, v into sorted order (three materialized tensors, counted by memory() like
  // the intermediates of separate ops would be).
  const Shape shape{p.b, p.h, p.l, p.d};
  Tensor tq = empty_tensor(shape, DType::Float32, Device::Cpu);
  Tensor tk = empty_tensor(shape, DType::Float32, Device::Cpu);
  Tensor tv = empty_tensor(shape, DType::Float32, Device::Cpu);
  Tensor to = empty_tensor(shape, DType::Float32, Device::Cpu);
  float* qs = tq.data<float>();
  float* ks = tk.data<float>();
  float* vs = tv.data<float>();
  float* os = to.data<float>();
  pool.parallel_for(bhl, 256, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t bh = r / p.l;
      const int64_t src = (bh * p.l + order[r]) * p.d;
      std::copy(p.q + src, p.q + src + p.d, qs + r * p.d);
      std::copy(p.k + src, p.k + src + p.d, ks + r * p.d);
      std::copy(p.v + src, p.v + src + p.d, vs + r * p.d);
    }
  });
  // 4: attention per contiguous cluster with the whole n x n matrix (S, softmax, PV).
  pool.parallel_for(p.b * p.h * clusters, 1, [&](int64_t begin, int64_t end) {
    thread_local std::vector<float> kt, s;
    for (int64_t t = begin; t < end; ++t) {
      const int64_t bh = t / clusters, c = t % clusters;
      const int64_t s0 = cluster_start(c, p.l, clusters), n = cluster_start(c + 1, p.l, clusters) - s0;
      const int64_t base = (bh * p.l + s0) * p.d;
      kt.resize(size_t(n * p.d));
      s.resize(size_t(n * n));
      for (int64_t j = 0; j < n; ++j)
        for (int64_t c2 = 0; c2 < p.d; ++c2) kt[c2 * n + j] = ks[base + j * p.d + c2];
      matmul_f32_serial(MatmulParams{qs + base, kt.data(), s.data(), 1, n, p.d, n, 0, 0, 0, false});
      for (int64_t i = 0; i < n; ++i) {
        float* row = s.data() + i * n;
        const float mx = *std::max_element(row, row + n);
        float sum = 0.0f;
        for (int64_t j = 0; j < n; ++j) sum += (row[j] = std::exp(row[j] - mx));
        for (int64_t j = 0; j < n; ++j) row[j] /= sum;
      }
      matmul_f32_serial(MatmulParams{s.data(), vs + base, os + base, 1, n, n, p.d, 0, 0, 0, false});
    }
  });
  // 5: scatter back to token order.
  pool.parallel_for(bhl, 256, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t bh = r / p.l;
      std::copy(os + r * p.d, os + (r + 1) * p.d, p.out + (bh * p.l + order[r]) * p.d);
    }
  });
}

}  // namespace secvit::cpu
