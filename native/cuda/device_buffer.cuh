// Scratch device memory for one task, from the backend's caching allocator (no cudaMalloc per
// op). Released when the task's host code returns: safe because all of secvit's device work is
// issued in queue order on one stream, so a later user of the block is ordered after the
// kernels using it now. Under SECVIT_POISON=1 the block is filled with 0xFF bytes first, also
// when it is a reused one, so a kernel that reads scratch it never wrote fails its test.
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
      ptr_ = backend()->allocate(bytes_);
      if (poison_enabled()) backend()->fill(ptr_, 0xFF, bytes_);
    }
  }
  ~DeviceBuffer() {
    if (ptr_ != nullptr) backend()->release(ptr_, bytes_);
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
