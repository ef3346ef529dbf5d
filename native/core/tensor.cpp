#include "tensor.h"

#include <cstring>

#include "device_backend.h"

namespace secvit {

std::string shape_string(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ",";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

Tensor empty_tensor(const Shape& shape, DType dtype, Device device) {
  Tensor t;
  t.shape = shape;
  t.dtype = dtype;
  t.storage = Storage::allocate(device, t.nbytes());
  return t;
}

Tensor copy_to(const Tensor& src, Device device) {
  Tensor dst = empty_tensor(src.shape, src.dtype, device);
  const size_t n = src.nbytes();
  if (n == 0) return dst;
  const Device from = src.device();
  if (from == Device::Cpu && device == Device::Cpu) {
    std::memcpy(dst.storage->data(), src.storage->data(), n);
  } else if (from == Device::Cpu) {
    device_backend(device)->copy_to_device(dst.storage->data(), src.storage->data(), n);
  } else if (device == Device::Cpu) {
    device_backend(from)->copy_to_host(dst.storage->data(), src.storage->data(), n);
  } else if (from == device) {
    device_backend(device)->copy_on_device(dst.storage->data(), src.storage->data(), n);
  } else {
    // Between two different device backends: stage through the host.
    Tensor staged = copy_to(src, Device::Cpu);
    device_backend(device)->copy_to_device(dst.storage->data(), staged.storage->data(), n);
  }
  return dst;
}

}  // namespace secvit
