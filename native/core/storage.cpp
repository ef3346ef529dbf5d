#include "storage.h"

#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "device_backend.h"
#include "error.h"
#include "memory_stats.h"

namespace secvit {
namespace {
// SECVIT_POISON=1 (set by the test suite): every new tensor starts as 0xFF bytes (NaN for
// floats, -1 for ints), so a kernel that leaves an output element unwritten fails its test.
bool poison_enabled() {
  static const bool on = [] {
    const char* env = std::getenv("SECVIT_POISON");
    return env != nullptr && env[0] == '1';
  }();
  return on;
}
}  // namespace

std::shared_ptr<Storage> Storage::allocate(Device device, size_t bytes) {
  void* data = nullptr;
  if (device == Device::Cpu) {
    // aligned_alloc needs a multiple of the alignment; a zero-byte tensor still gets a block so
    // that data() is never null.
    const size_t rounded = ((bytes + 63) / 64) * 64;
    data = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
    if (data == nullptr) throw_runtime_error("out of host memory allocating ", bytes, " bytes");
    memory_stats::host_acquired(bytes, /*owned=*/true);
    if (poison_enabled()) std::memset(data, 0xFF, bytes);
  } else {
    data = device_backend(device)->allocate(bytes);
    memory_stats::device_acquired(bytes);
    if (poison_enabled() && bytes > 0) {
      std::vector<unsigned char> nan_bytes(bytes, 0xFF);
      device_backend(device)->copy_to_device(data, nan_bytes.data(), bytes);
    }
  }
  return std::shared_ptr<Storage>(new Storage(device, data, bytes, /*owned=*/true));
}

std::shared_ptr<Storage> Storage::wrap_host(void* data, size_t bytes) {
  memory_stats::host_acquired(bytes, /*owned=*/false);
  return std::shared_ptr<Storage>(new Storage(Device::Cpu, data, bytes, /*owned=*/false));
}

Storage::~Storage() {
  if (device_ == Device::Cpu) {
    if (owned_) std::free(data_);
    memory_stats::host_released(bytes_, owned_);
  } else {
    device_backend(device_)->release(data_, bytes_);
    memory_stats::device_released(bytes_);
  }
}

}  // namespace secvit
