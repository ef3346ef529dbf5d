// Scratch device memory for one task, from the backend's caching allocator (no cudaMalloc per
// op). Taken on the dispatcher while the task runs, so only from blocks released before the task
// was queued (a block whose last owner let go later may still be read by tasks queued between
// the two, which have not run: Queue::running_seq). Released when the task's host code returns,
// tagged with the task's own position: all of secvit's device work is issued in queue order on
// one stream, so the next task's kernels are ordered after the ones using it now. Under
// SECVIT_POISON=1 the block is filled with 0xFF bytes first, also when it is a reused one, so a
// kernel that reads scratch it never wrote fails its test.
#pragma once

#include <cstddef>

#include "../core/queue.h"
#include "cuda_backend.h"
#include "cuda_compat.h"

namespace secvit {
namespace SV_CUDA_NS {

class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t bytes) : bytes_(bytes) {
    if (bytes_ > 0) {
      ptr_ = backend()->allocate(bytes_, nullptr);
      if (poison_enabled()) backend()->fill(ptr_, 0xFF, bytes_);
    }
  }
  ~DeviceBuffer() {
    if (ptr_ != nullptr) release_scratch(ptr_);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }

 private:
  size_t bytes_;
  void* ptr_ = nullptr;
};

}  // namespace SV_CUDA_NS
}  // namespace secvit
