#include "attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <vector>

#include "../core/cpu_features.h"
#include "../core/tensor.h"
#include "../core/thread_pool.h"
#include "group_attention.h"
#include "matmul.h"
#include "scratch.h"

namespace secvit::cpu {
namespace {

HeadTensors head(const AttentionParams& p, int64_t bh) {
  const int64_t b = bh / p.h, h = bh % p.h;
  return HeadTensors{p.q + b * p.qs[0] + h * p.qs[1], p.k + b * p.ks[0] + h * p.ks[1],
                     p.v + b * p.vs[0] + h * p.vs[1], p.out + b * p.os[0] + h * p.os[1],
                     p.d, p.qs[2], p.ks[2], p.vs[2], p.os[2], p.lse != nullptr ? p.lse + bh * p.l : nullptr};
}

// A head whose q, k, v together exceed this is copied into sorted order before its clusters
// are attended (the one-task-per-head schedule; see sec_attention_f32): about the L2 of the
// machines measured (512 KiB per core on the EPYC of BENCHMARKS.md).
constexpr int64_t kSortRowsAboveBytes = int64_t(512) << 10;

inline int64_t cluster_start(int64_t c, int64_t l, int64_t clusters) { return c * l / clusters; }

// Per-calling-thread tables, grown once and reused: no heap allocation per call once warm.
template <typename T>
T* call_scratch(std::vector<T>& v, int64_t n) {
  if (int64_t(v.size()) < n) v.resize(size_t(n));
  return v.data();
}

// Maps a double to a uint64 whose unsigned order is the double's order (-0 taken as +0).
inline uint64_t orderable_bits(double x) {
  if (x == 0.0) x = 0.0;
  uint64_t b;
  std::memcpy(&b, &x, sizeof b);
  return (b >> 63) != 0 ? ~b : b | (uint64_t(1) << 63);
}

struct OrderScratch {
  std::vector<double> g, scores;
  std::vector<int32_t> bucket, start;
};

// Stable argsort of finite scores, ascending, exactly by (score, index), by distribution:
// bucket b(s) = floor((s - min) * scale) over l buckets is monotone in s (each rounding step
// is), so buckets come in score order; a counting scatter fills them in index order, and each
// is then sorted exactly (insertion sort: stable, and a bucket holds about one score when they
// are spread; std::sort on (score, index) for a crowded bucket keeps a hostile input at
// O(n log n)). One scatter pass, where an LSD radix sort on the 64-bit keys made up to eight.
// Returns false (order untouched) when a score is not finite.
bool bucket_argsort(const double* scores, int64_t l, int32_t* order, OrderScratch& sc) {
  double lo = scores[0], hi = scores[0];
  bool finite = true;
  for (int64_t i = 0; i < l; ++i) {
    const double x = scores[i];
    finite &= std::isfinite(x);
    lo = std::min(lo, x);
    hi = std::max(hi, x);
  }
  if (!finite) return false;
  if (!(hi > lo)) {  // all equal: index order
    for (int64_t i = 0; i < l; ++i) order[i] = int32_t(i);
    return true;
  }
  const double scale = double(l) / (hi - lo);
  sc.bucket.resize(size_t(l));
  sc.start.assign(size_t(l) + 1, 0);
  int32_t* bucket = sc.bucket.data();
  int32_t* start = sc.start.data();
  for (int64_t i = 0; i < l; ++i) {
    const int32_t b = int32_t(std::min(double(l - 1), (scores[i] - lo) * scale));
    bucket[i] = b;
    ++start[b + 1];
  }
  for (int64_t b = 0; b < l; ++b) start[b + 1] += start[b];
  // Scatter in index order; start[b] ends as the end of bucket b (the start of b + 1).
  for (int64_t i = 0; i < l; ++i) order[start[bucket[i]]++] = int32_t(i);
  int64_t begin = 0;
  for (int64_t b = 0; b < l; ++b) {
    const int64_t end = start[b];
    if (end - begin > 32) {
      std::sort(order + begin, order + end, [scores](int32_t x, int32_t y) {
        return scores[x] != scores[y] ? scores[x] < scores[y] : x < y;
      });
    } else {
      for (int64_t i = begin + 1; i < end; ++i) {
        const int32_t v = order[i];
        const double sv = scores[v];
        int64_t j = i;
        for (; j > begin && scores[order[j - 1]] > sv; --j) order[j] = order[j - 1];  // stable
        order[j] = v;
      }
    }
    begin = end;
  }
  return true;
}

// Cosine scores against the mean key, in double (see attention.h), then the stable order.
void order_one_head(const float* k, int64_t l, int64_t d, int64_t ld, int32_t* order, OrderScratch& sc,
                    const RowPrefetch& pf = {}) {
  std::vector<double>& g = sc.g;
  g.resize(size_t(d));
  const bool avx2 = cpu_simd() == CpuSimd::Avx2Fma;
  if (avx2) key_sum_avx2(k, l, d, ld, g.data());
  else key_sum_scalar(k, l, d, ld, g.data());
  double gn = 0.0;
  for (int64_t c = 0; c < d; ++c) {
    g[c] /= double(l);
    gn += g[c] * g[c];
  }
  gn = std::max(std::sqrt(gn), 1e-12);
  sc.scores.resize(size_t(l));
  if (avx2) cosine_scores_avx2(k, l, d, ld, g.data(), gn, sc.scores.data(), pf);
  else cosine_scores_scalar(k, l, d, ld, g.data(), gn, sc.scores.data(), pf);
  if (bucket_argsort(sc.scores.data(), l, order, sc)) return;
  // NaN or Inf among the scores (non-finite keys): a comparison sort on the orderable bits
  // (-NaN < -Inf < ... < +Inf < +NaN, ties by index), as the reference orders them.
  for (int64_t i = 0; i < l; ++i) order[i] = int32_t(i);
  const double* s = sc.scores.data();
  std::sort(order, order + l, [s](int32_t x, int32_t y) {
    const uint64_t kx = orderable_bits(s[x]), ky = orderable_bits(s[y]);
    return kx != ky ? kx < ky : x < y;
  });
}

void order_all_heads(const AttentionParams& p, int32_t* order) {
  ThreadPool::instance().parallel_for(p.b * p.h, 1, [&](int64_t begin, int64_t end) {
    thread_local OrderScratch scratch;
    for (int64_t bh = begin; bh < end; ++bh) {
      const HeadTensors t = head(p, bh);
      order_one_head(t.k, p.l, p.d, t.ldk, order + bh * p.l, scratch);
    }
  });
}

// Runs attention over every (head, group, block of kQueryBlock queries) on the pool.
// group_of(bh, g) gives the group's members, size and labels; the query range is set here.
template <typename GroupOf>
void attend_groups(const AttentionParams& p, int64_t groups, int64_t max_group, GroupOf group_of) {
  const int64_t qblocks = (max_group + kQueryBlock - 1) / kQueryBlock;
  const int64_t tasks = p.b * p.h * groups * qblocks;
  ThreadPool::instance().parallel_for(tasks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t qb = t % qblocks;
      const int64_t g = (t / qblocks) % groups;
      const int64_t bh = t / (qblocks * groups);
      TokenGroup group = group_of(bh, g);
      const int64_t q0 = qb * kQueryBlock;
      if (q0 >= group.n) continue;
      group.q_begin = q0;
      group.q_end = std::min(group.n, q0 + kQueryBlock);
      attend_group(head(p, bh), group);
    }
  });
}

// Cluster c of head bh: sorted positions [floor(cL/C), floor((c+1)L/C)) of its order.
TokenGroup sec_cluster(const int32_t* order, int64_t l, int64_t clusters, int64_t bh, int64_t c) {
  const int64_t s0 = cluster_start(c, l, clusters);
  return TokenGroup{order + bh * l + s0, cluster_start(c + 1, l, clusters) - s0, nullptr, 0, 0};
}

}  // namespace

void sec_attention_f32(const AttentionParams& p, int64_t clusters, int32_t* order) {
  if (p.b * p.h * p.l == 0) return;
  if (clusters < 1) clusters = 1;
  if (clusters == 1 && order == nullptr) {
    global_attention_f32(p);
    return;
  }
  thread_local std::vector<int32_t> scratch;
  if (order == nullptr) order = call_scratch(scratch, p.b * p.h * p.l);
  const int64_t heads = p.b * p.h;
  if (heads >= 2 * ThreadPool::instance().threads()) {
    // Enough heads to keep every thread busy: one task per head orders its tokens and then
    // attends its clusters while that head's k and v are still in L2 (ordering all heads
    // first streams every head through the cache before any attention reads it back).
    //
    // A head above kSortRowsAboveBytes (stage 0: 1.2 MB of q/k/v) does not fit the L2, and
    // gathering a cluster's rows would read 128-byte rows at random from L3, each read a wait.
    // Its q and v rows are instead copied into sorted order by one pass that reads them in
    // token order and writes each to its rank (writes retire through the store buffer), so a
    // cluster's queries and values are contiguous rows read in place; keys are still gathered
    // into K^T by members (k was just streamed by the scores, and the transposed copy is made
    // either way). A head that fits (stage 1: 0.3 MB) is gathered directly, with its q and v
    // prefetched into L2 while the scores scan k: there the copy was a net loss (measured).
    const bool sort_rows = 3 * p.l * p.d * int64_t(sizeof(float)) > kSortRowsAboveBytes;
    ThreadPool::instance().parallel_for(heads, 1, [&](int64_t begin, int64_t end) {
      thread_local OrderScratch sc;
      thread_local ScratchVec<float> sorted_buf;
      thread_local ScratchVec<int32_t> rank_buf;
      const int64_t l = p.l, d = p.d;
      for (int64_t bh = begin; bh < end; ++bh) {
        int32_t* ord = order + bh * l;
        const HeadTensors src = head(p, bh);
        HeadTensors use = src;
        if (!sort_rows) {
          // The head fits the L2: its q and v are pulled in while the scores scan k, so that
          // the clusters' gathers hit L2 instead of waiting on L3 row by row.
          order_one_head(src.k, l, d, src.ldk, ord, sc, RowPrefetch{src.q, src.ldq, src.v, src.ldv});
        } else {
          order_one_head(src.k, l, d, src.ldk, ord, sc);
          int32_t* rank = rank_buf.get(size_t(l));
          for (int64_t r = 0; r < l; ++r) rank[ord[r]] = int32_t(r);
          float* sq = sorted_buf.get(size_t(2 * l * d));
          float* sv = sq + l * d;
          for (int64_t i = 0; i < l; ++i) {
            const int64_t r = rank[i];
            copy_row(src.q + i * src.ldq, sq + r * d, d);
            copy_row(src.v + i * src.ldv, sv + r * d, d);
          }
          use = HeadTensors{sq, src.k, sv, src.out, d, d, src.ldk, d, src.ldo, src.lse};
        }
        for (int64_t c = 0; c < clusters; ++c) {
          TokenGroup g = sec_cluster(order, l, clusters, bh, c);
          if (sort_rows) g.rows = cluster_start(c, l, clusters);
          for (g.q_begin = 0; g.q_begin < g.n; g.q_begin += kQueryBlock) {
            g.q_end = std::min(g.n, g.q_begin + kQueryBlock);
            attend_group(use, g);
          }
        }
      }
    });
    return;
  }
  // Few heads: order them all, then spread (head, cluster, query block) over the pool.
  order_all_heads(p, order);
  attend_groups(p, clusters, (p.l + clusters - 1) / clusters, [&](int64_t bh, int64_t c) {
    return sec_cluster(order, p.l, clusters, bh, c);
  });
}

void global_attention_f32(const AttentionParams& p) {
  if (p.b * p.h * p.l == 0) return;
  // One group per head: every token, in order (the same list serves every head).
  thread_local std::vector<int32_t> ids;
  int32_t* identity = call_scratch(ids, p.l);
  std::iota(identity, identity + p.l, 0);
  attend_groups(p, 1, p.l, [&](int64_t, int64_t) { return TokenGroup{identity, p.l, nullptr, 0, 0}; });
}

WindowGroups window_groups(const WindowParams& w) {
  WindowGroups r;
  const int64_t hp = (w.height + w.win_h - 1) / w.win_h * w.win_h;
  const int64_t wp = (w.width + w.win_w - 1) / w.win_w * w.win_w;
  const int64_t nwy = hp / w.win_h, nwx = wp / w.win_w;
  const int64_t windows = r.windows = nwy * nwx;
  const int64_t wsize = r.wsize = w.win_h * w.win_w;
  const bool shifted = w.shift_h > 0 || w.shift_w > 0;
  // Swin's regions of the padded, rolled grid: [0, P-win), [P-win, P-shift), [P-shift, P).
  auto region = [](int64_t x, int64_t pdim, int64_t win, int64_t shift) -> int32_t {
    if (shift == 0) return 0;
    return x < pdim - win ? 0 : (x < pdim - shift ? 1 : 2);
  };
  r.members.resize(size_t(windows * wsize));
  r.labels.resize(size_t(windows * wsize));
  r.slots.resize(size_t(windows * wsize));
  r.count.resize(size_t(windows));
  r.mixed.resize(size_t(windows));
  int32_t* members = r.members.data();
  int32_t* labels = r.labels.data();
  int64_t* count = r.count.data();
  char* label_mixed = r.mixed.data();
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
          r.slots[size_t(win * wsize + n)] = int32_t(ry * w.win_w + rx);
          labels[win * wsize + n] = lab;
          if (n > 0 && lab != labels[win * wsize]) mixed = true;
          ++n;
        }
      }
      count[win] = n;
      label_mixed[win] = shifted && mixed;
    }
  }
  return r;
}

void window_attention_f32(const AttentionParams& p, const WindowParams& w, const float* bias) {
  if (p.b * p.h * p.l == 0) return;
  // Members (original token indices) and labels of every window, shared by all heads.
  const WindowGroups g = window_groups(w);
  const int64_t nn = g.wsize * g.wsize;
  attend_groups(p, g.windows, g.wsize, [&](int64_t bh, int64_t win) {
    return g.group(win, bias != nullptr ? bias + (bh % p.h) * nn : nullptr);
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
      const HeadTensors t = head(p, r / p.l);
      const int64_t tok = order[r];
      std::copy(t.q + tok * t.ldq, t.q + tok * t.ldq + p.d, qs + r * p.d);
      std::copy(t.k + tok * t.ldk, t.k + tok * t.ldk + p.d, ks + r * p.d);
      std::copy(t.v + tok * t.ldv, t.v + tok * t.ldv + p.d, vs + r * p.d);
    }
  });
  // 4: attention per contiguous cluster with the whole n x n matrix (S, softmax, PV).
  pool.parallel_for(p.b * p.h * clusters, 1, [&](int64_t begin, int64_t end) {
    thread_local ScratchVec<float> kt_buf, s_buf;
    for (int64_t t = begin; t < end; ++t) {
      const int64_t bh = t / clusters, c = t % clusters;
      const int64_t s0 = cluster_start(c, p.l, clusters), n = cluster_start(c + 1, p.l, clusters) - s0;
      const int64_t base = (bh * p.l + s0) * p.d;
      float* kt = kt_buf.get(size_t(n * p.d));
      float* s = s_buf.get(size_t(n * n));
      for (int64_t j = 0; j < n; ++j)
        for (int64_t c2 = 0; c2 < p.d; ++c2) kt[c2 * n + j] = ks[base + j * p.d + c2];
      matmul_f32_serial(MatmulParams{qs + base, kt, s, 1, n, p.d, n, 0, 0, 0, false});
      for (int64_t i = 0; i < n; ++i) {
        float* row = s + i * n;
        const float mx = *std::max_element(row, row + n);
        float sum = 0.0f;
        for (int64_t j = 0; j < n; ++j) sum += (row[j] = std::exp(row[j] - mx));
        for (int64_t j = 0; j < n; ++j) row[j] /= sum;
      }
      matmul_f32_serial(MatmulParams{s, vs + base, os + base, 1, n, n, p.d, 0, 0, 0, false});
    }
  });
  // 5: scatter back to token order.
  pool.parallel_for(bhl, 256, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t bh = r / p.l;
      const HeadTensors t = head(p, bh);
      std::copy(os + r * p.d, os + (r + 1) * p.d, t.out + int64_t(order[r]) * t.ldo);
    }
  });
}

}  // namespace secvit::cpu

// ---- the attention ops' CPU kernels (rules: native/ops/attention.cpp) --------------------------
// float32 only: the dispatcher widens 16-bit inputs and rounds the output back.
#include "core/op.h"
#include "ops/attention.h"

namespace secvit::cpu {
namespace {

AttentionParams params_of(const KernelArgs& a) {
  const AttentionOpParams& p = a.p<AttentionOpParams>();
  AttentionParams r{a.in[0].ptr<float>(), a.in[1].ptr<float>(), a.in[2].ptr<float>(),
                    a.out[0].ptr<float>(), p.b, p.h, p.l, p.d, {}, {}, {}, {}};
  if (p.save_lse) r.lse = a.out[a.n_out - 1].ptr<float>();
  // (image, head, token) strides; the rules give every tensor a contiguous head dim.
  for (int i = 0; i < 3; ++i) {
    r.qs[i] = a.in[0].strides[size_t(i)];
    r.ks[i] = a.in[1].strides[size_t(i)];
    r.vs[i] = a.in[2].strides[size_t(i)];
    r.os[i] = a.out[0].strides[size_t(i)];
  }
  return r;
}

int32_t* order_of(const KernelArgs& a) {
  return a.p<AttentionOpParams>().return_order ? a.out[1].ptr<int32_t>() : nullptr;
}

void sec_kernel(const KernelArgs& a) {
  sec_attention_f32(params_of(a), a.p<AttentionOpParams>().clusters, order_of(a));
}
void sec_unfused_kernel(const KernelArgs& a) {
  sec_attention_unfused_f32(params_of(a), a.p<AttentionOpParams>().clusters, order_of(a));
}
void window_kernel(const KernelArgs& a) {
  const AttentionOpParams& p = a.p<AttentionOpParams>();
  window_attention_f32(params_of(a), WindowParams{p.height, p.width, p.win_h, p.win_w, p.shift_h, p.shift_w},
                       p.has_bias ? a.in[3].ptr<float>() : nullptr);
}
void global_kernel(const KernelArgs& a) { global_attention_f32(params_of(a)); }

}  // namespace

// q, k, v are read through their strides (views of a qkv projection's output need no copy);
// the rules keep each one's head dim contiguous.
constexpr unsigned kQkvStrided = 0x7;
SECVIT_KERNEL(secAttention, Device::Cpu, kF32, sec_kernel, nullptr, kQkvStrided);
SECVIT_KERNEL(secAttentionUnfused, Device::Cpu, kF32, sec_unfused_kernel, nullptr, kQkvStrided);
SECVIT_KERNEL(windowAttention, Device::Cpu, kF32, window_kernel, nullptr, kQkvStrided);
SECVIT_KERNEL(globalAttention, Device::Cpu, kF32, global_kernel, nullptr, kQkvStrided);

}  // namespace secvit::cpu
