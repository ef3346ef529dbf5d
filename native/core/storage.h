// A block of tensor memory on one device, and who may use it when.
//
// Two kinds of holders:
//   - owners (StorageRef: tensor handles in JS, views, readers, copies in flight). While a
//     storage has owners its block is theirs.
//   - queued tasks (std::shared_ptr<Storage>): they keep the Storage object (its pointer, its
//     error state) alive, but not the block.
// When the last owner lets go, the block goes back to its device's allocator *at once*, while
// tasks queued earlier may still read or write it. That is safe because every use of pooled
// memory happens on the device's in-order queue: whoever gets the block next can only reach it
// through work queued later (stream-ordered reuse, as PyTorch's caching allocator and
// cudaMallocAsync do). The exception is memory a kernel takes while its task runs (scratch): its
// program point is the task's queue position, which is earlier than the release, so allocators
// give a dispatcher only blocks released before the running task was queued (Queue::running_seq).
// So enqueuing a whole forward pass never holds more memory than the
// program holds in program order, and memory() stays exact.
//
// Borrowed host memory (a JS TypedArray's bytes, zero-copy) is never reused by an allocator; the
// JS side keeps the array alive until no queued task uses it (pending_uses, idle hook).
// C++17: included by the CUDA sources compiled by nvcc.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "device.h"
#include "error.h"

namespace secvit {

// A failure inside a queued kernel, carried by the outputs of that task and of everything
// computed from them, until something reads one of them.
struct TaskError {
  ErrorKind kind;
  std::string message;
};
using TaskErrorPtr = std::shared_ptr<const TaskError>;

class Storage {
 public:
  // Owned memory from the device's allocator (host: 64-byte aligned). The block may still be in
  // use by tasks queued before it was released; see write_ready_seq().
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

  // ---- ownership (StorageRef) ----------------------------------------------------------------
  void add_owner() { owners_.fetch_add(1, std::memory_order_relaxed); }
  void drop_owner();  // the last one returns the block (owned) and updates memory()

  // ---- queue state ---------------------------------------------------------------------------
  // The sequence number, on this device's queue, of the task that writes this storage's
  // contents (0: written already, nothing to wait for).
  uint64_t ready_seq() const { return ready_seq_.load(std::memory_order_acquire); }
  void set_ready_seq(uint64_t s) { ready_seq_.store(s, std::memory_order_release); }
  // Host blocks only: the queue position at which the block's previous owner released it. Work
  // queued before that may still use the bytes; a direct (unqueued) write is safe once the CPU
  // queue has completed it.
  uint64_t write_ready_seq() const { return write_ready_seq_; }

  // Set by the queue before it reports the producing task complete; read after waiting for it.
  void set_error(TaskErrorPtr e);
  TaskErrorPtr error() const;

  // Queued tasks using this storage (counted only for borrowed memory, whose JS owner must
  // outlive them).
  void add_pending_use() { pending_.fetch_add(1, std::memory_order_acq_rel); }
  void end_pending_use();
  int pending_uses() const { return pending_.load(std::memory_order_acquire); }
  // Runs `hook` (on whatever thread) once no queued task uses the storage any more: at once if
  // none does now. One hook at a time.
  void when_idle(std::function<void()> hook);

 private:
  Storage(Device device, void* data, size_t bytes, bool owned)
      : device_(device), data_(data), bytes_(bytes), owned_(owned) {}
  void release_block();

  Device device_;
  void* data_;
  size_t bytes_;
  bool owned_;
  bool block_released_ = false;
  uint64_t write_ready_seq_ = 0;
  std::atomic<int> owners_{0};
  std::atomic<uint64_t> ready_seq_{0};
  std::atomic<int> pending_{0};
  mutable std::mutex mu_;  // error_, idle_hook_
  TaskErrorPtr error_;
  std::function<void()> idle_hook_;
};

using StoragePtr = std::shared_ptr<Storage>;

// An owning reference: what tensors hold. Copies add an owner; the last one gone releases the
// block (stream-ordered).
class StorageRef {
 public:
  StorageRef() = default;
  explicit StorageRef(StoragePtr s) : s_(std::move(s)) {
    if (s_) s_->add_owner();
  }
  StorageRef(const StorageRef& o) : s_(o.s_) {
    if (s_) s_->add_owner();
  }
  StorageRef(StorageRef&& o) noexcept : s_(std::move(o.s_)) {}
  StorageRef& operator=(StorageRef o) noexcept {
    std::swap(s_, o.s_);
    return *this;
  }
  ~StorageRef() { reset(); }
  void reset() {
    if (s_) {
      s_->drop_owner();
      s_.reset();
    }
  }
  Storage* operator->() const { return s_.get(); }
  Storage& operator*() const { return *s_; }
  Storage* get() const { return s_.get(); }
  const StoragePtr& ptr() const { return s_; }
  explicit operator bool() const { return bool(s_); }

 private:
  StoragePtr s_;
};

}  // namespace secvit
