// The op registry: how an op states its rules and how a backend registers kernels for it.
//
// An op is a name, its inputs and attributes, and a `prepare` function (native/ops/<op>.cpp)
// that validates a call on the calling thread and describes its outputs and the kernel's
// parameters. Kernels are registered per (op, device, dtypes) next to their code
// (native/cpu/<op>.cpp, native/cuda/<op>.cu), each with what it supports beyond the op's rules
// (`supports`: e.g. a CUDA grid limit) and which inputs it takes with any strides.
//
// The dispatcher (run_op) then, for every op alike:
//   1. checks that the inputs share one device and runs the op's prepare;
//   2. picks the kernel for (op, device, dtype); a float16/bfloat16 call on a device that only
//      has a float32 kernel is widened to float32 and the outputs narrowed back (one conversion
//      per tensor, each a parallel kernel on that device);
//   3. makes inputs contiguous where the kernel needs it (views are free until then);
//   4. reserves the outputs, queues the kernel on the device's in-order queue and returns.
// Nothing waits: reading an output waits for its kernel (queue.h).
//
// C++17: included by the CUDA sources compiled by nvcc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "queue.h"
#include "tensor.h"

namespace secvit {

constexpr int kMaxOpInputs = 12;
constexpr int kMaxOpOutputs = 6;
constexpr int kMaxOpAttrs = 16;
constexpr size_t kMaxParamsBytes = 768;

// Bit masks of dtypes, for kernel registration.
constexpr unsigned dtype_bit(DType t) { return 1u << unsigned(t); }
constexpr unsigned kF32 = dtype_bit(DType::Float32);
constexpr unsigned kI32 = dtype_bit(DType::Int32);
constexpr unsigned kF16 = dtype_bit(DType::Float16);
constexpr unsigned kBF16 = dtype_bit(DType::BFloat16);
constexpr unsigned kFloat16Bit = kF16 | kBF16;

// What a kernel sees of one tensor: the address of element 0 of the view, its shape and its
// strides in elements. An absent optional input has data == nullptr.
struct TensorArg {
  void* data = nullptr;
  Shape shape;
  Strides strides;
  DType dtype = DType::Float32;

  bool present() const { return data != nullptr; }
  int64_t numel() const { return shape_numel(shape); }
  // Null for an absent optional input.
  template <typename T>
  T* ptr() const {
    return static_cast<T*>(data);
  }
};

struct KernelArgs {
  int n_in = 0, n_out = 0;
  TensorArg in[kMaxOpInputs];
  TensorArg out[kMaxOpOutputs];
  const void* params = nullptr;
  template <typename P>
  const P& p() const {
    return *static_cast<const P*>(params);
  }
};

using KernelFn = void (*)(const KernelArgs& args);

struct OpDef;

// One call of an op, as its prepare function sees it.
class OpCall {
 public:
  const char* op() const;
  Device device() const { return device_; }

  // Inputs (in the op's declared order); an absent optional input is not present().
  bool has(int i) const { return inputs_[i] != nullptr; }
  const Tensor& in(int i) const { return *inputs_[i]; }
  int num_inputs() const { return n_in_; }
  const char* input_name(int i) const;

  // Attributes by their schema name, checked, with errors naming the op and the attribute.
  // (A name the op does not declare is an internal error.)
  int64_t attr_int(const char* name, int64_t lo, int64_t hi) const;
  double attr_float(const char* name) const;  // finite
  bool attr_bool(const char* name) const;     // 0 or 1

  // Checks on inputs (TypeError / RangeError naming the op and the input).
  void require_float(int i) const;                // float32, float16 or bfloat16
  void require_dtype(int i, DType t) const;
  void require_same_dtype(int i, int j) const;    // input j has input i's dtype
  void require_rank(int i, size_t rank, const char* layout) const;

  // Outputs: contiguous, or with the dims laid out in `order` (outermost first; e.g. {0, 2, 3,
  // 1} puts a [B, C, H, W] tensor in memory as B, H, W, C: "channels last").
  void add_output(const Shape& shape, DType dtype);
  void add_output(const Shape& shape, DType dtype, const int* order);
  // An output that is input i itself, updated in place (an optimizer step, an accumulation into
  // a gradient): the kernel writes through the input's view, which must reach it as it is (its
  // dtype the compute dtype, its layout one the kernel addresses: the dispatcher neither
  // converts nor packs it, and throws if it would have to). Not poisoned before the kernel.
  void alias_output(int i);
  int output_alias(int o) const { return alias_[o]; }
  // Input i reaches the kernel packed in row-major order even if the kernel takes strided
  // inputs (for layouts a kernel cannot address).
  void require_contiguous(int i) { force_contiguous_ |= 1u << unsigned(i); }
  unsigned forced_contiguous() const { return force_contiguous_; }
  // What the op profiler (queue.h) files this call's time under when it is more specific than
  // the op's name ("conv2d:depthwise"). A string literal.
  void set_profile_label(const char* label) { label_ = label; }
  const char* profile_label() const { return label_; }
  // The dtype that picks the kernel (default: input 0's).
  void set_compute_dtype(DType t) { compute_dtype_ = t; }
  DType compute_dtype() const { return compute_dtype_; }

  template <typename P>
  void set_params(const P& p) {
    static_assert(std::is_trivially_copyable<P>::value, "op params must be trivially copyable");
    static_assert(sizeof(P) <= kMaxParamsBytes, "op params too large");
    static_assert(alignof(P) <= 16, "op params over-aligned");
    std::memcpy(params_, &p, sizeof(P));
    params_size_ = sizeof(P);
  }
  template <typename P>
  const P& params() const {
    return *reinterpret_cast<const P*>(params_);
  }

  // Internal (the dispatcher's).
  OpCall(int id, const OpDef& def, Device device, const Tensor* const* inputs, int n_in,
         const double* attrs, int n_attrs);
  int num_outputs() const { return n_out_; }
  const Shape& out_shape(int i) const { return out_shape_[i]; }
  const Strides& out_strides(int i) const { return out_strides_[i]; }
  DType out_dtype(int i) const { return out_dtype_[i]; }
  const void* params_data() const { return params_; }
  size_t params_size() const { return params_size_; }

 private:
  int attr_index(const char* name) const;

  int id_;
  const OpDef& def_;
  Device device_;
  const Tensor* inputs_[kMaxOpInputs] = {};
  int n_in_ = 0;
  double attrs_[kMaxOpAttrs] = {};
  int n_attrs_ = 0;
  int n_out_ = 0;
  Shape out_shape_[kMaxOpOutputs];
  Strides out_strides_[kMaxOpOutputs];
  DType out_dtype_[kMaxOpOutputs] = {};
  int alias_[kMaxOpOutputs] = {-1, -1, -1, -1, -1, -1};
  DType compute_dtype_ = DType::Float32;
  const char* label_ = nullptr;
  unsigned force_contiguous_ = 0;
  size_t params_size_ = 0;
  alignas(16) unsigned char params_[kMaxParamsBytes];
};

using PrepareFn = void (*)(OpCall& call);
// Returns false, with a reason, when the kernel cannot run `call` (checked before queuing).
using SupportsFn = bool (*)(const OpCall& call, std::string* why);

struct OpDef {
  const char* name;
  const char* inputs;  // comma-separated names; a trailing '?' marks an optional input
  // Comma-separated names, each with an optional default ("clusters,returnOrder=0"): callers
  // (lib/ops/run.ts) pass attributes by name and get the default for one they leave out; an
  // attribute without a default must be given.
  const char* attrs;
  PrepareFn prepare;
};

struct KernelDef {
  const char* op;
  Device device;
  unsigned dtypes;          // dtype_bit()s of the compute dtypes it implements
  KernelFn fn;
  SupportsFn supports;      // may be null
  unsigned strided_inputs;  // bit i: input i may have any strides; others arrive contiguous
};

bool register_op(const OpDef& def);
bool register_kernel(const KernelDef& def);

#define SV_REG_CAT2(a, b) a##b
#define SV_REG_CAT(a, b) SV_REG_CAT2(a, b)
// SECVIT_OP(name, "in0,in1?", "attr0,attr1=default", prepare_fn);
#define SECVIT_OP(name, inputs, attrs, prepare)                                    \
  [[maybe_unused]] static const bool SV_REG_CAT(sv_registered_op_, __LINE__) = \
      ::secvit::register_op(::secvit::OpDef{#name, inputs, attrs, prepare})
// SECVIT_KERNEL(op, device, dtypes, fn, supports_or_nullptr, strided_input_bits);
#define SECVIT_KERNEL(op, device, dtypes, fn, supports, strided)                       \
  [[maybe_unused]] static const bool SV_REG_CAT(sv_registered_kernel_, __LINE__) = \
      ::secvit::register_kernel(::secvit::KernelDef{#op, device, dtypes, fn, supports, strided})

// ---- the dispatcher --------------------------------------------------------------------------

// The op's id (its index in op_names()), or -1.
int op_id(const std::string& name);
const std::vector<std::string>& op_names();
const OpDef& op_def(int id);
const std::vector<std::string>& op_input_names(int id);  // without the optional marks
const std::vector<std::string>& op_attr_names(int id);
// Each attribute's default, NaN for one that must be given.
const std::vector<double>& op_attr_defaults(int id);
bool op_input_optional(int id, int i);

struct OpOutputs {
  Tensor out[kMaxOpOutputs];
  int n = 0;
};

// Validates, queues and returns the outputs (see the top of this file). `inputs[i]` is null for
// an absent optional input. Throws TypeError/RangeError/Error for a bad call.
OpOutputs run_op(int id, const Tensor* const* inputs, int n_in, const double* attrs, int n_attrs,
                 const QueueClientPtr& client);
// By name (for internal callers).
OpOutputs run_op(const char* name, const Tensor* const* inputs, int n_in, const double* attrs,
                 int n_attrs, const QueueClientPtr& client);

// Helpers built on run_op: a packed copy of any view, converted to `dtype`: row-major, or with
// the dims in the same memory order as `t`'s strides (keep_layout).
Tensor copy_contiguous(const Tensor& t, DType dtype, const QueueClientPtr& client,
                       bool keep_layout = false);
// The dims of `t` from the largest stride to the smallest (ties: the later dim inner).
void layout_order(const Tensor& t, int* order);
// layout_order, and whether `t` is packed (dense) in that order, e.g. channels-last.
bool dense_layout_order(const Tensor& t, int* order);

}  // namespace secvit
