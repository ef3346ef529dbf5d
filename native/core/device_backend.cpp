#include "device_backend.h"

#include <string>

#include "../cuda/cuda_backend.h"
#include "error.h"

namespace secvit {
namespace {

// Stands in for the CUDA backend when the addon was built without it.
class UnbuiltBackend final : public DeviceBackend {
 public:
  explicit UnbuiltBackend(Device device, std::string reason)
      : device_(device), reason_(std::move(reason)) {}
  Device device() const override { return device_; }
  bool available(std::string* reason) override {
    if (reason != nullptr) *reason = reason_;
    return false;
  }
  std::string description() override { return ""; }
  void* allocate(size_t) override { fail(); }
  void release(void*, size_t) override {}
  void copy_to_device(void*, const void*, size_t) override { fail(); }
  void copy_to_host(void*, const void*, size_t) override { fail(); }
  void copy_on_device(void*, const void*, size_t) override { fail(); }
  void fill(void*, int, size_t) override { fail(); }
  void synchronize() override {}
  size_t reserved_bytes() override { return 0; }
  void empty_cache() override {}
  size_t driver_allocations() override { return 0; }

 private:
  [[noreturn]] void fail() { throw_runtime_error(device_name(device_), " is not available: ", reason_); }
  Device device_;
  std::string reason_;
};

}  // namespace

DeviceBackend* device_backend(Device device) {
  switch (device) {
    case Device::Cuda: {
#if defined(SECVIT_HAVE_CUDA)
      return cuda_impl::backend();
#else
      static UnbuiltBackend unbuilt(Device::Cuda, SECVIT_CUDA_UNBUILT_REASON);
      return &unbuilt;
#endif
    }
    case Device::CudaEmu:
      return cuda_emu_impl::backend();
    case Device::Cpu:
      break;
  }
  throw_runtime_error("device_backend: the cpu has no device backend");
}

void require_device(Device device, const char* what) {
  if (device == Device::Cpu) return;
  std::string reason;
  if (!device_backend(device)->available(&reason))
    throw_runtime_error(what, ": device '", device_name(device), "' is not available: ", reason);
}

}  // namespace secvit
