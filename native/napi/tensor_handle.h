// TensorHandle: the JS object that owns one native tensor. The TypeScript Tensor class wraps
// it; users never see it. dispose() drops the handle's share of the storage at once; a pending
// async call that uses the tensor holds its own share (and a reference to the source
// TypedArray for zero-copy tensors), so the bytes stay valid until that call has finished.
// If JS forgets to dispose, the GC finalizer releases it.
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

  explicit TensorHandle(const Napi::CallbackInfo& info);
  ~TensorHandle() override;

  const Tensor& tensor() const { return tensor_; }
  // The JS value whose memory this tensor borrows (undefined when it owns its memory).
  Napi::Value source(Napi::Env env) const;

 private:
  void release();
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value Disposed(const Napi::CallbackInfo& info);
  Napi::Value ReadSync(const Napi::CallbackInfo& info);
  Napi::Value Read(const Napi::CallbackInfo& info);
  Napi::Value ToSync(const Napi::CallbackInfo& info);
  Napi::Value To(const Napi::CallbackInfo& info);
  Napi::Value Info(const Napi::CallbackInfo& info);

  Tensor tensor_;
  bool live_ = false;
  Napi::Reference<Napi::Value> source_;
};

// A TypedArray of the right class for `dtype` (float32 -> Float32Array, int32 -> Int32Array,
// 16-bit types -> Uint16Array of raw bits) over a fresh ArrayBuffer of `bytes`.
Napi::TypedArray new_typed_array(Napi::Env env, DType dtype, size_t elements, void** data);

}  // namespace secvit::napi
