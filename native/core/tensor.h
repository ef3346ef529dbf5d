// The native view of a tensor: a dense, row-major block of one dtype. Handles in JS own one of
// these each; ops take and return them by value (cheap: the storage is shared).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dtype.h"
#include "storage.h"

namespace secvit {

using Shape = std::vector<int64_t>;

inline int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string shape_string(const Shape& shape);

struct Tensor {
  Shape shape;
  DType dtype = DType::Float32;
  StoragePtr storage;

  int64_t numel() const { return shape_numel(shape); }
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype); }
  Device device() const { return storage->device(); }
  template <typename T>
  T* data() const {
    return static_cast<T*>(storage->data());
  }
};

// A new tensor with uninitialised memory.
Tensor empty_tensor(const Shape& shape, DType dtype, Device device);

// A copy of `src` on `device` (any direction: host<->device, device<->device).
Tensor copy_to(const Tensor& src, Device device);

}  // namespace secvit
