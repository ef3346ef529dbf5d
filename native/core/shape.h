// Shapes and strides: small fixed-capacity vectors (no heap allocation per op), and the one
// place where sizes are multiplied. Every product of sizes in secvit goes through checked_mul /
// checked_numel, which throw a RangeError naming what was being sized instead of wrapping.
// C++17: included by the CUDA sources compiled by nvcc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "error.h"

namespace secvit {

constexpr int kMaxDims = 8;
// Upper bound of any tensor's element count (and of every intermediate size product): 2^40
// elements is 4 TiB of float32, beyond any device; it keeps every byte count far from 2^63.
constexpr int64_t kMaxElements = int64_t(1) << 40;

class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<int64_t> dims) {
    for (int64_t d : dims) push_back(d);
  }
  template <typename It>
  Shape(It begin, It end) {
    for (; begin != end; ++begin) push_back(int64_t(*begin));
  }
  // Copies only the dims in use (shapes are copied on every op call).
  Shape(const Shape& o) : n_(o.n_) {
    for (int i = 0; i < n_; ++i) d_[i] = o.d_[i];
  }
  Shape& operator=(const Shape& o) {
    n_ = o.n_;
    for (int i = 0; i < n_; ++i) d_[i] = o.d_[i];
    return *this;
  }

  size_t size() const { return size_t(n_); }
  bool empty() const { return n_ == 0; }
  int64_t& operator[](size_t i) { return d_[i]; }
  int64_t operator[](size_t i) const { return d_[i]; }
  int64_t* begin() { return d_; }
  int64_t* end() { return d_ + n_; }
  const int64_t* begin() const { return d_; }
  const int64_t* end() const { return d_ + n_; }
  const int64_t* data() const { return d_; }
  int64_t back() const { return d_[n_ - 1]; }
  void push_back(int64_t v) {
    if (n_ >= kMaxDims) throw_range_error("at most ", kMaxDims, " dimensions are supported");
    d_[n_++] = v;
  }
  void resize(size_t n, int64_t fill = 0) {
    if (n > size_t(kMaxDims)) throw_range_error("at most ", kMaxDims, " dimensions are supported");
    for (size_t i = size_t(n_); i < n; ++i) d_[i] = fill;
    n_ = int(n);
  }
  bool operator==(const Shape& o) const {
    if (n_ != o.n_) return false;
    for (int i = 0; i < n_; ++i)
      if (d_[i] != o.d_[i]) return false;
    return true;
  }
  bool operator!=(const Shape& o) const { return !(*this == o); }

 private:
  int64_t d_[kMaxDims];  // entries past n_ are never read
  int n_ = 0;
};

using Strides = Shape;

// a * b for sizes (both >= 0), bounded by kMaxElements. `what` names the size in the error.
inline int64_t checked_mul(int64_t a, int64_t b, const char* what) {
  if (a < 0 || b < 0) throw_range_error(what, ": negative size");
  if (a != 0 && b > kMaxElements / a)
    throw_range_error(what, ": ", a, " x ", b, " is too large (more than 2^40 elements)");
  return a * b;
}

inline int64_t checked_add(int64_t a, int64_t b, const char* what) {
  if (a < 0 || b < 0) throw_range_error(what, ": negative size");
  if (a > kMaxElements - b) throw_range_error(what, ": ", a, " + ", b, " is too large");
  return a + b;
}

// The element count of `shape`, checked.
inline int64_t checked_numel(const Shape& shape, const char* what) {
  int64_t n = 1;
  for (int64_t d : shape) n = checked_mul(n, d, what);
  return n;
}

// Unchecked: only for shapes that were checked when they were made (every Tensor's).
inline int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// Strides of `shape` packed with its dims laid out in `order` (outermost first; null: row-major).
inline Strides strides_for_order(const Shape& shape, const int* order) {
  Strides s;
  s.resize(shape.size());
  int64_t acc = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    const size_t d = order != nullptr ? size_t(order[i]) : i;
    s[d] = acc;
    acc *= shape[d];
  }
  return s;
}

inline Strides contiguous_strides(const Shape& shape) { return strides_for_order(shape, nullptr); }

std::string shape_string(const Shape& shape);

}  // namespace secvit
