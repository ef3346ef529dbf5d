#include "storage.h"

#include "device_backend.h"
#include "memory_stats.h"
#include "queue.h"

namespace secvit {

std::shared_ptr<Storage> Storage::allocate(Device device, size_t bytes) {
  uint64_t write_ready = 0;
  void* data = device_backend(device)->allocate(bytes, &write_ready);
  std::shared_ptr<Storage> s(new Storage(device, data, bytes, /*owned=*/true));
  s->write_ready_seq_ = write_ready;
  if (device == Device::Cpu) memory_stats::host_acquired(bytes);
  else memory_stats::device_acquired(bytes);
  return s;
}

std::shared_ptr<Storage> Storage::wrap_host(void* data, size_t bytes) {
  memory_stats::host_acquired(bytes);
  return std::shared_ptr<Storage>(new Storage(Device::Cpu, data, bytes, /*owned=*/false));
}

void Storage::drop_owner() {
  if (owners_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  release_block();
}

void Storage::release_block() {
  if (block_released_) return;
  block_released_ = true;
  if (device_ == Device::Cpu) memory_stats::host_released(bytes_);
  else memory_stats::device_released(bytes_);
  if (owned_) device_backend(device_)->release(data_, bytes_);
}

Storage::~Storage() {
  // A storage that never had an owner (or lost the last one already) has nothing else to do.
  if (owners_.load(std::memory_order_acquire) == 0) release_block();
}

void Storage::set_error(TaskErrorPtr e) {
  std::lock_guard<std::mutex> lk(mu_);
  error_ = std::move(e);
}

TaskErrorPtr Storage::error() const {
  std::lock_guard<std::mutex> lk(mu_);
  return error_;
}

void Storage::end_pending_use() {
  if (pending_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  std::function<void()> hook;
  {
    std::lock_guard<std::mutex> lk(mu_);
    hook.swap(idle_hook_);
  }
  if (hook) hook();
}

void Storage::when_idle(std::function<void()> hook) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (pending_.load(std::memory_order_acquire) != 0) {
      idle_hook_ = std::move(hook);
      return;
    }
  }
  hook();
}

}  // namespace secvit
