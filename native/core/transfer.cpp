#include "transfer.h"

#include <cstring>
#include <vector>

#include "device_backend.h"
#include "op.h"

namespace secvit {
namespace {

// Host memory to `device` memory (a plain copy when `device` is the CPU), and back.
void copy_from_host(Device device, void* dst, const void* src, size_t bytes) {
  device_backend(device)->copy_to_device(dst, src, bytes);
}
void copy_to_host(Device device, void* dst, const void* src, size_t bytes) {
  device_backend(device)->copy_to_host(dst, src, bytes);
}

// A host block may be written directly once the CPU queue has passed its release point.
bool host_write_ready(const Tensor& t) {
  return Queue::of(Device::Cpu).completed() >= t.storage->write_ready_seq();
}

class CallbackTask final : public Task {
 public:
  std::function<void()> work;
  std::function<void(const TaskErrorPtr&)> done;
  void run() override {
    if (work) work();
  }
  void finished(const TaskErrorPtr& error) override {
    if (done) done(error);
  }
};

// `reads`: a storage the work reads (from another device's queue, in to()), so that a borrowed
// array behind it is kept alive until then.
void submit_write(const char* name, const Tensor& dst, std::function<void()> work,
                  const QueueClientPtr& client, const Tensor* reads = nullptr) {
  auto t = std::make_unique<CallbackTask>();
  t->name = name;
  t->client = client;
  t->work = std::move(work);
  t->writes.push_back(dst.storage.ptr());
  if (reads != nullptr) t->reads.push_back(reads->storage.ptr());
  Queue::of(dst.device()).submit(std::move(t));
}

}  // namespace

Tensor upload(const void* src, size_t bytes, const Shape& shape, DType dtype, Device device,
              const QueueClientPtr& client) {
  Tensor t = empty_tensor(shape, dtype, device);
  if (bytes == 0) return t;
  if (device == Device::Cpu && host_write_ready(t)) {
    std::memcpy(t.raw(), src, bytes);
    return t;
  }
  // Stage the bytes now (the caller's memory may change once we return); the queue writes them.
  auto staged = std::make_shared<std::vector<unsigned char>>(static_cast<const unsigned char*>(src),
                                                             static_cast<const unsigned char*>(src) + bytes);
  void* dst = t.raw();
  submit_write("tensor", t, [staged, dst, device] {
    copy_from_host(device, dst, staged->data(), staged->size());
  }, client);
  return t;
}

Tensor zeros_tensor(const Shape& shape, DType dtype, Device device, const QueueClientPtr& client) {
  Tensor t = empty_tensor(shape, dtype, device);
  const size_t bytes = t.nbytes();
  if (bytes == 0) return t;
  if (device == Device::Cpu && host_write_ready(t)) {
    std::memset(t.raw(), 0, bytes);
    return t;
  }
  void* dst = t.raw();
  submit_write("zeros", t, [dst, bytes, device] { device_backend(device)->fill(dst, 0, bytes); }, client);
  return t;
}

Tensor packed(const Tensor& src, const QueueClientPtr& client) {
  return src.is_contiguous() ? src : copy_contiguous(src, src.dtype, client);
}

Tensor to_device(const Tensor& src_view, Device device, const QueueClientPtr& client) {
  const Device from = src_view.device();
  if (from == device) return copy_contiguous(src_view, src_view.dtype, client);
  if (from != Device::Cpu && device != Device::Cpu)  // between two device backends: via the host
    return to_device(to_device(src_view, Device::Cpu, client), device, client);
  const Tensor src = packed(src_view, client);
  Tensor out = empty_tensor(src.shape, src.dtype, device);
  const size_t bytes = src.nbytes();
  // The task runs on the destination's queue and waits there for the source's producer on the
  // other queue (a task only ever waits for work queued before it, so the two queues cannot
  // deadlock). It owns `src`, so the source block is not reused before the copy has read it.
  void* dst = out.raw();
  submit_write("to", out, [src, dst, bytes, from, device] {
    Queue::of(from).wait_ready(*src.storage);
    if (bytes == 0) return;
    if (device == Device::Cpu) copy_to_host(from, dst, src.raw(), bytes);
    else copy_from_host(device, dst, src.raw(), bytes);
  }, client, &src);
  return out;
}

void read_sync(const Tensor& src, void* dst) {
  Queue::of(src.device()).wait_ready(*src.storage);
  const size_t n = src.nbytes();
  if (n != 0) copy_to_host(src.device(), dst, src.raw(), n);
}

std::unique_ptr<Task> make_read_task(const Tensor& src, void* dst,
                                     std::function<void(const TaskErrorPtr&)> done) {
  auto t = std::make_unique<CallbackTask>();
  t->name = "data";
  const size_t n = src.nbytes();
  const Device device = src.device();
  Storage* s = src.storage.get();
  const size_t offset = size_t(src.offset) * dtype_size(src.dtype);
  t->work = [s, offset, dst, n, device] {
    if (n != 0) copy_to_host(device, dst, static_cast<const unsigned char*>(s->data()) + offset, n);
  };
  t->done = std::move(done);
  t->reads.push_back(src.storage.ptr());
  return t;
}

std::unique_ptr<Task> make_notify_task(const Tensor& tensor, std::function<void(const TaskErrorPtr&)> done) {
  auto t = std::make_unique<CallbackTask>();
  t->name = "to";
  t->done = std::move(done);
  t->reads.push_back(tensor.storage.ptr());
  return t;
}

}  // namespace secvit
