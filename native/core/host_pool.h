// The CPU's caching allocator, with stream-ordered reuse (see storage.h): a released block is
// handed out again at once, tagged with the CPU queue position at which it was released, so
// that whoever writes it without going through the queue can wait for that position first. The
// CPU dispatcher, allocating while it runs task t, takes only blocks released before t was
// queued (Queue::running_seq).
//
// Requests under 64 KiB: 64-byte aligned blocks in 64-byte size classes, a cached block reused
// when it wastes at most a quarter of itself. From 64 KiB: page-aligned blocks carved from
// segments, best fit, split and merged with free neighbours (host_pool.cpp says why). The cache
// is trimmed to SECVIT_CPU_CACHE_MB of idle memory (default: 256 MiB, or the most memory in use
// at once when that is more, so that a training loop's working set stays cached), freeing only
// small blocks and wholly free segments whose release the queue has passed.
#pragma once

#include <cstddef>
#include <cstdint>

namespace secvit {

struct HostBlock {
  void* data;
  uint64_t release_seq;  // 0 for a fresh block
};

namespace host_pool {
HostBlock allocate(size_t bytes);
// `release_seq`: the CPU queue's last submitted sequence number at the time of release.
void release(void* data, size_t bytes, uint64_t release_seq);
// Frees every cached block (waits for the CPU queue first).
void empty_cache();
size_t cached_bytes();
size_t reserved_bytes();  // in use + cached
}  // namespace host_pool

}  // namespace secvit
