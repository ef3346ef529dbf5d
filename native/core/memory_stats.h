// Exact process-wide counters behind secvit.memory(). Tensor bytes are counted while a storage
// has owners (a live tensor, a view, a read in flight): from its creation until its last owner
// lets go, which may be after dispose() when a read still holds it. Blocks held by queued work
// after that belong to the allocator's cache, not to tensors.
//
// Host memory that the addon itself allocated (the CPU pool's blocks) is also accumulated in an
// external delta until a JS thread reports it to V8 (AdjustExternalMemory may only be called on
// a JS thread).
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
  int64_t gc_released;  // tensors whose JS handle the garbage collector released live
};

namespace memory_stats {

void tensor_created();
void tensor_released();
// A live tensor's JS handle was garbage collected (it was never disposed).
void tensor_gc_released();
void host_acquired(size_t bytes);
void host_released(size_t bytes);
void device_acquired(size_t bytes);
void device_released(size_t bytes);
// Host bytes the addon allocated (+) or freed (-) itself, to be reported to V8.
void external_acquired(size_t bytes);
void external_released(size_t bytes);
MemorySnapshot snapshot();
// Resets the peaks to the current values (memory({ resetPeak: true })).
void reset_peaks();
// Returns and clears the host bytes allocated (+) or freed (-) since the last call.
int64_t take_external_delta();

}  // namespace memory_stats
}  // namespace secvit
