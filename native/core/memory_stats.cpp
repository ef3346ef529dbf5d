#include "memory_stats.h"

#include <atomic>

namespace secvit::memory_stats {
namespace {

std::atomic<int64_t> g_tensors{0};
std::atomic<int64_t> g_gc_released{0};
std::atomic<int64_t> g_host{0};
std::atomic<int64_t> g_device{0};
std::atomic<int64_t> g_peak_host{0};
std::atomic<int64_t> g_peak_device{0};
std::atomic<int64_t> g_external_delta{0};

void raise_peak(std::atomic<int64_t>& peak, int64_t value) {
  int64_t seen = peak.load(std::memory_order_relaxed);
  while (value > seen && !peak.compare_exchange_weak(seen, value, std::memory_order_relaxed)) {
  }
}

}  // namespace

void tensor_created() { g_tensors.fetch_add(1, std::memory_order_relaxed); }
void tensor_released() { g_tensors.fetch_sub(1, std::memory_order_relaxed); }
void tensor_gc_released() { g_gc_released.fetch_add(1, std::memory_order_relaxed); }

void host_acquired(size_t bytes) {
  const int64_t now = g_host.fetch_add(int64_t(bytes), std::memory_order_relaxed) + int64_t(bytes);
  raise_peak(g_peak_host, now);
}

void host_released(size_t bytes) { g_host.fetch_sub(int64_t(bytes), std::memory_order_relaxed); }

void external_acquired(size_t bytes) {
  g_external_delta.fetch_add(int64_t(bytes), std::memory_order_relaxed);
}

void external_released(size_t bytes) {
  g_external_delta.fetch_sub(int64_t(bytes), std::memory_order_relaxed);
}

void device_acquired(size_t bytes) {
  const int64_t now =
      g_device.fetch_add(int64_t(bytes), std::memory_order_relaxed) + int64_t(bytes);
  raise_peak(g_peak_device, now);
}

void device_released(size_t bytes) { g_device.fetch_sub(int64_t(bytes), std::memory_order_relaxed); }

MemorySnapshot snapshot() {
  return MemorySnapshot{g_tensors.load(), g_host.load(), g_device.load(), g_peak_host.load(),
                        g_peak_device.load(), g_gc_released.load()};
}

void reset_peaks() {
  g_peak_host.store(g_host.load());
  g_peak_device.store(g_device.load());
}

int64_t take_external_delta() { return g_external_delta.exchange(0); }

}  // namespace secvit::memory_stats
