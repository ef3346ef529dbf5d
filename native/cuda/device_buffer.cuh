// Scratch device memory for one call, from the backend's caching allocator (no cudaMalloc per
// op). Released when the call's host code returns: safe because all of secvit's work is on one
// in-order stream, so a later user of the block is ordered after the kernels using it now.
#pragma once

#include <cstddef>

#include "cuda_backend.h"
#include "cuda_compat.h"

namespace secvit {
namespace SV_CUDA_NS {

class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t bytes) : bytes_(bytes) {
    if (bytes_ > 0) ptr_ = backend()->allocate(bytes_);
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
