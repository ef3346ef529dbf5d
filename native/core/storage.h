// A block of tensor memory on one device. Shared (std::shared_ptr) between the tensor handles
// and any pending native call that uses it, so disposing a tensor never frees memory under a
// running kernel: the bytes go when the last holder lets go.
#pragma once

#include <cstddef>
#include <memory>

#include "device.h"

namespace secvit {

class Storage {
 public:
  // Owned memory: 64-byte aligned host memory, or device memory from the caching allocator.
  static std::shared_ptr<Storage> allocate(Device device, size_t bytes);
  // Borrowed host memory (a JS TypedArray's bytes). The caller keeps the owner alive.
  static std::shared_ptr<Storage> wrap_host(void* data, size_t bytes);

  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }
  bool owned() const { return owned_; }

 private:
  Storage(Device device, void* data, size_t bytes, bool owned)
      : device_(device), data_(data), bytes_(bytes), owned_(owned) {}

  Device device_;
  void* data_;
  size_t bytes_;
  bool owned_;
};

using StoragePtr = std::shared_ptr<Storage>;

}  // namespace secvit
