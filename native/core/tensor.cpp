#include "tensor.h"

namespace secvit {

std::string shape_string(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ",";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

bool strides_packed(const Shape& shape, const Strides& strides, const int* order) {
  int64_t expect = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    const size_t d = order != nullptr ? size_t(order[i]) : i;
    if (shape[d] == 1) continue;
    if (strides[d] != expect) return false;
    expect *= shape[d];
  }
  return true;
}

bool strides_contiguous(const Shape& shape, const Strides& strides) {
  return strides_packed(shape, strides, nullptr);
}

bool Tensor::is_contiguous() const { return strides_contiguous(shape, strides); }

Tensor empty_tensor(const Shape& shape, DType dtype, Device device) {
  const int64_t n = checked_numel(shape, "tensor size");
  Tensor t;
  t.shape = shape;
  t.strides = contiguous_strides(shape);
  t.dtype = dtype;
  t.storage = StorageRef(Storage::allocate(device, size_t(n) * dtype_size(dtype)));
  return t;
}

Tensor make_view(const Tensor& base, const Shape& shape, const Strides& strides, int64_t offset,
                 const char* what) {
  if (strides.size() != shape.size())
    throw_range_error(what, ": ", shape.size(), " sizes but ", strides.size(), " strides");
  const int64_t n = checked_numel(shape, what);
  const int64_t capacity = int64_t(base.storage->bytes() / dtype_size(base.dtype));
  if (offset < 0) throw_range_error(what, ": negative offset ", offset);
  int64_t last = offset;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (strides[i] < 0) throw_range_error(what, ": negative stride ", strides[i]);
    if (shape[i] > 0) last = checked_add(last, checked_mul(shape[i] - 1, strides[i], what), what);
  }
  if (n > 0 && last >= capacity)
    throw_range_error(what, ": the view ", shape_string(shape), " (strides ", shape_string(strides),
                      ", offset ", offset, ") reaches element ", last, " of a storage of ",
                      capacity);
  Tensor t;
  t.shape = shape;
  t.strides = strides;
  t.offset = offset;
  t.dtype = base.dtype;
  t.storage = base.storage;
  return t;
}

}  // namespace secvit
