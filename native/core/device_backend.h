// The interface every backend implements: the CPU (native/core/cpu_backend.cpp) and the CUDA
// backend (native/cuda), which is compiled twice from the same sources: by nvcc against the real
// CUDA runtime ("cuda") and by the host compiler against the emulator in native/emu
// ("cuda-emu"). Backends register themselves (register_device_backend, at static
// initialisation); core/ knows none of them by name.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "device.h"

namespace secvit {

class DeviceBackend {
 public:
  virtual ~DeviceBackend() = default;
  virtual Device device() const = 0;
  // True when the backend can run work. When false, `reason` says why in words a user can act on.
  virtual bool available(std::string* reason) = 0;
  // A short description of the device ("NVIDIA H100 80GB HBM3, sm_90", "CPU, avx2-fma, 2 threads").
  virtual std::string description() = 0;
  // Memory from the backend's caching allocator. Never returns null: throws on failure.
  // `write_ready_seq` (may be null), host memory only: the CPU queue position at which the
  // block's previous owner released it (0 for a fresh block); work queued before that may
  // still use the bytes, so a write that does not go through the queue waits for it.
  virtual void* allocate(size_t bytes, uint64_t* write_ready_seq) = 0;
  virtual void release(void* ptr, size_t bytes) = 0;
  // Work on the backend's one stream, in the order it is issued. The device's queue (queue.h)
  // issues everything that touches pooled memory, so that order is program order.
  // copy_to_device returns once `src` may be reused; copy_to_host once the bytes have arrived
  // (after all work issued before it); fill and copy_on_device return at once. On the CPU all
  // four are plain memory operations.
  virtual void copy_to_device(void* dst, const void* src, size_t bytes) = 0;
  virtual void copy_to_host(void* dst, const void* src, size_t bytes) = 0;
  virtual void copy_on_device(void* dst, const void* src, size_t bytes) = 0;
  virtual void fill(void* dst, int byte, size_t bytes) = 0;
  // Waits until the work issued on the stream so far has finished (the CPU has no stream).
  virtual void synchronize() = 0;
  // Bytes held by the caching allocator: in use plus cached for reuse.
  virtual size_t reserved_bytes() = 0;
  // Returns cached, unused blocks to the system.
  virtual void empty_cache() = 0;
  // How many times the allocator had to ask the driver for memory (a cache miss).
  virtual size_t driver_allocations() = 0;
  // Further facts for backends() (name, number), e.g. the CPU's thread count and cache sizes.
  virtual std::vector<std::pair<std::string, double>> details() { return {}; }
};

// Called by a backend's own translation unit at static initialisation.
bool register_device_backend(DeviceBackend* backend);

// Never null. A backend that was not built reports available() == false with the reason.
DeviceBackend* device_backend(Device device);

// Throws an Error naming `what` when `device` cannot be used.
void require_device(Device device, const char* what);

}  // namespace secvit
