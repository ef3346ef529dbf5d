// The CPU caching allocator (rules in host_pool.h).
//
// Two pools. Requests under kSmallLimit are cached by size class (64 B steps) and reused when a
// cached block wastes at most a quarter of itself: they are many and tiny, and exact reuse is
// cheapest. Larger requests are carved from segments (one aligned_alloc each, sized by the
// request that found no free block big enough): best fit over the free blocks of every segment,
// splitting off the rest when it is worth keeping, and merging a released block with its free
// neighbours. That is what keeps a
// forward's cache near its live peak: a model's activations change size from stage to stage
// (SecViT-T at 224: 3.2 MB MLP hiddens in stage 0, 0.8 MB in stage 2), and a cache of whole
// blocks keeps every stage's sizes (30 MB for a 12 MB live peak, measured) where merged free
// space serves the next stage.
//
// Every free block carries the CPU queue position at which it was released (merging keeps the
// latest), so stream-ordered reuse stays exact (storage.h).
#include "host_pool.h"

#include <algorithm>
#include <cstdlib>
#include <map>
#include <mutex>
#include <set>
#include <unordered_map>

#include "error.h"
#include "memory_stats.h"
#include "queue.h"

namespace secvit::host_pool {
namespace {

constexpr size_t kSmallLimit = size_t(64) << 10;  // requests under this are size-class cached
constexpr size_t kPage = 4096;                    // large blocks: page granular and aligned
constexpr size_t kMinSplit = size_t(64) << 10;  // a smaller remainder stays with the block

size_t round_small(size_t bytes) { return (std::max<size_t>(bytes, 1) + 63) / 64 * 64; }
size_t round_large(size_t bytes) { return (bytes + kPage - 1) / kPage * kPage; }

// SECVIT_CPU_CACHE_MB when set (exactly that); else 256 MiB or, when more, the most memory the
// process has had in use at once: a training step frees and allocates its whole working set
// (673 MiB of saved activations for SecViT-T at batch 8), and trimming it to 256 MiB sent every
// step back to the system for the rest, page faults and zeroing included (1.39 s -> 1.69 s per
// step, measured). Idle memory thus never exceeds what was once live.
size_t cache_limit(size_t in_use_peak) {
  static const long long env = [] {
    const char* e = std::getenv("SECVIT_CPU_CACHE_MB");
    return e != nullptr ? std::atoll(e) : -1;
  }();
  if (env >= 0) return size_t(env) << 20;
  return std::max(size_t(256) << 20, in_use_peak);
}

struct Cached {
  void* data;
  uint64_t release_seq;
};

// A piece of a segment; the pieces of one segment tile it in address order. A block with no
// neighbours is a whole segment (what aligned_alloc returned).
struct Block {
  char* data;
  size_t size;
  Block* prev;
  Block* next;
  bool free;
  uint64_t release_seq;  // while free: the latest release among what it was merged from
};

struct BySize {
  bool operator()(const Block* a, const Block* b) const {
    return a->size != b->size ? a->size < b->size : a->data < b->data;
  }
};

struct Pool {
  std::mutex mu;
  std::multimap<size_t, Cached> small_free;  // rounded size -> block
  std::set<Block*, BySize> large_free;
  std::unordered_map<void*, Block*> large_used;
  size_t cached = 0;    // idle bytes: small cached blocks + free pieces of segments
  size_t reserved = 0;  // every byte obtained from the system
  size_t in_use_peak = 0;  // the most of `reserved - cached` seen at once
};

Pool& pool() {
  static Pool* p = new Pool();  // never destroyed: queued work may release blocks at exit
  return *p;
}

// Frees idle memory whose release the CPU queue has passed (small blocks first, then whole free
// segments) until the cache fits `limit`.
void trim_locked(Pool& p, size_t limit, uint64_t completed) {
  for (auto it = p.small_free.begin(); it != p.small_free.end() && p.cached > limit;) {
    if (it->second.release_seq <= completed) {
      std::free(it->second.data);
      p.cached -= it->first;
      p.reserved -= it->first;
      memory_stats::external_released(it->first);
      it = p.small_free.erase(it);
    } else {
      ++it;
    }
  }
  for (auto it = p.large_free.begin(); it != p.large_free.end() && p.cached > limit;) {
    Block* b = *it;
    if (b->prev == nullptr && b->next == nullptr && b->release_seq <= completed) {
      std::free(b->data);
      p.cached -= b->size;
      p.reserved -= b->size;
      memory_stats::external_released(b->size);
      it = p.large_free.erase(it);
      delete b;
    } else {
      ++it;
    }
  }
}

void* system_alloc(Pool& p, size_t size, size_t align) {
  void* data = std::aligned_alloc(align, size);
  if (data == nullptr) {
    // Give back what the cache holds and try once more.
    trim_locked(p, 0, Queue::of(Device::Cpu).completed());
    data = std::aligned_alloc(align, size);
    if (data == nullptr) throw_runtime_error("out of host memory allocating ", size, " bytes");
  }
  p.reserved += size;
  memory_stats::external_acquired(size);
  return data;
}

HostBlock allocate_small(Pool& p, size_t bytes, uint64_t usable_before) {
  const size_t size = round_small(bytes);
  for (auto it = p.small_free.lower_bound(size); it != p.small_free.end() && it->first - size <= it->first / 4; ++it) {
    if (!Queue::block_usable(it->second.release_seq, usable_before)) continue;
    HostBlock b{it->second.data, it->second.release_seq};
    p.cached -= it->first;
    p.small_free.erase(it);
    return b;
  }
  return HostBlock{system_alloc(p, size, 64), 0};
}

HostBlock allocate_large(Pool& p, size_t bytes, uint64_t usable_before) {
  const size_t size = round_large(bytes);
  Block* found = nullptr;
  Block key{nullptr, size, nullptr, nullptr, true, 0};
  for (auto it = p.large_free.lower_bound(&key); it != p.large_free.end(); ++it) {
    if (Queue::block_usable((*it)->release_seq, usable_before)) {
      found = *it;
      p.large_free.erase(it);
      break;
    }
  }
  if (found == nullptr) {
    found = new Block{static_cast<char*>(system_alloc(p, size, kPage)), size, nullptr, nullptr, true, 0};
    p.cached += size;
  }
  if (found->size - size >= kMinSplit) {
    Block* rest = new Block{found->data + size, found->size - size, found, found->next, true, found->release_seq};
    if (found->next != nullptr) found->next->prev = rest;
    found->next = rest;
    found->size = size;
    p.large_free.insert(rest);
  }
  found->free = false;
  p.cached -= found->size;
  p.large_used.emplace(found->data, found);
  return HostBlock{found->data, found->release_seq};
}

// `left` takes in `right`, its free neighbour at the next address (neither is in large_free).
void absorb(Block* left, Block* right) {
  left->size += right->size;
  left->release_seq = std::max(left->release_seq, right->release_seq);
  left->next = right->next;
  if (right->next != nullptr) right->next->prev = left;
  delete right;
}

void release_large(Pool& p, void* data, uint64_t release_seq) {
  const auto it = p.large_used.find(data);
  if (it == p.large_used.end()) return;  // not ours: nothing to do (never happens)
  Block* b = it->second;
  p.large_used.erase(it);
  p.cached += b->size;
  b->free = true;
  b->release_seq = release_seq;
  // Merge with free neighbours: the merged block is usable only after the latest release.
  if (Block* n = b->next; n != nullptr && n->free) {
    p.large_free.erase(n);
    absorb(b, n);
  }
  if (Block* q = b->prev; q != nullptr && q->free) {
    p.large_free.erase(q);
    absorb(q, b);
    b = q;
  }
  p.large_free.insert(b);
}

}  // namespace

HostBlock allocate(size_t bytes) {
  Pool& p = pool();
  // On the CPU dispatcher, running task t: only blocks released before t was queued (later
  // ones may still be used by tasks queued after t, which have not run).
  const uint64_t usable_before = Queue::running_seq(Device::Cpu);
  std::lock_guard<std::mutex> lk(p.mu);
  const HostBlock b = bytes < kSmallLimit ? allocate_small(p, bytes, usable_before) : allocate_large(p, bytes, usable_before);
  p.in_use_peak = std::max(p.in_use_peak, p.reserved - p.cached);
  return b;
}

void release(void* data, size_t bytes, uint64_t release_seq) {
  Pool& p = pool();
  std::lock_guard<std::mutex> lk(p.mu);
  if (bytes < kSmallLimit) {
    const size_t size = round_small(bytes);
    p.small_free.emplace(size, Cached{data, release_seq});
    p.cached += size;
  } else {
    release_large(p, data, release_seq);
  }
  const size_t limit = cache_limit(p.in_use_peak);
  if (p.cached > limit) trim_locked(p, limit, Queue::of(Device::Cpu).completed());
}

void empty_cache() {
  Queue& q = Queue::of(Device::Cpu);
  if (!q.on_dispatcher()) q.wait(q.submitted());
  Pool& p = pool();
  std::lock_guard<std::mutex> lk(p.mu);
  trim_locked(p, 0, q.completed());
}

size_t cached_bytes() {
  std::lock_guard<std::mutex> lk(pool().mu);
  return pool().cached;
}

size_t reserved_bytes() {
  std::lock_guard<std::mutex> lk(pool().mu);
  return pool().reserved;
}

}  // namespace secvit::host_pool
