// TensorHandle: the JS object that owns one native tensor (a view of a storage). The TypeScript
// Tensor class wraps it; users never see it. dispose() drops the handle's ownership at once:
// queued work that still uses the storage keeps working (storage.h), and a borrowed TypedArray
// stays referenced until that work is done. If JS forgets to dispose, the GC finalizer does it.
#pragma once

#include <napi.h>

#include "core/tensor.h"

namespace secvit::napi {

class TensorHandle : public Napi::ObjectWrap<TensorHandle> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  // A new JS handle owning `tensor`. `source` (a TypedArray) is kept alive with it when the
  // tensor borrows that array's memory.
  static Napi::Object New(Napi::Env env, Tensor tensor, Napi::Value source = Napi::Value());
  // The handle behind a JS value, checked: TypeError if it is not a handle, Error naming `op`
  // and `what` if it was disposed.
  static TensorHandle* FromValue(const Napi::Value& v, const char* op, const char* what);
  // Null for undefined/null, else FromValue.
  static TensorHandle* FromOptional(const Napi::Value& v, const char* op, const char* what);

  explicit TensorHandle(const Napi::CallbackInfo& info);
  ~TensorHandle() override;

  const Tensor& tensor() const { return tensor_; }
  // A new handle over the same storage (a view), keeping the same borrowed source alive.
  Napi::Object NewView(Napi::Env env, Tensor view) const;

 private:
  void release(napi_env env);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value Disposed(const Napi::CallbackInfo& info);
  Napi::Value ReadSync(const Napi::CallbackInfo& info);
  Napi::Value Read(const Napi::CallbackInfo& info);
  Napi::Value ToSync(const Napi::CallbackInfo& info);
  Napi::Value To(const Napi::CallbackInfo& info);
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value Wait(const Napi::CallbackInfo& info);
  Napi::Value Ready(const Napi::CallbackInfo& info);

  Tensor tensor_;
  bool live_ = false;
  napi_ref source_ = nullptr;  // the borrowed TypedArray, if any
};

// A TypedArray of the right class for `dtype` (float32 -> Float32Array, int32 -> Int32Array,
// 16-bit types -> Uint16Array of raw bits) over a fresh ArrayBuffer of `bytes`.
Napi::TypedArray new_typed_array(Napi::Env env, DType dtype, size_t elements, void** data);

}  // namespace secvit::napi
