// Module entry: the runtime functions (tensor creation, memory, backends, threads). Every op
// goes through op_binding.cpp; the tensor handle is in tensor_handle.cpp. The typed JS view of everything
// exported here is lib/native.ts.
#include <napi.h>

#include <cstring>

#include "core/cpu_features.h"
#include "core/device_backend.h"
#include "core/memory_stats.h"
#include "core/thread_pool.h"
#include "core/queue.h"
#include "core/transfer.h"
#include "env_data.h"
#include "js_errors.h"
#include "op_binding.h"
#include "tensor_handle.h"

namespace secvit::napi {
namespace {

napi_typedarray_type expected_array_type(DType dtype) {
  switch (dtype) {
    case DType::Float32: return napi_float32_array;
    case DType::Int32: return napi_int32_array;
    case DType::Float16:
    case DType::BFloat16: return napi_uint16_array;
  }
  return napi_float32_array;
}

const char* array_type_name(napi_typedarray_type t) {
  switch (t) {
    case napi_int8_array: return "Int8Array";
    case napi_uint8_array: return "Uint8Array";
    case napi_uint8_clamped_array: return "Uint8ClampedArray";
    case napi_int16_array: return "Int16Array";
    case napi_uint16_array: return "Uint16Array";
    case napi_int32_array: return "Int32Array";
    case napi_uint32_array: return "Uint32Array";
    case napi_float32_array: return "Float32Array";
    case napi_float64_array: return "Float64Array";
    case napi_bigint64_array: return "BigInt64Array";
    case napi_biguint64_array: return "BigUint64Array";
    default: return "TypedArray";
  }
}

// A handle for a new tensor, with its metadata in slot 0 of the environment's meta buffer.
Napi::Value Made(Napi::Env env, Tensor t, Napi::Value source = Napi::Value()) {
  EnvData::Of(env)->WriteMeta(0, t);
  return TensorHandle::New(env, std::move(t), source);
}

// createTensor(data: TypedArray | null, shape, dtype, device, copy): a handle. With data null
// the tensor is zero-filled. A CPU tensor from a TypedArray borrows its memory unless `copy`.
Napi::Value CreateTensor(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const Shape shape = arg_shape(info[1], "tensor: shape");
    const DType dtype = arg_dtype(info[2], "tensor: dtype");
    const Device device = arg_device(info[3], "tensor: device");
    const bool copy = arg_bool(info[4], "tensor: copy");
    require_device(device, "tensor");
    const QueueClientPtr& client = EnvData::Of(env)->client();
    const int64_t numel = checked_numel(shape, "tensor: shape");
    const size_t bytes = size_t(numel) * dtype_size(dtype);
    if (info[0].IsNull() || info[0].IsUndefined())
      return Made(env, zeros_tensor(shape, dtype, device, client));
    if (!info[0].IsTypedArray()) throw_type_error("tensor: data must be a TypedArray");
    Napi::TypedArray array = info[0].As<Napi::TypedArray>();
    if (array.TypedArrayType() != expected_array_type(dtype))
      throw_type_error("tensor: dtype ", dtype_name(dtype), " needs a ",
                       array_type_name(expected_array_type(dtype)), ", got a ",
                       array_type_name(array.TypedArrayType()));
    if (int64_t(array.ElementLength()) != numel)
      throw_range_error("tensor: shape ", shape_string(shape), " needs ", numel,
                        " elements, got ", array.ElementLength());
    void* src = static_cast<unsigned char*>(array.ArrayBuffer().Data()) + array.ByteOffset();
    if (device == Device::Cpu && !copy) {
      Tensor t;
      t.shape = shape;
      t.strides = contiguous_strides(shape);
      t.dtype = dtype;
      t.storage = StorageRef(Storage::wrap_host(src, bytes));
      return Made(env, std::move(t), array);
    }
    return Made(env, upload(src, bytes, shape, dtype, device, client));
  });
}

Napi::Value Memory(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const MemorySnapshot s = memory_stats::snapshot();
    Napi::Object o = Napi::Object::New(env);
    o.Set("tensors", double(s.tensors));
    o.Set("hostBytes", double(s.host_bytes));
    o.Set("deviceBytes", double(s.device_bytes));
    o.Set("peakHostBytes", double(s.peak_host_bytes));
    o.Set("peakDeviceBytes", double(s.peak_device_bytes));
    o.Set("gcReleasedTensors", double(s.gc_released));
    return o;
  });
}

Napi::Value ResetPeakMemory(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    memory_stats::reset_peaks();
    return info.Env().Undefined();
  });
}

Napi::Value DeviceInfo(Napi::Env env, Device device) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("name", device_name(device));
  DeviceBackend* b = device_backend(device);
  std::string reason;
  const bool ok = b->available(&reason);
  o.Set("available", ok);
  if (!ok) {
    o.Set("reason", reason);
    return o;
  }
  o.Set("description", b->description());
  if (device == Device::Cpu) o.Set("simd", cpu_simd_name(cpu_simd()));
  o.Set("reservedBytes", double(b->reserved_bytes()));
  if (device != Device::Cpu) o.Set("driverAllocations", double(b->driver_allocations()));
  for (const auto& [name, value] : b->details()) o.Set(name, value);
  return o;
}

Napi::Value Backends(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    Napi::Array a = Napi::Array::New(env, 3);
    a.Set(0u, DeviceInfo(env, Device::Cpu));
    a.Set(1u, DeviceInfo(env, Device::Cuda));
    a.Set(2u, DeviceInfo(env, Device::CudaEmu));
    return a;
  });
}

Napi::Value EmptyCache(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const Device d = arg_device(info[0], "emptyCache: device");
    device_backend(d)->empty_cache();
    return info.Env().Undefined();
  });
}

// Waits until everything queued on the device so far has finished.
Napi::Value Synchronize(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const Device d = arg_device(info[0], "synchronize: device");
    require_device(d, "synchronize");
    Queue& q = Queue::of(d);
    q.wait(q.submitted());
    device_backend(d)->synchronize();
    return info.Env().Undefined();
  });
}

Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const int n = int(arg_int(info[0], "setNumThreads: n", 1, 1024));
    ThreadPool::instance().set_threads(n);
    return info.Env().Undefined();
  });
}

Napi::Value GetNumThreads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), ThreadPool::instance().threads());
}

Napi::Value AvailableCores(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), ThreadPool::available_cores());
}

Napi::Value SetCpuSimd(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const std::string s = arg_string(info[0], "setCpuSimd: simd");
    CpuSimd v;
    if (s == "scalar") v = CpuSimd::Scalar;
    else if (s == "avx2-fma") v = CpuSimd::Avx2Fma;
    else throw_range_error("setCpuSimd: simd: expected 'scalar' or 'avx2-fma', got '", s, "'");
    if (!set_cpu_simd(v)) throw_runtime_error("setCpuSimd: this CPU (or build) has no ", s, " path");
    return info.Env().Undefined();
  });
}

// The op profiler (core/queue.h): setOpProfiling(on) starts (clearing the sums) or stops it;
// opProfile() returns [{ device, label, calls, ms }].
Napi::Value SetOpProfiling(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    set_op_profiling(arg_bool(info[0], "setOpProfiling: on"));
    return info.Env().Undefined();
  });
}

Napi::Value OpProfile(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const std::vector<OpProfileEntry> entries = op_profile();
    Napi::Array a = Napi::Array::New(env, entries.size());
    for (size_t i = 0; i < entries.size(); ++i) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("device", device_name(entries[i].device));
      o.Set("label", entries[i].label);
      o.Set("calls", double(entries[i].calls));
      o.Set("ms", entries[i].ms);
      a.Set(uint32_t(i), o);
    }
    return a;
  });
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  EnvData::Init(env);
  TensorHandle::Init(env, exports);
  exports.Set("createTensor", Napi::Function::New<CreateTensor>(env, "createTensor"));
  exports.Set("memory", Napi::Function::New<Memory>(env, "memory"));
  exports.Set("resetPeakMemory", Napi::Function::New<ResetPeakMemory>(env, "resetPeakMemory"));
  exports.Set("backends", Napi::Function::New<Backends>(env, "backends"));
  exports.Set("emptyCache", Napi::Function::New<EmptyCache>(env, "emptyCache"));
  exports.Set("synchronize", Napi::Function::New<Synchronize>(env, "synchronize"));
  exports.Set("setNumThreads", Napi::Function::New<SetNumThreads>(env, "setNumThreads"));
  exports.Set("getNumThreads", Napi::Function::New<GetNumThreads>(env, "getNumThreads"));
  exports.Set("availableCores", Napi::Function::New<AvailableCores>(env, "availableCores"));
  exports.Set("setCpuSimd", Napi::Function::New<SetCpuSimd>(env, "setCpuSimd"));
  exports.Set("setOpProfiling", Napi::Function::New<SetOpProfiling>(env, "setOpProfiling"));
  exports.Set("opProfile", Napi::Function::New<OpProfile>(env, "opProfile"));
#if defined(SECVIT_HAVE_CUDA)
  exports.Set("builtWithCuda", true);
#else
  exports.Set("builtWithCuda", false);
#endif
  InitOps(env, exports);
  return exports;
}

}  // namespace
}  // namespace secvit::napi

static Napi::Object InitSecvit(Napi::Env env, Napi::Object exports) {
  return secvit::napi::Init(env, exports);
}
NODE_API_MODULE(secvit, InitSecvit)
