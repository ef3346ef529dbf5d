// Per-JS-environment state (the main thread and each worker thread have their own):
//   - the TensorHandle class;
//   - the environment's QueueClient: its tasks, cancelled when the environment is torn down;
//   - one thread-safe function through which queued work settles this environment's Promises
//     (reads, copies) on its JS thread, without blocking a libuv thread;
//   - borrowed TypedArrays whose tensors were disposed while queued work still reads them:
//     their references are dropped once that work is done.
// Teardown (worker.terminate(), process.exit() in a worker, the main thread exiting) cancels
// the environment's unstarted tasks, waits for the running ones, and settles nothing more.
#pragma once

#include <napi.h>

#include <functional>
#include <mutex>
#include <vector>

#include "core/queue.h"
#include "core/tensor.h"

namespace secvit::napi {

// Work whose completion settles a Promise on the JS thread.
struct JsJob {
  napi_deferred deferred = nullptr;
  napi_ref keep = nullptr;  // the value to resolve with, or what must live until then
  // Builds the resolution value on the JS thread (may be empty: resolve with `keep`'s value).
  std::function<napi_value(napi_env, napi_value kept)> finish;
  // On rejection: releases what `keep` holds (e.g. a handle that will never reach JS).
  std::function<void(napi_env, napi_value kept)> discard;
  TaskErrorPtr error;       // set by the task when it failed
};

class EnvData {
 public:
  static EnvData* Init(Napi::Env env);  // once per environment, at module init
  static EnvData* Of(Napi::Env env);

  Napi::FunctionReference handle_class;

  // Metadata of the tensors a call just made, for the TypeScript Tensor constructor to read
  // without an object per tensor: slot i holds [ndim, dtype, device, offset, shape[8],
  // strides[8]] of the call's i-th result. One Float64Array per environment.
  static constexpr int kMetaSlot = 4 + 2 * 8;
  static constexpr int kMetaSlots = 6;  // kMaxOpOutputs (op_binding.cpp checks)
  void WriteMeta(int slot, const Tensor& t);
  Napi::Reference<Napi::Float64Array> meta_array;
  const QueueClientPtr& client() const { return client_; }

  // A Promise settled when `job` is posted back with Post(). Call on the JS thread.
  Napi::Promise Track(Napi::Env env, JsJob* job);
  // From any thread: settles `job` on the JS thread (or frees it if the environment is gone).
  // A poster outlives the environment safely, so tasks and hooks hold one.
  class Poster {
   public:
    void Post(JsJob* job);

   private:
    friend class EnvData;
    std::mutex mu_;
    bool alive_ = true;
    napi_threadsafe_function tsfn_ = nullptr;
  };
  using PosterPtr = std::shared_ptr<Poster>;
  const PosterPtr& poster() const { return poster_; }

  // Keeps `source` (a borrowed array) alive until `storage` has no queued users. JS thread.
  void DeferRelease(napi_env env, StoragePtr storage, napi_ref source);
  // Drops the references whose storages are idle. JS thread; cheap when there is nothing to do.
  void Sweep(napi_env env);

 private:
  static void CallJs(napi_env env, napi_value, void* context, void* data);
  static void Cleanup(void* arg);
  void Settle(napi_env env, JsJob* job);

  double* meta_ = nullptr;
  QueueClientPtr client_ = std::make_shared<QueueClient>();
  PosterPtr poster_ = std::make_shared<Poster>();
  int outstanding_ = 0;        // JS thread: Promises not settled yet (the TSFN is ref'd while > 0)
  struct Deferred {
    StoragePtr storage;
    napi_ref source;
  };
  std::vector<Deferred> deferred_;  // JS thread
};

}  // namespace secvit::napi
