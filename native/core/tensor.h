// The native view of a tensor: a strided view (shape, strides and offset in elements) of one
// storage of one dtype. Handles in JS own one of these each; ops take and return them by value
// (cheap: the storage is shared). Views (reshape, permute, slices) are new Tensors over the same
// storage; kernels say which layouts they accept, and the dispatcher makes the others contiguous.
// C++17: included by the CUDA sources compiled by nvcc.
#pragma once

#include <cstdint>
#include <string>

#include "dtype.h"
#include "shape.h"
#include "storage.h"

namespace secvit {

struct Tensor {
  Shape shape;
  Strides strides;     // in elements
  int64_t offset = 0;  // in elements, from the storage's start
  DType dtype = DType::Float32;
  StorageRef storage;

  int64_t numel() const { return shape_numel(shape); }
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype); }
  size_t ndim() const { return shape.size(); }
  Device device() const { return storage->device(); }
  bool is_contiguous() const;
  // Address of element 0 of the view.
  void* raw() const {
    return static_cast<unsigned char*>(storage->data()) + size_t(offset) * dtype_size(dtype);
  }
  template <typename T>
  T* data() const {
    return static_cast<T*>(raw());
  }
};

// A new contiguous tensor with uninitialised memory (pooled; see storage.h for when its bytes
// may be written).
Tensor empty_tensor(const Shape& shape, DType dtype, Device device);

// A view of `base`'s storage. Throws a RangeError (naming `what`) when the view would reach
// outside the storage or has a negative stride.
Tensor make_view(const Tensor& base, const Shape& shape, const Strides& strides, int64_t offset,
                 const char* what);

// True when `strides` describe `shape` packed with its dims laid out in `order` (outermost
// first; null: row-major), size-1 dims ignored.
bool strides_packed(const Shape& shape, const Strides& strides, const int* order);
// strides_packed in row-major order.
bool strides_contiguous(const Shape& shape, const Strides& strides);

}  // namespace secvit
