#include "device_backend.h"

#include <string>

#include "error.h"

namespace secvit {
namespace {

// Stands in for a backend this addon was built without (the CUDA backend without nvcc).
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
  void* allocate(size_t, uint64_t*) override { fail(); }
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

DeviceBackend*& slot(Device device) {
  static DeviceBackend* backends[3] = {nullptr, nullptr, nullptr};
  return backends[int(device)];
}

}  // namespace

bool register_device_backend(DeviceBackend* backend) {
  slot(backend->device()) = backend;
  return true;
}

DeviceBackend* device_backend(Device device) {
  if (DeviceBackend* b = slot(device)) return b;
  // Never destroyed (dispatcher threads may ask at exit).
  static UnbuiltBackend* unbuilt = new UnbuiltBackend(Device::Cuda, SECVIT_CUDA_UNBUILT_REASON);
  if (device == Device::Cuda) return unbuilt;
  throw_runtime_error("internal error: no ", device_name(device), " backend was registered");
}

void require_device(Device device, const char* what) {
  std::string reason;
  if (!device_backend(device)->available(&reason))
    throw_runtime_error(what, ": device '", device_name(device), "' is not available: ", reason);
}

}  // namespace secvit
