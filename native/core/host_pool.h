// The CPU's caching allocator, with stream-ordered reuse (see storage.h): a released block is
// handed out again at once, tagged with the CPU queue position at which it was released, so
// that whoever writes it without going through the queue can wait for that position first. The
// CPU dispatcher, allocating while it runs task t, takes only blocks released before t was
// queued (Queue::running_seq).
//
// Blocks are 64-byte aligned, sizes rounded (64 B under 64 KiB, 4 KiB under 4 MiB, 64 KiB
// above) so that nearly equal requests share blocks; a cached block is reused only when it
// wastes at most a quarter of itself. The cache is trimmed to SECVIT_CPU_CACHE_MB (default 256
// MiB) of idle blocks, freeing only blocks whose release the queue has passed.
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
