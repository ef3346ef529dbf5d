// The registry's tables and the dispatcher (see op.h).
#include <cmath>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <vector>

#include "device_backend.h"
#include "op.h"

namespace secvit {
namespace {

struct Registry {
  std::vector<OpDef> ops;
  std::vector<KernelDef> kernels;
  // Built once, on first use, after every static registration has run.
  std::once_flag once;
  std::map<std::string, int> ids;
  std::vector<std::string> names;
  // [op][device] -> kernels of that op on that device
  std::vector<std::vector<std::vector<const KernelDef*>>> table;
  std::vector<std::vector<std::string>> input_names, attr_names;
  std::vector<std::vector<double>> attr_defaults;
  std::vector<std::vector<bool>> input_optional;
};

Registry& registry() {
  static Registry* r = new Registry();
  return *r;
}

std::vector<std::string> split_names(const char* list) {
  std::vector<std::string> out;
  std::string cur;
  for (const char* p = list; *p != '\0'; ++p) {
    if (*p == ',') {
      out.push_back(cur);
      cur.clear();
    } else if (*p != ' ') {
      cur += *p;
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

Registry& built() {
  Registry& r = registry();
  std::call_once(r.once, [&r] {
    for (size_t i = 0; i < r.ops.size(); ++i) {
      r.ids[r.ops[i].name] = int(i);
      r.names.push_back(r.ops[i].name);
      std::vector<std::string> in = split_names(r.ops[i].inputs);
      std::vector<bool> opt;
      for (std::string& n : in) {
        const bool o = !n.empty() && n.back() == '?';
        if (o) n.pop_back();
        opt.push_back(o);
      }
      r.input_names.push_back(in);
      r.input_optional.push_back(opt);
      std::vector<std::string> attrs = split_names(r.ops[i].attrs);
      std::vector<double> defaults;
      for (std::string& a : attrs) {
        const size_t eq = a.find('=');
        defaults.push_back(eq == std::string::npos ? std::nan("") : std::strtod(a.c_str() + eq + 1, nullptr));
        if (eq != std::string::npos) a.resize(eq);
      }
      r.attr_names.push_back(attrs);
      r.attr_defaults.push_back(defaults);
    }
    r.table.assign(r.ops.size(), std::vector<std::vector<const KernelDef*>>(kNumDevices));
    for (const KernelDef& k : r.kernels) {
      auto it = r.ids.find(k.op);
      if (it == r.ids.end()) continue;  // a kernel for an op this build does not define
      r.table[size_t(it->second)][size_t(k.device)].push_back(&k);
    }
  });
  return r;
}

const KernelDef* find_kernel(int id, Device device, DType dtype) {
  for (const KernelDef* k : built().table[size_t(id)][size_t(device)])
    if (k->dtypes & dtype_bit(dtype)) return k;
  return nullptr;
}

bool is_16bit(DType t) { return t == DType::Float16 || t == DType::BFloat16; }

// The queued form of one kernel call: tensors are resolved to addresses when it runs (their
// storages are held by the task). A few kilobytes, made on a JS thread and freed on a
// dispatcher: recycled through a small free list instead of going through malloc each time.
class KernelTask final : public Task {
 public:
  static void* operator new(size_t bytes) {
    {
      std::lock_guard<std::mutex> lk(free_mu());
      if (!free_list().empty()) {
        void* p = free_list().back();
        free_list().pop_back();
        return p;
      }
    }
    return ::operator new(bytes);
  }
  static void operator delete(void* p) {
    {
      std::lock_guard<std::mutex> lk(free_mu());
      if (free_list().size() < 256) {
        free_list().push_back(p);
        return;
      }
    }
    ::operator delete(p);
  }

  void run() override {
    KernelArgs a = args_;
    for (int i = 0; i < a.n_in; ++i)
      if (in_storage_[i]) a.in[i].data = static_cast<unsigned char*>(in_storage_[i]->data()) + in_offset_[i];
    for (int i = 0; i < a.n_out; ++i)
      a.out[i].data = static_cast<unsigned char*>(out_storage_[i]->data()) + out_offset_[i];
    a.params = params_;
    fn_(a);
  }

  KernelFn fn_ = nullptr;
  KernelArgs args_;
  Storage* in_storage_[kMaxOpInputs] = {};
  Storage* out_storage_[kMaxOpOutputs] = {};
  size_t in_offset_[kMaxOpInputs] = {};
  size_t out_offset_[kMaxOpOutputs] = {};
  alignas(16) unsigned char params_[kMaxParamsBytes];

 private:
  static std::mutex& free_mu() {
    static std::mutex* m = new std::mutex();
    return *m;
  }
  static std::vector<void*>& free_list() {
    static std::vector<void*>* v = new std::vector<void*>();
    return *v;
  }
};

TensorArg describe(const Tensor& t) {
  TensorArg a;
  a.shape = t.shape;
  a.strides = t.strides;
  a.dtype = t.dtype;
  return a;
}

}  // namespace

// ---- registration ----------------------------------------------------------------------------

bool register_op(const OpDef& def) {
  registry().ops.push_back(def);
  return true;
}

bool register_kernel(const KernelDef& def) {
  registry().kernels.push_back(def);
  return true;
}

int op_id(const std::string& name) {
  Registry& r = built();
  auto it = r.ids.find(name);
  return it == r.ids.end() ? -1 : it->second;
}

const std::vector<std::string>& op_names() { return built().names; }
const OpDef& op_def(int id) { return built().ops[size_t(id)]; }
const std::vector<std::string>& op_input_names(int id) { return built().input_names[size_t(id)]; }
const std::vector<std::string>& op_attr_names(int id) { return built().attr_names[size_t(id)]; }
const std::vector<double>& op_attr_defaults(int id) { return built().attr_defaults[size_t(id)]; }
bool op_input_optional(int id, int i) { return built().input_optional[size_t(id)][size_t(i)]; }

// ---- OpCall ----------------------------------------------------------------------------------

OpCall::OpCall(int id, const OpDef& def, Device device, const Tensor* const* inputs, int n_in,
               const double* attrs, int n_attrs)
    : id_(id), def_(def), device_(device), n_in_(n_in), n_attrs_(n_attrs) {
  for (int i = 0; i < n_in; ++i) inputs_[i] = inputs[i];
  for (int i = 0; i < n_attrs; ++i) attrs_[i] = attrs[i];
}

const char* OpCall::op() const { return def_.name; }

const char* OpCall::input_name(int i) const {
  const auto& names = built().input_names[size_t(id_)];
  return i < int(names.size()) ? names[size_t(i)].c_str() : "?";
}

int OpCall::attr_index(const char* name) const {
  const auto& names = built().attr_names[size_t(id_)];
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i] == name) return int(i);
  throw_runtime_error("internal error: op ", op(), " has no attribute '", name, "'");
}

int64_t OpCall::attr_int(const char* name, int64_t lo, int64_t hi) const {
  const double d = attrs_[attr_index(name)];
  if (!std::isfinite(d) || std::floor(d) != d)
    throw_range_error(op(), ": ", name, ": expected an integer, got ", d);
  if (d < double(lo) || d > double(hi))
    throw_range_error(op(), ": ", name, ": expected an integer in [", lo, ", ", hi, "], got ", d);
  return int64_t(d);
}

double OpCall::attr_float(const char* name) const {
  const double d = attrs_[attr_index(name)];
  if (!std::isfinite(d)) throw_range_error(op(), ": ", name, ": expected a finite number, got ", d);
  return d;
}

bool OpCall::attr_bool(const char* name) const {
  const double d = attrs_[attr_index(name)];
  if (d != 0.0 && d != 1.0) throw_range_error(op(), ": ", name, ": expected a boolean, got ", d);
  return d == 1.0;
}

void OpCall::require_float(int i) const {
  const DType t = in(i).dtype;
  if (t == DType::Int32)
    throw_type_error(op(), ": ", input_name(i), " must be float32, bfloat16 or float16, got ",
                     dtype_name(t));
}

void OpCall::require_dtype(int i, DType t) const {
  if (in(i).dtype != t)
    throw_type_error(op(), ": ", input_name(i), " must be ", dtype_name(t), ", got ",
                     dtype_name(in(i).dtype));
}

void OpCall::require_same_dtype(int i, int j) const {
  if (in(j).dtype != in(i).dtype)
    throw_type_error(op(), ": ", input_name(j), " must have ", input_name(i), "'s dtype (",
                     dtype_name(in(i).dtype), "), got ", dtype_name(in(j).dtype));
}

void OpCall::require_rank(int i, size_t rank, const char* layout) const {
  if (in(i).shape.size() != rank)
    throw_range_error(op(), ": ", input_name(i), " must be ", layout, ", got ",
                      shape_string(in(i).shape));
}

void OpCall::add_output(const Shape& shape, DType dtype) {
  checked_numel(shape, op());
  out_shape_[n_out_] = shape;
  out_strides_[n_out_] = contiguous_strides(shape);
  out_dtype_[n_out_] = dtype;
  ++n_out_;
}

void OpCall::add_output(const Shape& shape, DType dtype, const int* order) {
  add_output(shape, dtype);
  out_strides_[n_out_ - 1] = strides_for_order(shape, order);
}

void OpCall::alias_output(int i) {
  add_output(in(i).shape, in(i).dtype);
  out_strides_[n_out_ - 1] = in(i).strides;
  alias_[n_out_ - 1] = i;
}

// ---- dispatch --------------------------------------------------------------------------------

namespace {

// A new output: allocated by element count; `strides` are a permutation of a packed layout.
Tensor allocate_output(const Shape& shape, const Strides& strides, DType dtype, Device device) {
  Tensor t = empty_tensor(shape, dtype, device);
  t.strides = strides;
  return t;
}

}  // namespace

OpOutputs run_op(int id, const Tensor* const* inputs, int n_in, const double* attrs, int n_attrs,
                 const QueueClientPtr& client) {
  Registry& r = built();
  if (id < 0 || size_t(id) >= r.ops.size()) throw_range_error("run: unknown op id ", id);
  const OpDef& def = r.ops[size_t(id)];
  const auto& in_names = r.input_names[size_t(id)];
  const auto& in_opt = r.input_optional[size_t(id)];
  if (n_in != int(in_names.size()))
    throw_range_error(def.name, ": expected ", in_names.size(), " inputs, got ", n_in);
  if (n_attrs != int(r.attr_names[size_t(id)].size()))
    throw_range_error(def.name, ": expected ", r.attr_names[size_t(id)].size(), " attributes, got ",
                      n_attrs);
  // One device for every input.
  const Tensor* first = nullptr;
  int first_i = -1;
  for (int i = 0; i < n_in; ++i) {
    if (inputs[i] == nullptr) {
      if (!in_opt[size_t(i)]) throw_type_error(def.name, ": ", in_names[size_t(i)], " must be a secvit Tensor");
      continue;
    }
    if (first == nullptr) {
      first = inputs[i];
      first_i = i;
    } else if (inputs[i]->device() != first->device()) {
      throw_range_error(def.name, ": ", in_names[size_t(first_i)], " and ", in_names[size_t(i)],
                        " must be on one device, got ", device_name(first->device()), " and ",
                        device_name(inputs[i]->device()));
    }
  }
  if (first == nullptr) throw_range_error(def.name, ": needs at least one input tensor");
  const Device device = first->device();
  require_device(device, def.name);

  OpCall call(id, def, device, inputs, n_in, attrs, n_attrs);
  call.set_compute_dtype(first->dtype);
  def.prepare(call);

  // The kernel, or its float32 twin with the 16-bit tensors widened around it.
  const DType dtype = call.compute_dtype();
  const KernelDef* k = find_kernel(id, device, dtype);
  bool widen = false;
  if (k == nullptr && is_16bit(dtype)) {
    k = find_kernel(id, device, DType::Float32);
    widen = k != nullptr;
  }
  if (k == nullptr)
    throw_type_error(def.name, ": ", dtype_name(dtype), " is not supported on ", device_name(device));
  if (k->supports != nullptr) {
    std::string why;
    if (!k->supports(call, &why)) throw_range_error(def.name, ": ", why);
  }

  // Inputs updated in place reach the kernel as they are.
  unsigned aliased = 0;
  for (int o = 0; o < call.num_outputs(); ++o) {
    const int i = call.output_alias(o);
    if (i < 0) continue;
    aliased |= 1u << unsigned(i);
    if (widen && inputs[i]->dtype == dtype)
      throw_type_error(def.name, ": updates ", call.input_name(i), " in place, which needs a ", dtype_name(dtype),
                       " kernel on ", device_name(device));
    if ((!(k->strided_inputs & (1u << unsigned(i))) || (call.forced_contiguous() & (1u << unsigned(i)))) &&
        !inputs[i]->is_contiguous())
      throw_range_error(def.name, ": updates ", call.input_name(i), " in place, which must be contiguous, got strides ",
                        shape_string(inputs[i]->strides), " for shape ", shape_string(inputs[i]->shape));
  }

  // Inputs as the kernel takes them: float32 copies of 16-bit ones when widening (in their own
  // layout when that is a dense one), packed copies where the kernel needs row-major.
  Tensor staged[kMaxOpInputs];
  const Tensor* use[kMaxOpInputs] = {};
  bool restaged = false;
  for (int i = 0; i < n_in; ++i) {
    if (inputs[i] == nullptr) continue;
    const Tensor& t = *inputs[i];
    const bool narrow_in = widen && t.dtype == dtype && !(aliased & (1u << unsigned(i)));
    const unsigned bit = 1u << unsigned(i);
    const bool needs_layout =
        (!(k->strided_inputs & bit) || (call.forced_contiguous() & bit)) && !t.is_contiguous();
    if (narrow_in || needs_layout) {
      staged[i] = copy_contiguous(t, narrow_in ? DType::Float32 : t.dtype, client,
                                  /*keep_layout=*/!needs_layout);
      use[i] = &staged[i];
      restaged = true;
    } else {
      use[i] = &t;
    }
  }
  // The rules saw the caller's tensors; the kernel sees the staged ones. Its parameters and
  // output layouts (which may follow the inputs' strides) are worked out again from those.
  std::optional<OpCall> again;
  if (restaged) {
    again.emplace(id, def, device, use, n_in, attrs, n_attrs);
    again->set_compute_dtype(widen ? DType::Float32 : dtype);
    def.prepare(*again);
  }
  const OpCall& kcall = restaged ? *again : call;

  // Outputs: the kernel's (float32 temporaries when widening), then the caller's.
  OpOutputs result;
  result.n = call.num_outputs();
  Tensor kernel_out[kMaxOpOutputs];
  for (int o = 0; o < result.n; ++o) {
    if (call.output_alias(o) >= 0) {
      kernel_out[o] = result.out[o] = *use[call.output_alias(o)];
      continue;
    }
    const DType want = call.out_dtype(o);
    const bool temp = widen && want == dtype;
    kernel_out[o] = allocate_output(kcall.out_shape(o), kcall.out_strides(o),
                                    temp ? DType::Float32 : want, device);
    if (!temp) result.out[o] = kernel_out[o];
  }

  auto task = std::make_unique<KernelTask>();
  task->name = def.name;
  task->label = kcall.profile_label() != nullptr ? kcall.profile_label() : def.name;
  task->client = client;
  task->fn_ = k->fn;
  task->args_.n_in = n_in;
  task->args_.n_out = result.n;
  for (int i = 0; i < n_in; ++i) {
    if (use[i] == nullptr) continue;
    task->args_.in[i] = describe(*use[i]);
    task->in_storage_[i] = use[i]->storage.get();
    task->in_offset_[i] = size_t(use[i]->offset) * dtype_size(use[i]->dtype);
    task->reads.push_back(use[i]->storage.ptr());
  }
  for (int o = 0; o < result.n; ++o) {
    task->args_.out[o] = describe(kernel_out[o]);
    task->out_storage_[o] = kernel_out[o].storage.get();
    task->out_offset_[o] = size_t(kernel_out[o].offset) * dtype_size(kernel_out[o].dtype);
    if (call.output_alias(o) >= 0) task->updates.push_back(kernel_out[o].storage.ptr());
    else task->writes.push_back(kernel_out[o].storage.ptr());
  }
  std::memcpy(task->params_, kcall.params_data(), kcall.params_size());
  Queue::of(device).submit(std::move(task));

  for (int o = 0; o < result.n; ++o)
    if (!result.out[o].storage)
      result.out[o] = copy_contiguous(kernel_out[o], dtype, client, /*keep_layout=*/true);
  return result;
}

OpOutputs run_op(const char* name, const Tensor* const* inputs, int n_in, const double* attrs,
                 int n_attrs, const QueueClientPtr& client) {
  const int id = op_id(name);
  if (id < 0) throw_runtime_error("internal error: no op named ", name);
  return run_op(id, inputs, n_in, attrs, n_attrs, client);
}

Tensor copy_contiguous(const Tensor& t, DType dtype, const QueueClientPtr& client,
                       bool keep_layout) {
  static const int id = op_id("copy");
  const Tensor* in[1] = {&t};
  // (dtype, keepLayout): the copy op's attributes in schema order.
  const double attrs[2] = {double(int(dtype)), keep_layout ? 1.0 : 0.0};
  return run_op(id, in, 1, attrs, 2, client).out[0];
}

void layout_order(const Tensor& t, int* order) {
  const int n = int(t.ndim());
  for (int i = 0; i < n; ++i) order[i] = i;
  // Insertion sort by decreasing stride; stable, so equal strides keep their dim order.
  for (int i = 1; i < n; ++i) {
    const int d = order[i];
    int j = i;
    while (j > 0 && t.strides[size_t(order[j - 1])] < t.strides[size_t(d)]) {
      order[j] = order[j - 1];
      --j;
    }
    order[j] = d;
  }
}

bool dense_layout_order(const Tensor& t, int* order) {
  layout_order(t, order);
  return strides_packed(t.shape, t.strides, order);
}

}  // namespace secvit
