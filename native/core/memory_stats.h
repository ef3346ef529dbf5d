// Exact process-wide counters behind secvit.memory(). Bytes are counted when a storage is
// created and when it is actually released, which may be after dispose() when a pending async
// call still holds it. Host bytes that the addon allocated itself are also accumulated in
// `pending_external_delta` until the JS thread reports them to V8 (AdjustExternalMemory may only
// be called on that thread).
#pragma once

#include <cstddef>
#include <cstdint>

namespace secvit {

struct MemorySnapshot {
  int64_t tensors;
  int64_t host_bytes;
  int64_t device_bytes;
  int64_t peak_host_bytes;
  int64_t peak_device_bytes;
};

namespace memory_stats {

void tensor_created();
void tensor_released();
void host_acquired(size_t bytes, bool owned);
void host_released(size_t bytes, bool owned);
void device_acquired(size_t bytes);
void device_released(size_t bytes);
MemorySnapshot snapshot();
// Resets the peaks to the current values (memory({ resetPeak: true })).
void reset_peaks();
// Returns and clears the host bytes allocated (+) or freed (-) since the last call.
int64_t take_external_delta();

}  // namespace memory_stats
}  // namespace secvit
