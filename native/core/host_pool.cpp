#include "host_pool.h"

#include <cstdlib>
#include <map>
#include <mutex>

#include "error.h"
#include "memory_stats.h"
#include "queue.h"

namespace secvit::host_pool {
namespace {

size_t round_size(size_t bytes) {
  if (bytes == 0) bytes = 1;
  const size_t r = bytes < (size_t(64) << 10) ? 64 : (bytes < (size_t(4) << 20) ? 4096 : 65536);
  return (bytes + r - 1) / r * r;
}

size_t cache_limit() {
  static const size_t limit = [] {
    const char* env = std::getenv("SECVIT_CPU_CACHE_MB");
    if (env != nullptr) {
      const long long v = std::atoll(env);
      if (v >= 0) return size_t(v) << 20;
    }
    return size_t(256) << 20;
  }();
  return limit;
}

struct Cached {
  void* data;
  uint64_t release_seq;
};

struct Pool {
  std::mutex mu;
  std::multimap<size_t, Cached> free;  // rounded size -> block
  size_t cached = 0;
  size_t reserved = 0;
};

Pool& pool() {
  static Pool* p = new Pool();  // never destroyed: queued work may release blocks at exit
  return *p;
}

// Frees idle blocks whose release the CPU queue has passed until the cache fits `limit`.
void trim_locked(Pool& p, size_t limit, uint64_t completed) {
  for (auto it = p.free.begin(); it != p.free.end() && p.cached > limit;) {
    if (it->second.release_seq <= completed) {
      std::free(it->second.data);
      p.cached -= it->first;
      p.reserved -= it->first;
      memory_stats::external_released(it->first);
      it = p.free.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace

HostBlock allocate(size_t bytes) {
  const size_t size = round_size(bytes);
  Pool& p = pool();
  // On the CPU dispatcher, running task t: only blocks released before t was queued (later
  // ones may still be used by tasks queued after t, which have not run).
  const uint64_t usable_before = Queue::running_seq(Device::Cpu);
  {
    std::lock_guard<std::mutex> lk(p.mu);
    for (auto it = p.free.lower_bound(size); it != p.free.end() && it->first - size <= it->first / 4; ++it) {
      if (!Queue::block_usable(it->second.release_seq, usable_before)) continue;
      HostBlock b{it->second.data, it->second.release_seq};
      p.cached -= it->first;
      p.free.erase(it);
      return b;
    }
  }
  void* data = std::aligned_alloc(64, size);
  if (data == nullptr) {
    // Give back what the cache holds and try once more.
    {
      std::lock_guard<std::mutex> lk(p.mu);
      trim_locked(p, 0, Queue::of(Device::Cpu).completed());
    }
    data = std::aligned_alloc(64, size);
    if (data == nullptr) throw_runtime_error("out of host memory allocating ", bytes, " bytes");
  }
  std::lock_guard<std::mutex> lk(p.mu);
  p.reserved += size;
  memory_stats::external_acquired(size);
  return HostBlock{data, 0};
}

void release(void* data, size_t bytes, uint64_t release_seq) {
  const size_t size = round_size(bytes);
  Pool& p = pool();
  std::lock_guard<std::mutex> lk(p.mu);
  p.free.emplace(size, Cached{data, release_seq});
  p.cached += size;
  if (p.cached > cache_limit()) trim_locked(p, cache_limit(), Queue::of(Device::Cpu).completed());
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
