#include "queue.h"

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <new>

#include "device_backend.h"
#include "spin.h"

namespace secvit {

bool poison_enabled() {
  static const bool on = [] {
    const char* env = std::getenv("SECVIT_POISON");
    return env != nullptr && env[0] == '1';
  }();
  return on;
}

namespace {
// What the calling thread is running as a dispatcher (see running_seq).
thread_local Device t_running_device = Device::Cpu;
thread_local uint64_t t_running_seq = 0;
thread_local bool t_dispatcher = false;  // any queue's dispatcher thread

struct RunningScope {
  RunningScope(Device d, uint64_t seq) {
    t_running_device = d;
    t_running_seq = seq;
  }
  ~RunningScope() { t_running_seq = 0; }
};

struct Profile {
  std::atomic<bool> on{false};
  std::mutex mu;
  std::map<std::pair<int, std::string>, std::pair<uint64_t, double>> sums;
};
Profile& profile() {
  static Profile* p = new Profile();  // never destroyed: dispatchers may still record at exit
  return *p;
}
}  // namespace

void set_op_profiling(bool on) {
  Profile& p = profile();
  std::lock_guard<std::mutex> lk(p.mu);
  if (on) p.sums.clear();
  p.on.store(on, std::memory_order_release);
}

std::vector<OpProfileEntry> op_profile() {
  Profile& p = profile();
  std::lock_guard<std::mutex> lk(p.mu);
  std::vector<OpProfileEntry> out;
  for (const auto& [key, v] : p.sums) out.push_back({Device(key.first), key.second, v.first, v.second});
  return out;
}

uint64_t Queue::running_seq(Device device) {
  return t_running_seq != 0 && t_running_device == device ? t_running_seq : 0;
}

Queue& Queue::of(Device device) {
  // Never destroyed: their dispatcher threads outlive static destruction at exit.
  static Queue* queues[kNumDevices] = {new Queue(Device::Cpu), new Queue(Device::Cuda),
                                       new Queue(Device::CudaEmu)};
  return *queues[int(device)];
}

void Queue::start_locked() {
  if (started_) return;
  std::thread t([this] { dispatcher_main(); });
  thread_id_.store(t.get_id());
  t.detach();
  started_ = true;
}

uint64_t Queue::submit(std::unique_ptr<Task> task) {
  uint64_t seq;
  {
    std::unique_lock<std::mutex> lk(mu_);
    start_locked();
    if (!t_dispatcher && pending_.size() >= kMaxQueued) {
      ++space_waiters_;
      if (sleeping_) work_cv_.notify_one();
      space_cv_.wait(lk, [&] { return pending_.size() < kMaxQueued / 2; });
      --space_waiters_;
    }
    seq = submitted_.load(std::memory_order_relaxed) + 1;
    task->seq = seq;
    for (const StoragePtr& s : task->writes) s->set_ready_seq(seq);
    for (const StoragePtr& s : task->updates) s->set_ready_seq(seq);
    for (const StoragePtr& s : task->reads)
      if (!s->owned()) s->add_pending_use();
    if (task->client) task->client->last_seq[int(device_)].store(seq, std::memory_order_release);
    pending_.push_back(std::move(task));
    queued_.store(pending_.size(), std::memory_order_release);
    submitted_.store(seq, std::memory_order_release);
    if (!sleeping_) return seq;
  }
  work_cv_.notify_one();
  return seq;
}

void Queue::wait(uint64_t seq) {
  if (completed() >= seq) return;
  if (on_dispatcher())
    throw_runtime_error("internal error: a ", device_name(device_),
                        " task waited for its own queue");
  // Small ops finish within microseconds: poll a little before sleeping on the condition.
  if (spin_until([&] { return completed() >= seq; }, 32)) return;
  std::unique_lock<std::mutex> lk(mu_);
  done_cv_.wait(lk, [&] { return completed_.load(std::memory_order_acquire) >= seq; });
}

void Queue::wait_ready(const Storage& storage) {
  wait(storage.ready_seq());
  if (TaskErrorPtr e = storage.error()) throw Error(ErrorKind::Runtime, e->message);
}

void Queue::wait_for_client(const QueueClient& client) {
  wait(client.last_seq[int(device_)].load(std::memory_order_acquire));
}

void Queue::dispatcher_main() {
  t_dispatcher = true;
  for (;;) {
    // Poll briefly before sleeping: the next op of a chain usually arrives within microseconds.
    spin_until([&] { return queued_.load(std::memory_order_acquire) != 0; }, 400);
    std::unique_ptr<Task> task;
    {
      std::unique_lock<std::mutex> lk(mu_);
      if (pending_.empty()) {
        sleeping_ = true;
        work_cv_.wait(lk, [&] { return !pending_.empty(); });
        sleeping_ = false;
      }
      task = std::move(pending_.front());
      pending_.pop_front();
      queued_.store(pending_.size(), std::memory_order_release);
      if (space_waiters_ != 0 && pending_.size() < kMaxQueued / 2) space_cv_.notify_all();
    }
    const TaskErrorPtr error = execute(*task);
    task->finished(error);
    const uint64_t seq = task->seq;
    // Storages are released here, on the dispatcher, before the task counts as complete: a
    // waiter that resumes finds memory() already settled.
    task.reset();
    {
      std::lock_guard<std::mutex> lk(mu_);
      completed_.store(seq, std::memory_order_release);
    }
    done_cv_.notify_all();
  }
}

namespace {
TaskErrorPtr make_error(const char* op, ErrorKind kind, const char* what) {
  std::string msg = what;
  const size_t n = std::strlen(op);
  if (msg.compare(0, n, op) != 0 || msg.size() <= n || msg[n] != ':') msg = std::string(op) + ": " + msg;
  return std::make_shared<const TaskError>(TaskError{kind, std::move(msg)});
}
}  // namespace

TaskErrorPtr Queue::execute(Task& task) {
  TaskErrorPtr error;
  if (task.client && task.client->cancelled.load(std::memory_order_acquire)) {
    error = std::make_shared<const TaskError>(TaskError{
        ErrorKind::Runtime,
        std::string(task.name) + ": cancelled: the JavaScript environment that queued it has ended"});
  }
  if (!error) {
    for (const StoragePtr& s : task.reads) {
      if (TaskErrorPtr e = s->error()) {
        error = e;
        break;
      }
    }
  }
  if (!error) {
    const RunningScope running(device_, task.seq);
    try {
      if (poison_enabled()) {
        for (const StoragePtr& s : task.writes) {
          if (s->bytes() == 0) continue;
          device_backend(s->device())->fill(s->data(), 0xFF, s->bytes());
        }
      }
      if (profile().on.load(std::memory_order_relaxed)) {
        const auto t0 = std::chrono::steady_clock::now();
        task.run();
        const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        Profile& p = profile();
        std::lock_guard<std::mutex> lk(p.mu);
        auto& v = p.sums[{int(device_), task.label != nullptr ? task.label : task.name}];
        ++v.first;
        v.second += ms;
      } else {
        task.run();
      }
    } catch (const Error& e) {
      error = make_error(task.name, e.kind(), e.what());
    } catch (const std::bad_alloc&) {
      error = make_error(task.name, ErrorKind::Runtime, "out of host memory");
    } catch (const std::exception& e) {
      error = make_error(task.name, ErrorKind::Runtime, e.what());
    } catch (...) {
      error = make_error(task.name, ErrorKind::Runtime, "unknown failure");
    }
  }
  if (error) {
    for (const StoragePtr& s : task.writes) s->set_error(error);
    for (const StoragePtr& s : task.updates) s->set_error(error);
  }
  for (const StoragePtr& s : task.reads)
    if (!s->owned()) s->end_pending_use();
  return error;
}

}  // namespace secvit
