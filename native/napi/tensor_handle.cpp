#include "tensor_handle.h"

#include <cstring>

#include "async_call.h"
#include "core/device_backend.h"
#include "core/memory_stats.h"
#include "js_errors.h"

namespace secvit::napi {
namespace {

struct HandleClass {
  Napi::FunctionReference constructor;
};

// Per-environment (main thread and each worker thread have their own).
HandleClass* handle_class(Napi::Env env) { return env.GetInstanceData<HandleClass>(); }

}  // namespace

Napi::TypedArray new_typed_array(Napi::Env env, DType dtype, size_t elements, void** data) {
  Napi::ArrayBuffer buffer = Napi::ArrayBuffer::New(env, elements * dtype_size(dtype));
  *data = buffer.Data();
  switch (dtype) {
    case DType::Float32:
      return Napi::Float32Array::New(env, elements, buffer, 0);
    case DType::Int32:
      return Napi::Int32Array::New(env, elements, buffer, 0);
    case DType::Float16:
    case DType::BFloat16:
      return Napi::Uint16Array::New(env, elements, buffer, 0);
  }
  throw_type_error("unknown dtype");
}

void TensorHandle::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function cls = DefineClass(
      env, "TensorHandle",
      {InstanceMethod<&TensorHandle::Dispose>("dispose"),
       InstanceAccessor<&TensorHandle::Disposed>("disposed"),
       InstanceMethod<&TensorHandle::ReadSync>("readSync"),
       InstanceMethod<&TensorHandle::Read>("read"),
       InstanceMethod<&TensorHandle::ToSync>("toSync"),
       InstanceMethod<&TensorHandle::To>("to"),
       InstanceMethod<&TensorHandle::Info>("info")});
  auto* data = new HandleClass();
  data->constructor = Napi::Persistent(cls);
  env.SetInstanceData<HandleClass>(data);
  exports.Set("TensorHandle", cls);
}

Napi::Object TensorHandle::New(Napi::Env env, Tensor tensor, Napi::Value source) {
  Napi::Object obj = handle_class(env)->constructor.New({});
  TensorHandle* h = Napi::ObjectWrap<TensorHandle>::Unwrap(obj);
  h->tensor_ = std::move(tensor);
  h->live_ = true;
  memory_stats::tensor_created();
  if (!source.IsEmpty() && !source.IsUndefined()) h->source_ = Napi::Persistent(source);
  return obj;
}

TensorHandle* TensorHandle::FromValue(const Napi::Value& v, const char* op, const char* what) {
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(handle_class(v.Env())->constructor.Value()))
    throw_type_error(op, ": ", what, " must be a secvit Tensor");
  TensorHandle* h = Napi::ObjectWrap<TensorHandle>::Unwrap(v.As<Napi::Object>());
  if (!h->live_) throw_runtime_error(op, ": ", what, " was disposed");
  return h;
}

// Constructed only through New(): JS code calling `new TensorHandle()` gets an empty, disposed
// handle that every operation rejects.
TensorHandle::TensorHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TensorHandle>(info) {}

TensorHandle::~TensorHandle() { release(); }

void TensorHandle::release() {
  if (!live_) return;
  live_ = false;
  tensor_ = Tensor();
  memory_stats::tensor_released();
  // source_ (a JS reference) is released by its own destructor on the JS thread; dispose()
  // resets it explicitly.
}

Napi::Value TensorHandle::source(Napi::Env env) const {
  return source_.IsEmpty() ? env.Undefined() : source_.Value();
}

Napi::Value TensorHandle::Dispose(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    release();
    if (!source_.IsEmpty()) source_.Reset();
    return info.Env().Undefined();
  });
}

Napi::Value TensorHandle::Disposed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), !live_);
}

Napi::Value TensorHandle::Info(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    FromValue(info.This(), "info", "tensor");
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    Napi::Array shape = Napi::Array::New(env, tensor_.shape.size());
    for (size_t i = 0; i < tensor_.shape.size(); ++i) shape.Set(uint32_t(i), double(tensor_.shape[i]));
    o.Set("shape", shape);
    o.Set("dtype", dtype_name(tensor_.dtype));
    o.Set("device", device_name(tensor_.device()));
    o.Set("bytes", double(tensor_.nbytes()));
    o.Set("borrowed", !tensor_.storage->owned());
    return o;
  });
}

Napi::Value TensorHandle::ReadSync(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    FromValue(info.This(), "dataSync", "tensor");
    void* dst = nullptr;
    Napi::TypedArray out = new_typed_array(info.Env(), tensor_.dtype, size_t(tensor_.numel()), &dst);
    const size_t n = tensor_.nbytes();
    if (n == 0) return out;
    if (tensor_.device() == Device::Cpu) std::memcpy(dst, tensor_.storage->data(), n);
    else device_backend(tensor_.device())->copy_to_host(dst, tensor_.storage->data(), n);
    return out;
  });
}

Napi::Value TensorHandle::Read(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    FromValue(info.This(), "data", "tensor");
    Napi::Env env = info.Env();
    void* dst = nullptr;
    Napi::TypedArray out = new_typed_array(env, tensor_.dtype, size_t(tensor_.numel()), &dst);
    Tensor src = tensor_;
    // The result array is created here, on the JS thread; the worker only fills its bytes.
    auto out_ref = std::make_shared<Napi::Reference<Napi::Value>>(Napi::Persistent<Napi::Value>(out));
    return AsyncCall::Start(
        env, "secvit.data", {info.This(), source(env)},
        [src, dst] {
          const size_t n = src.nbytes();
          if (n == 0) return;
          if (src.device() == Device::Cpu) std::memcpy(dst, src.storage->data(), n);
          else device_backend(src.device())->copy_to_host(dst, src.storage->data(), n);
        },
        [out_ref](Napi::Env) -> Napi::Value { return out_ref->Value(); });
  });
}

Napi::Value TensorHandle::ToSync(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    FromValue(info.This(), "to", "tensor");
    const Device device = arg_device(info[0], "to: device");
    require_device(device, "to");
    return New(info.Env(), copy_to(tensor_, device));
  });
}

Napi::Value TensorHandle::To(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    FromValue(info.This(), "to", "tensor");
    const Device device = arg_device(info[0], "to: device");
    require_device(device, "to");
    Napi::Env env = info.Env();
    Tensor src = tensor_;
    auto result = std::make_shared<Tensor>();
    return AsyncCall::Start(
        env, "secvit.to", {info.This(), source(env)},
        [src, device, result] { *result = copy_to(src, device); },
        [result](Napi::Env e) -> Napi::Value { return New(e, std::move(*result)); });
  });
}

}  // namespace secvit::napi
