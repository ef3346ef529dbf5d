// In-order work queues, one per device (cpu, cuda, cuda-emu), each drained by its own
// dispatcher thread. Ops enqueue a Task and return at once; reading a tensor waits for the task
// that writes it.
//
// The CPU dispatcher runs each task's kernel on the process-wide thread pool (it takes part in
// the parallel_for itself). A CUDA dispatcher issues the task's kernels on the backend's one
// stream and moves on, so the stream keeps the queue's order (the emulator's stream executes
// them right there).
//
// Failures: a task whose kernel throws marks every storage it writes with the error; a task
// whose inputs carry an error does not run and passes the error on to its outputs. A read of
// any of them reports it. Nothing is lost and nothing throws on the dispatcher thread.
//
// Back-pressure: a queued task is a few kilobytes (its arguments, parameters and storages), and
// JavaScript can enqueue far faster than kernels run (500 forwards queued without a read held
// 26-67 MB of tasks). Once kMaxQueued tasks wait, a submitting thread that is not a dispatcher
// blocks until the queue has drained to half of that. Dispatchers never wait on JavaScript, so
// this cannot deadlock.
//
// JS environments (the main thread, each worker) are QueueClients. When one is torn down its
// tasks that have not started are skipped, and teardown waits for the one that is running.
// C++17.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "device.h"
#include "storage.h"

namespace secvit {

constexpr int kNumDevices = 3;

class QueueClient {
 public:
  std::atomic<bool> cancelled{false};
  std::atomic<uint64_t> last_seq[kNumDevices] = {};
};
using QueueClientPtr = std::shared_ptr<QueueClient>;

// The storages a task reads or writes: a few, kept inline (no allocation per op).
class StorageList {
 public:
  void push_back(StoragePtr s) {
    if (n_ == kCapacity) throw_runtime_error("internal error: a task uses more than ", kCapacity, " storages");
    v_[n_++] = std::move(s);
  }
  const StoragePtr* begin() const { return v_; }
  const StoragePtr* end() const { return v_ + n_; }
  size_t size() const { return size_t(n_); }

 private:
  static constexpr int kCapacity = 16;
  StoragePtr v_[kCapacity];
  int n_ = 0;
};

class Task {
 public:
  virtual ~Task() = default;
  // The work. May throw secvit::Error (or any std::exception): recorded on `writes`.
  virtual void run() = 0;
  // Called on the dispatcher after run() (or instead of it, when an input carried an error or
  // the client was cancelled) with the outcome: null on success.
  virtual void finished(const TaskErrorPtr& error) { (void)error; }

  const char* name = "?";     // the op, for error messages
  const char* label = nullptr;  // the op profiler's bucket (a string literal); null: name
  QueueClientPtr client;      // null for work not tied to a JS environment
  StorageList reads;
  StorageList writes;
  // Written in place (their contents are read too): ordered like writes, never poisoned.
  StorageList updates;
  uint64_t seq = 0;
};

// A task that runs a callable.
template <typename F>
class FnTask final : public Task {
 public:
  explicit FnTask(F f) : f_(std::move(f)) {}
  void run() override { f_(); }

 private:
  F f_;
};
template <typename F>
std::unique_ptr<Task> make_task(const char* name, F f) {
  auto t = std::make_unique<FnTask<F>>(std::move(f));
  t->name = name;
  return t;
}

class Queue {
 public:
  static constexpr size_t kMaxQueued = 1024;

  // The device's queue; its dispatcher starts with the first task. Never destroyed.
  static Queue& of(Device device);

  // Queues `task` and returns its sequence number (1, 2, ...). Marks the storages it writes as
  // produced by it.
  uint64_t submit(std::unique_ptr<Task> task);
  // Blocks until every task up to `seq` has completed. Not from the dispatcher thread itself.
  void wait(uint64_t seq);
  // Waits for `storage`'s producer and throws its error (which names the failed op), if any.
  void wait_ready(const Storage& storage);
  uint64_t submitted() const { return submitted_.load(std::memory_order_acquire); }
  uint64_t completed() const { return completed_.load(std::memory_order_acquire); }
  bool on_dispatcher() const { return std::this_thread::get_id() == thread_id_.load(); }
  // The sequence number of the task that the calling thread is running as `device`'s dispatcher;
  // 0 on any other thread. Allocators use it: a block released (by its last owner) after this
  // task was queued may still be used by tasks queued between the two, which have not run yet,
  // so scratch memory taken while running a task must come from blocks released before it.
  static uint64_t running_seq(Device device);
  // The tag for a block released now, on any thread: the last queued position that may still
  // use it. A dispatcher may hand it out again only while running a later task.
  uint64_t release_seq() const { return submitted(); }
  // Whether a cached block released at `release_seq` may be handed out now; `usable_before` is
  // running_seq() of the allocating thread (0: not a dispatcher, any block will do).
  static bool block_usable(uint64_t release_seq, uint64_t usable_before) {
    return usable_before == 0 || release_seq < usable_before;
  }
  Device device() const { return device_; }

  // Waits for the tasks `client` submitted to this queue; its unstarted ones are skipped once
  // client->cancelled is set.
  void wait_for_client(const QueueClient& client);

 private:
  explicit Queue(Device device) : device_(device) {}
  void start_locked();
  void dispatcher_main();
  TaskErrorPtr execute(Task& task);

  const Device device_;
  std::mutex mu_;
  std::condition_variable work_cv_;
  std::condition_variable done_cv_;
  std::condition_variable space_cv_;  // back-pressure (see above)
  int space_waiters_ = 0;             // guarded by mu_
  std::deque<std::unique_ptr<Task>> pending_;
  std::atomic<uint64_t> submitted_{0};
  std::atomic<uint64_t> completed_{0};
  std::atomic<std::thread::id> thread_id_{};
  bool started_ = false;
  // Guarded by mu_: the dispatcher sleeps on work_cv_ (submit wakes it only then). After a task
  // it first polls `queued_` for a few microseconds, so a stream of small ops costs no wake-ups.
  bool sleeping_ = false;
  std::atomic<size_t> queued_{0};
};

// The op profiler: while on, every queue times each task's run() (wall time on its dispatcher,
// which for a CPU kernel is the whole parallel section; for CUDA, the host-side launch only
// unless the backend synchronises) and sums it by (device, label). Off by default: one relaxed
// load per task.
struct OpProfileEntry {
  Device device;
  std::string label;
  uint64_t calls;
  double ms;
};
void set_op_profiling(bool on);
// The sums since profiling was last turned on.
std::vector<OpProfileEntry> op_profile();

// SECVIT_POISON=1 (the test suite sets it): outputs and scratch memory are filled with 0xFF
// bytes (NaN as float, -1 as int) before a kernel runs, also when a block is reused, so a
// kernel that leaves an element unwritten fails its test.
bool poison_enabled();

}  // namespace secvit
