// Bindings of secAttention, windowAttention, globalAttention (and the unfused SEC baseline used
// by the benchmarks). Validation lives here, once for every backend.
#include <memory>

#include "async_call.h"
#include "attention_binding.h"
#include "cpu/attention.h"
#include "js_errors.h"
#include "tensor_handle.h"

namespace secvit::napi {
namespace {

enum class Kind { Sec, SecUnfused, Window, Global };

struct AttentionCall {
  Kind kind;
  Tensor q, k, v;
  int64_t clusters = 1;
  bool return_order = false;
  cpu::WindowParams window{};
  // results
  Tensor out, order;
};

const char* op_name(Kind k) {
  switch (k) {
    case Kind::Sec: return "secAttention";
    case Kind::SecUnfused: return "secAttentionUnfused";
    case Kind::Window: return "windowAttention";
    case Kind::Global: return "globalAttention";
  }
  return "?";
}

void check_qkv(const char* op, const Tensor& q, const Tensor& k, const Tensor& v) {
  const Tensor* ts[3] = {&q, &k, &v};
  const char* names[3] = {"q", "k", "v"};
  for (int i = 0; i < 3; ++i) {
    if (ts[i]->dtype != DType::Float32)
      throw_type_error(op, ": ", names[i], " must be float32, got ", dtype_name(ts[i]->dtype));
    if (ts[i]->shape.size() != 4)
      throw_range_error(op, ": ", names[i], " must be [B, H, L, D], got ", shape_string(ts[i]->shape));
  }
  if (k.shape != q.shape || v.shape != q.shape)
    throw_range_error(op, ": q, k and v must have one shape, got ", shape_string(q.shape), ", ",
                      shape_string(k.shape), " and ", shape_string(v.shape));
  if (k.device() != q.device() || v.device() != q.device())
    throw_range_error(op, ": q, k and v must be on one device, got ", device_name(q.device()), ", ",
                      device_name(k.device()), " and ", device_name(v.device()));
  const int64_t d = q.shape[3];
  if (d < 1 || d > 256) throw_range_error(op, ": head dim D must be in [1, 256], got ", d);
  if (q.shape[2] > (int64_t(1) << 30)) throw_range_error(op, ": L is too large: ", q.shape[2]);
}

AttentionCall parse(const Napi::CallbackInfo& info, Kind kind) {
  const char* op = op_name(kind);
  AttentionCall call;
  call.kind = kind;
  call.q = TensorHandle::FromValue(info[0], op, "q")->tensor();
  call.k = TensorHandle::FromValue(info[1], op, "k")->tensor();
  call.v = TensorHandle::FromValue(info[2], op, "v")->tensor();
  check_qkv(op, call.q, call.k, call.v);
  const int64_t l = call.q.shape[2];
  if (kind == Kind::Sec || kind == Kind::SecUnfused) {
    call.clusters = arg_int(info[3], str(op, ": clusters"), -(int64_t(1) << 31), int64_t(1) << 31);
    if (call.clusters > l)
      throw_range_error(op, ": clusters must be at most L (", l, "), got ", call.clusters);
    call.return_order = arg_bool(info[4], str(op, ": returnOrder"));
  } else if (kind == Kind::Window) {
    auto& w = call.window;
    w.height = arg_int(info[3], str(op, ": height"), 1, int64_t(1) << 30);
    w.width = arg_int(info[4], str(op, ": width"), 1, int64_t(1) << 30);
    w.win_h = arg_int(info[5], str(op, ": window[0]"), 1, int64_t(1) << 30);
    w.win_w = arg_int(info[6], str(op, ": window[1]"), 1, int64_t(1) << 30);
    w.shift_h = arg_int(info[7], str(op, ": shift[0]"), 0, int64_t(1) << 30);
    w.shift_w = arg_int(info[8], str(op, ": shift[1]"), 0, int64_t(1) << 30);
    if (w.height * w.width != l)
      throw_range_error(op, ": height x width (", w.height, " x ", w.width, " = ", w.height * w.width,
                        ") must equal L (", l, ")");
    if (w.win_h > w.height || w.win_w > w.width)
      throw_range_error(op, ": window [", w.win_h, ", ", w.win_w, "] is larger than the grid [",
                        w.height, ", ", w.width, "]");
    if (w.shift_h >= w.win_h || w.shift_w >= w.win_w)
      throw_range_error(op, ": shift [", w.shift_h, ", ", w.shift_w,
                        "] must be smaller than the window [", w.win_h, ", ", w.win_w, "]");
  }
  if (call.q.device() != Device::Cpu)
    throw_runtime_error(op, ": not implemented on ", device_name(call.q.device()), " yet");
  return call;
}

void run(AttentionCall& c) {
  const Shape& s = c.q.shape;
  c.out = empty_tensor(s, DType::Float32, c.q.device());
  cpu::AttentionParams p{c.q.data<float>(), c.k.data<float>(), c.v.data<float>(),
                         c.out.data<float>(), s[0], s[1], s[2], s[3]};
  int32_t* order = nullptr;
  if (c.return_order) {
    c.order = empty_tensor(Shape{s[0], s[1], s[2]}, DType::Int32, c.q.device());
    order = c.order.data<int32_t>();
  }
  switch (c.kind) {
    case Kind::Sec: cpu::sec_attention_f32(p, c.clusters, order); break;
    case Kind::SecUnfused: cpu::sec_attention_unfused_f32(p, c.clusters, order); break;
    case Kind::Window: cpu::window_attention_f32(p, c.window); break;
    case Kind::Global: cpu::global_attention_f32(p); break;
  }
  // Inputs are no longer needed: release them before the result reaches JS.
  c.q = c.k = c.v = Tensor();
}

Napi::Value result(Napi::Env env, AttentionCall& c) {
  if (!c.return_order) return TensorHandle::New(env, std::move(c.out));
  Napi::Object o = Napi::Object::New(env);
  o.Set("out", TensorHandle::New(env, std::move(c.out)));
  o.Set("order", TensorHandle::New(env, std::move(c.order)));
  return o;
}

template <Kind K>
Napi::Value Sync(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    AttentionCall c = parse(info, K);
    run(c);
    return result(info.Env(), c);
  });
}

template <Kind K>
Napi::Value Async(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    auto c = std::make_shared<AttentionCall>(parse(info, K));
    std::vector<Napi::Value> keep{info[0], info[1], info[2]};
    for (int i = 0; i < 3; ++i)
      keep.push_back(TensorHandle::FromValue(info[i], op_name(K), "q")->source(env));
    return AsyncCall::Start(
        env, "secvit.attention", keep, [c] { run(*c); },
        [c](Napi::Env e) -> Napi::Value { return result(e, *c); });
  });
}

}  // namespace

void InitAttention(Napi::Env env, Napi::Object exports) {
  exports.Set("secAttentionSync", Napi::Function::New<Sync<Kind::Sec>>(env));
  exports.Set("secAttention", Napi::Function::New<Async<Kind::Sec>>(env));
  exports.Set("secAttentionUnfusedSync", Napi::Function::New<Sync<Kind::SecUnfused>>(env));
  exports.Set("secAttentionUnfused", Napi::Function::New<Async<Kind::SecUnfused>>(env));
  exports.Set("windowAttentionSync", Napi::Function::New<Sync<Kind::Window>>(env));
  exports.Set("windowAttention", Napi::Function::New<Async<Kind::Window>>(env));
  exports.Set("globalAttentionSync", Napi::Function::New<Sync<Kind::Global>>(env));
  exports.Set("globalAttention", Napi::Function::New<Async<Kind::Global>>(env));
}

}  // namespace secvit::napi
