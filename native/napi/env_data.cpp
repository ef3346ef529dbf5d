#include "env_data.h"

#include "core/device.h"

namespace secvit::napi {

EnvData* EnvData::Init(Napi::Env env) {
  auto* data = new EnvData();
  env.SetInstanceData<EnvData>(data);
  napi_value name;
  napi_create_string_utf8(env, "secvit.settle", NAPI_AUTO_LENGTH, &name);
  napi_threadsafe_function tsfn = nullptr;
  if (napi_create_threadsafe_function(env, nullptr, nullptr, name, 0, 1, nullptr, nullptr, data,
                                      &EnvData::CallJs, &tsfn) != napi_ok)
    throw Napi::Error::New(env, "secvit: could not create its completion channel");
  // Unreferenced while no Promise waits on it: an idle secvit never keeps the process alive.
  napi_unref_threadsafe_function(env, tsfn);
  data->poster_->tsfn_ = tsfn;
  Napi::Float64Array meta = Napi::Float64Array::New(env, size_t(kMetaSlot) * kMetaSlots);
  data->meta_ = meta.Data();
  data->meta_array = Napi::Persistent(meta);
  napi_add_env_cleanup_hook(env, &EnvData::Cleanup, data);
  return data;
}

EnvData* EnvData::Of(Napi::Env env) { return env.GetInstanceData<EnvData>(); }

void EnvData::WriteMeta(int slot, const Tensor& t) {
  double* m = meta_ + size_t(slot) * kMetaSlot;
  const size_t n = t.shape.size();
  m[0] = double(n);
  m[1] = double(int(t.dtype));
  m[2] = double(int(t.device()));
  m[3] = double(t.offset);
  for (size_t i = 0; i < n; ++i) {
    m[4 + i] = double(t.shape[i]);
    m[12 + i] = double(t.strides[i]);
  }
}

Napi::Promise EnvData::Track(Napi::Env env, JsJob* job) {
  napi_value promise;
  if (napi_create_promise(env, &job->deferred, &promise) != napi_ok) {
    delete job;
    throw Napi::Error::New(env, "secvit: could not create a Promise");
  }
  if (outstanding_++ == 0) napi_ref_threadsafe_function(env, poster_->tsfn_);
  return Napi::Promise(env, promise);
}

void EnvData::Poster::Post(JsJob* job) {
  std::lock_guard<std::mutex> lk(mu_);
  if (alive_ && napi_call_threadsafe_function(tsfn_, job, napi_tsfn_nonblocking) == napi_ok) return;
  // The environment is gone: its references went with it.
  delete job;
}

void EnvData::CallJs(napi_env env, napi_value, void* context, void* data) {
  auto* job = static_cast<JsJob*>(data);
  if (env == nullptr || job == nullptr) {  // the channel is being torn down
    delete job;
    return;
  }
  auto* self = static_cast<EnvData*>(context);
  if (job->deferred == nullptr) {  // a sweep request
    delete job;
    self->Sweep(env);
    return;
  }
  self->Settle(env, job);
  if (--self->outstanding_ == 0) napi_unref_threadsafe_function(env, self->poster_->tsfn_);
  self->Sweep(env);
}

// Settles one Promise. Never throws: during teardown every napi call may fail, and then the
// Promise simply stays pending with its environment.
void EnvData::Settle(napi_env env, JsJob* job) {
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) {
    delete job;
    return;
  }
  napi_value kept = nullptr;
  if (job->keep != nullptr) napi_get_reference_value(env, job->keep, &kept);
  if (kept == nullptr) napi_get_undefined(env, &kept);
  napi_value value = nullptr;
  TaskErrorPtr error = job->error;
  if (!error) {
    try {
      value = job->finish ? job->finish(env, kept) : kept;
    } catch (const Napi::Error& e) {
      error = std::make_shared<const TaskError>(TaskError{ErrorKind::Runtime, e.Message()});
    } catch (const Error& e) {
      error = std::make_shared<const TaskError>(TaskError{e.kind(), e.what()});
    } catch (const std::exception& e) {
      error = std::make_shared<const TaskError>(TaskError{ErrorKind::Runtime, e.what()});
    }
  }
  if (error) {
    napi_value msg, err;
    napi_create_string_utf8(env, error->message.c_str(), error->message.size(), &msg);
    if (error->kind == ErrorKind::Type) napi_create_type_error(env, nullptr, msg, &err);
    else if (error->kind == ErrorKind::Range) napi_create_range_error(env, nullptr, msg, &err);
    else napi_create_error(env, nullptr, msg, &err);
    napi_reject_deferred(env, job->deferred, err);
    if (job->discard) {
      try {
        job->discard(env, kept);
      } catch (...) {
      }
    }
  } else {
    napi_resolve_deferred(env, job->deferred, value);
  }
  if (job->keep != nullptr) napi_delete_reference(env, job->keep);
  delete job;
  napi_close_handle_scope(env, scope);
}

void EnvData::DeferRelease(napi_env env, StoragePtr storage, napi_ref source) {
  deferred_.push_back(Deferred{storage, source});
  PosterPtr poster = poster_;
  storage->when_idle([poster] { poster->Post(new JsJob()); });
}

void EnvData::Sweep(napi_env env) {
  for (size_t i = 0; i < deferred_.size();) {
    if (deferred_[i].storage->pending_uses() == 0) {
      napi_delete_reference(env, deferred_[i].source);
      deferred_[i] = deferred_.back();
      deferred_.pop_back();
    } else {
      ++i;
    }
  }
}

// The environment is ending: skip its unstarted tasks, wait for its running ones (they may read
// its arrays), then close the channel (what is still queued in it is freed unsettled).
void EnvData::Cleanup(void* arg) {
  auto* self = static_cast<EnvData*>(arg);
  self->client_->cancelled.store(true, std::memory_order_release);
  for (Device d : {Device::Cpu, Device::Cuda, Device::CudaEmu}) Queue::of(d).wait_for_client(*self->client_);
  napi_threadsafe_function tsfn;
  {
    std::lock_guard<std::mutex> lk(self->poster_->mu_);
    self->poster_->alive_ = false;
    tsfn = self->poster_->tsfn_;
  }
  napi_release_threadsafe_function(tsfn, napi_tsfn_abort);
  self->deferred_.clear();  // their references are freed with the environment
}

}  // namespace secvit::napi
