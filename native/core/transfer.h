// Moving bytes between JS memory, host tensors and device tensors, in queue order (see
// storage.h and queue.h for why every write to pooled memory goes through a queue).
#pragma once

#include <cstddef>

#include "queue.h"
#include "tensor.h"

namespace secvit {

// A new tensor holding a copy of `bytes` bytes at `src` (copied before this returns).
Tensor upload(const void* src, size_t bytes, const Shape& shape, DType dtype, Device device,
              const QueueClientPtr& client);
// A new zero-filled tensor.
Tensor zeros_tensor(const Shape& shape, DType dtype, Device device, const QueueClientPtr& client);
// A packed copy of `src` on `device` (also when it is src's device). Queued; not waited for.
Tensor to_device(const Tensor& src, Device device, const QueueClientPtr& client);
// `src` packed (itself when it is already contiguous), queued on its device.
Tensor packed(const Tensor& src, const QueueClientPtr& client);
// Waits for `src` (packed) and copies its bytes to `dst`. Throws the producer's error.
void read_sync(const Tensor& src, void* dst);

// A task that copies packed `src` to host memory `dst` on src's queue, then calls `done`.
std::unique_ptr<Task> make_read_task(const Tensor& src, void* dst,
                                     std::function<void(const TaskErrorPtr&)> done);
// A task that only reports (through `done`) whether `t` was computed without error.
std::unique_ptr<Task> make_notify_task(const Tensor& t, std::function<void(const TaskErrorPtr&)> done);

}  // namespace secvit
