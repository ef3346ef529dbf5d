#include "tensor_handle.h"

#include "core/device_backend.h"
#include "core/memory_stats.h"
#include "core/transfer.h"
#include "env_data.h"
#include "js_errors.h"

namespace secvit::napi {

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
       InstanceMethod<&TensorHandle::Info>("info"),
       InstanceMethod<&TensorHandle::Wait>("wait"),
       InstanceMethod<&TensorHandle::Ready>("ready")});
  EnvData::Of(env)->handle_class = Napi::Persistent(cls);
  exports.Set("TensorHandle", cls);
}

Napi::Object TensorHandle::New(Napi::Env env, Tensor tensor, Napi::Value source) {
  Napi::Object obj = EnvData::Of(env)->handle_class.New({});
  TensorHandle* h = Napi::ObjectWrap<TensorHandle>::Unwrap(obj);
  h->tensor_ = std::move(tensor);
  h->live_ = true;
  memory_stats::tensor_created();
  if (!source.IsEmpty() && !source.IsUndefined()) napi_create_reference(env, source, 1, &h->source_);
  return obj;
}

Napi::Object TensorHandle::NewView(Napi::Env env, Tensor view) const {
  napi_value src = nullptr;
  if (source_ != nullptr) napi_get_reference_value(env, source_, &src);
  return New(env, std::move(view), src == nullptr ? Napi::Value() : Napi::Value(env, src));
}

TensorHandle* TensorHandle::FromValue(const Napi::Value& v, const char* op, const char* what) {
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(EnvData::Of(v.Env())->handle_class.Value()))
    throw_type_error(op, ": ", what, " must be a secvit Tensor");
  TensorHandle* h = Napi::ObjectWrap<TensorHandle>::Unwrap(v.As<Napi::Object>());
  if (!h->live_) throw_runtime_error(op, ": ", what, " was disposed");
  return h;
}

TensorHandle* TensorHandle::FromOptional(const Napi::Value& v, const char* op, const char* what) {
  if (v.IsUndefined() || v.IsNull()) return nullptr;
  return FromValue(v, op, what);
}

// Constructed only through New(): JS code calling `new TensorHandle()` gets an empty, disposed
// handle that every operation rejects.
TensorHandle::TensorHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TensorHandle>(info) {}

// The GC backstop: a handle collected while live was never disposed. (Not a JS
// FinalizationRegistry: V8 keeps a registered object alive until a full mark-compact even after
// unregister, which promoted every tensor of a forward to the old generation: 30 MB of RSS for
// SecViT-T at batch 1, measured. An ObjectWrap finalizer lets the scavenger collect them.)
TensorHandle::~TensorHandle() {
  if (live_) memory_stats::tensor_gc_released();
  release(Env());
}

void TensorHandle::release(napi_env env) {
  if (source_ != nullptr) {
    const StoragePtr& s = tensor_.storage.ptr();
    // Queued work may still read the borrowed array: keep it until that work is done.
    if (live_ && s && s->pending_uses() > 0) EnvData::Of(Napi::Env(env))->DeferRelease(env, s, source_);
    else napi_delete_reference(env, source_);
    source_ = nullptr;
  }
  if (!live_) return;
  live_ = false;
  tensor_ = Tensor();
  memory_stats::tensor_released();
}

Napi::Value TensorHandle::Dispose(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    release(info.Env());
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
    Napi::Array strides = Napi::Array::New(env, tensor_.shape.size());
    for (size_t i = 0; i < tensor_.shape.size(); ++i) {
      shape.Set(uint32_t(i), double(tensor_.shape[i]));
      strides.Set(uint32_t(i), double(tensor_.strides[i]));
    }
    o.Set("shape", shape);
    o.Set("strides", strides);
    o.Set("offset", double(tensor_.offset));
    o.Set("dtype", dtype_name(tensor_.dtype));
    o.Set("device", device_name(tensor_.device()));
    o.Set("bytes", double(tensor_.nbytes()));
    o.Set("borrowed", !tensor_.storage->owned());
    o.Set("storage", double(reinterpret_cast<uintptr_t>(tensor_.storage.get())));
    return o;
  });
}

// wait(): blocks until the tensor has been computed; throws its error if it failed.
Napi::Value TensorHandle::Wait(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    FromValue(info.This(), "wait", "tensor");
    const Device d = tensor_.device();
    Queue::of(d).wait_ready(*tensor_.storage);
    device_backend(d)->synchronize();
    return info.Env().Undefined();
  });
}

Napi::Value TensorHandle::ReadSync(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    FromValue(info.This(), "dataSync", "tensor");
    const Tensor src = packed(tensor_, EnvData::Of(info.Env())->client());
    void* dst = nullptr;
    Napi::TypedArray out = new_typed_array(info.Env(), src.dtype, size_t(src.numel()), &dst);
    read_sync(src, dst);
    return out;
  });
}

Napi::Value TensorHandle::Read(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    FromValue(info.This(), "data", "tensor");
    Napi::Env env = info.Env();
    EnvData* data = EnvData::Of(env);
    const Tensor src = packed(tensor_, data->client());
    void* dst = nullptr;
    Napi::TypedArray out = new_typed_array(env, src.dtype, size_t(src.numel()), &dst);
    auto* job = new JsJob();
    napi_create_reference(env, out, 1, &job->keep);
    Napi::Promise promise = data->Track(env, job);
    EnvData::PosterPtr poster = data->poster();
    auto task = make_read_task(src, dst, [job, poster](const TaskErrorPtr& e) {
      job->error = e;
      poster->Post(job);
    });
    task->client = data->client();
    Queue::of(src.device()).submit(std::move(task));
    return promise;
  });
}

Napi::Value TensorHandle::ToSync(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    FromValue(info.This(), "to", "tensor");
    const Device device = arg_device(info[0], "to: device");
    require_device(device, "to");
    Tensor out = to_device(tensor_, device, EnvData::Of(info.Env())->client());
    Queue::of(device).wait_ready(*out.storage);
    return New(info.Env(), std::move(out));
  });
}

Napi::Value TensorHandle::To(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    FromValue(info.This(), "to", "tensor");
    const Device device = arg_device(info[0], "to: device");
    require_device(device, "to");
    Napi::Env env = info.Env();
    EnvData* data = EnvData::Of(env);
    Tensor out = to_device(tensor_, device, data->client());
    Napi::Object handle = New(env, out);
    auto* job = new JsJob();
    napi_create_reference(env, handle, 1, &job->keep);
    job->discard = [](napi_env e, napi_value kept) {
      Napi::ObjectWrap<TensorHandle>::Unwrap(Napi::Object(e, kept))->release(e);
    };
    Napi::Promise promise = data->Track(env, job);
    EnvData::PosterPtr poster = data->poster();
    auto task = make_notify_task(out, [job, poster](const TaskErrorPtr& e) {
      job->error = e;
      poster->Post(job);
    });
    task->client = data->client();
    Queue::of(device).submit(std::move(task));
    return promise;
  });
}

// ready(): a Promise settled once the tensor has been computed (rejected with its error).
Napi::Value TensorHandle::Ready(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    FromValue(info.This(), "ready", "tensor");
    Napi::Env env = info.Env();
    EnvData* data = EnvData::Of(env);
    auto* job = new JsJob();
    Napi::Promise promise = data->Track(env, job);
    EnvData::PosterPtr poster = data->poster();
    auto task = make_notify_task(tensor_, [job, poster](const TaskErrorPtr& e) {
      job->error = e;
      poster->Post(job);
    });
    task->name = "ready";
    task->client = data->client();
    Queue::of(tensor_.device()).submit(std::move(task));
    return promise;
  });
}

}  // namespace secvit::napi
