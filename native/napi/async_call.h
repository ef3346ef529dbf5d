// Runs native work off the JS thread and settles a Promise with the result.
//
// `run` executes on a libuv worker thread and must not touch JS; `finish` runs back on the JS
// thread and builds the result value. The worker holds persistent references to `keep_alive`
// (the argument handles and any TypedArrays their memory is borrowed from) until it has
// settled, so nothing it reads can be collected or freed under it, even if the user disposes
// the tensors meanwhile. The worker (and the Tensor copies captured by `run`) is destroyed on
// the JS thread after settling.
#pragma once

#include <napi.h>

#include <functional>
#include <string>
#include <vector>

#include "js_errors.h"

namespace secvit::napi {

class AsyncCall final : public Napi::AsyncWorker {
 public:
  using Run = std::function<void()>;
  using Finish = std::function<Napi::Value(Napi::Env)>;

  static Napi::Promise Start(Napi::Env env, const char* name,
                             const std::vector<Napi::Value>& keep_alive, Run run, Finish finish) {
    auto* call = new AsyncCall(env, name, keep_alive, std::move(run), std::move(finish));
    Napi::Promise promise = call->deferred_.Promise();
    call->Queue();
    return promise;
  }

 protected:
  void Execute() override {
    try {
      run_();
    } catch (const Error& e) {
      kind_ = e.kind();
      SetError(e.what());
    } catch (const std::bad_alloc&) {
      SetError("out of host memory");
    } catch (const std::exception& e) {
      SetError(e.what());
    }
    // Drop the captured inputs now: their storages are then released before the Promise
    // settles, so memory() is exact as soon as the caller resumes. (Storages hold no JS
    // references; those live in keep_ and are released on the JS thread.)
    run_ = nullptr;
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    try {
      Napi::Value v = finish_(env);
      report_external_memory(env);
      deferred_.Resolve(v);
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    } catch (const Error& e) {
      deferred_.Reject(make_js_error(env, e.kind(), e.what()).Value());
    } catch (const std::exception& e) {
      deferred_.Reject(make_js_error(env, ErrorKind::Runtime, e.what()).Value());
    }
  }

  void OnError(const Napi::Error& e) override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    report_external_memory(env);
    deferred_.Reject(make_js_error(env, kind_, e.Message()).Value());
  }

 private:
  AsyncCall(Napi::Env env, const char* name, const std::vector<Napi::Value>& keep_alive, Run run,
            Finish finish)
      : Napi::AsyncWorker(env, name),
        deferred_(Napi::Promise::Deferred::New(env)),
        run_(std::move(run)),
        finish_(std::move(finish)) {
    for (const Napi::Value& v : keep_alive) {
      if (!v.IsEmpty() && !v.IsUndefined()) keep_.push_back(Napi::Persistent(v));
    }
  }

  Napi::Promise::Deferred deferred_;
  Run run_;
  Finish finish_;
  std::vector<Napi::Reference<Napi::Value>> keep_;
  ErrorKind kind_ = ErrorKind::Runtime;
};

}  // namespace secvit::napi
