// The one native entry for every op, and views. It validates the JS values, converts them and
// dispatches (core/op.h); the op's own rules live in native/ops/<op>.cpp.
//
//   opNames(): string[]                      the registry's ops; an op's id is its index
//   opSchema(id): { inputs, attrs, defaults } names ('?' marks an optional input); each
//                                            attribute's default (null: it must be given)
//   run(id, inputs, attrs, sync): handle | handle[]
//       inputs: (TensorHandle | null)[] in the op's order (null: an absent optional input)
//       attrs: number[] in the op's order; sync: wait for the result (and throw its error)
//   view(handle, shape, strides, offset): a handle over the same storage
#include "op_binding.h"

#include <cmath>

#include "core/device_backend.h"
#include "core/op.h"
#include "env_data.h"
#include "js_errors.h"
#include "tensor_handle.h"

namespace secvit::napi {
namespace {

static_assert(EnvData::kMetaSlots >= kMaxOpOutputs, "a meta slot for every output of an op");

Napi::Value OpNames(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const auto& names = op_names();
    Napi::Array a = Napi::Array::New(info.Env(), names.size());
    for (size_t i = 0; i < names.size(); ++i) a.Set(uint32_t(i), names[i]);
    return a;
  });
}

Napi::Value OpSchema(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const int id = int(arg_int(info[0], "opSchema: op id", 0, int64_t(op_names().size()) - 1));
    const auto& in = op_input_names(id);
    const auto& at = op_attr_names(id);
    Napi::Array inputs = Napi::Array::New(env, in.size());
    for (size_t i = 0; i < in.size(); ++i)
      inputs.Set(uint32_t(i), op_input_optional(id, int(i)) ? in[i] + "?" : in[i]);
    const auto& def = op_attr_defaults(id);
    Napi::Array attrs = Napi::Array::New(env, at.size());
    Napi::Array defaults = Napi::Array::New(env, at.size());
    for (size_t i = 0; i < at.size(); ++i) {
      attrs.Set(uint32_t(i), at[i]);
      defaults.Set(uint32_t(i), std::isnan(def[i]) ? env.Null() : Napi::Number::New(env, def[i]));
    }
    Napi::Object o = Napi::Object::New(env);
    o.Set("inputs", inputs);
    o.Set("attrs", attrs);
    o.Set("defaults", defaults);
    return o;
  });
}

Napi::Value Run(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const int id = int(arg_int(info[0], "run: op id", 0, int64_t(op_names().size()) - 1));
    const char* name = op_def(id).name;
    const auto& in_names = op_input_names(id);
    if (!info[1].IsArray()) throw_type_error(name, ": inputs must be an array");
    Napi::Array in = info[1].As<Napi::Array>();
    const uint32_t n_in = in.Length();
    if (n_in != in_names.size())
      throw_range_error(name, ": expected ", in_names.size(), " inputs, got ", n_in);
    const Tensor* inputs[kMaxOpInputs] = {};
    for (uint32_t i = 0; i < n_in; ++i) {
      TensorHandle* h = TensorHandle::FromOptional(in.Get(i), name, in_names[i].c_str());
      inputs[i] = h == nullptr ? nullptr : &h->tensor();
    }
    if (!info[2].IsArray()) throw_type_error(name, ": attributes must be an array");
    Napi::Array at = info[2].As<Napi::Array>();
    const uint32_t n_attrs = at.Length();
    if (n_attrs > uint32_t(kMaxOpAttrs)) throw_range_error(name, ": too many attributes (", n_attrs, ")");
    double attrs[kMaxOpAttrs] = {};
    for (uint32_t i = 0; i < n_attrs; ++i) {
      Napi::Value v = at.Get(i);
      if (!v.IsNumber()) throw_type_error(name, ": attribute ", i, " must be a number");
      attrs[i] = v.As<Napi::Number>().DoubleValue();
    }
    // (op, argument) rather than str(name, ": sync"): that string, built eagerly, cost an
    // ostringstream per op (locale and facet lookups, ~1,500 instructions; callgrind).
    const bool sync = arg_bool(info[3], name, "sync");
    EnvData* data = EnvData::Of(env);
    OpOutputs out = run_op(id, inputs, int(n_in), attrs, int(n_attrs), data->client());
    if (sync) {
      const Device d = out.out[0].device();
      for (int i = 0; i < out.n; ++i) Queue::of(d).wait_ready(*out.out[i].storage);
      device_backend(d)->synchronize();
    }
    for (int i = 0; i < out.n; ++i) data->WriteMeta(i, out.out[i]);
    if (out.n == 1) return TensorHandle::New(env, std::move(out.out[0]));
    Napi::Array a = Napi::Array::New(env, size_t(out.n));
    for (int i = 0; i < out.n; ++i) a.Set(uint32_t(i), TensorHandle::New(env, std::move(out.out[i])));
    return a;
  });
}

Shape arg_dims(const Napi::Value& v, const char* what) {
  if (!v.IsArray()) throw_type_error(what, ": expected an array of integers");
  Napi::Array a = v.As<Napi::Array>();
  if (a.Length() > uint32_t(kMaxDims)) throw_range_error(what, ": at most ", kMaxDims, " dimensions are supported, got ", a.Length());
  Shape s;
  for (uint32_t i = 0; i < a.Length(); ++i) s.push_back(arg_int(a.Get(i), str(what, "[", i, "]"), 0, kMaxElements));
  return s;
}

Napi::Value View(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    TensorHandle* h = TensorHandle::FromValue(info[0], "view", "tensor");
    const Shape shape = arg_dims(info[1], "view: shape");
    const Strides strides = arg_dims(info[2], "view: strides");
    const int64_t offset = arg_int(info[3], "view: offset", 0, kMaxElements);
    Tensor v = make_view(h->tensor(), shape, strides, offset, "view");
    EnvData::Of(info.Env())->WriteMeta(0, v);
    return h->NewView(info.Env(), std::move(v));
  });
}

}  // namespace

void InitOps(Napi::Env env, Napi::Object exports) {
  exports.Set("opNames", Napi::Function::New<OpNames>(env, "opNames"));
  exports.Set("opSchema", Napi::Function::New<OpSchema>(env, "opSchema"));
  exports.Set("run", Napi::Function::New<Run>(env, "run"));
  exports.Set("view", Napi::Function::New<View>(env, "view"));
  exports.Set("meta", EnvData::Of(env)->meta_array.Value());
}

}  // namespace secvit::napi
