// Bindings of secAttention, windowAttention, globalAttention (and the unfused SEC baseline used
// by the benchmarks). Validation lives here, once for every backend.
#include <memory>

#include "async_call.h"
#include "attention_binding.h"
#include "core/device_backend.h"
#include "core/half.h"
#include "cpu/attention.h"
#include "cuda/attention.h"
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
    if (ts[i]->dtype == DType::Int32)
      throw_type_error(op, ": ", names[i], " must be float32, bfloat16 or float16, got ",
                       dtype_name(ts[i]->dtype));
    if (ts[i]->dtype != q.dtype)
      throw_type_error(op, ": q, k and v must have one dtype, got ", dtype_name(q.dtype), ", ",
                       dtype_name(k.dtype), " and ", dtype_name(v.dtype));
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
  // CUDA grids put heads on gridDim.z (gridDim.y in the sort) and query tiles on gridDim.y,
  // each at most 65535; groups are on gridDim.x, which has no such limit.
  if (q.device() != Device::Cpu && q.shape[0] * q.shape[1] > 65535)
    throw_range_error(op, ": B x H must be at most 65535 on ", device_name(q.device()), ", got ",
                      q.shape[0] * q.shape[1]);
  if (q.device() != Device::Cpu && q.shape[2] > int64_t(65535) * 64)
    throw_range_error(op, ": L must be at most ", int64_t(65535) * 64, " on ",
                      device_name(q.device()), ", got ", q.shape[2]);
  if (q.dtype != DType::Float32 && q.device() != Device::Cpu && d > 128)
    throw_range_error(op, ": the ", dtype_name(q.dtype),
                      " tensor-core kernels support head dim D <= 128, got ", d);
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
  if (kind == Kind::SecUnfused && call.q.device() == Device::Cpu && call.q.dtype != DType::Float32)
    throw_runtime_error(op, ": the unfused baseline runs on float32 tensors on the cpu, got ",
                        dtype_name(call.q.dtype));
  require_device(call.q.device(), op);
  return call;
}

// The CUDA entry points of one build of native/cuda (real or emulated).
struct CudaAttentionOps {
  void (*sec)(const CudaAttentionArgs&, int64_t, int32_t*);
  void (*sec_unfused)(const CudaAttentionArgs&, int64_t, int32_t*);
  void (*window)(const CudaAttentionArgs&, const CudaWindowArgs&);
  void (*global)(const CudaAttentionArgs&);
};

CudaAttentionOps cuda_ops(Device device) {
  if (device == Device::CudaEmu)
    return {cuda_emu_impl::sec_attention, cuda_emu_impl::sec_attention_unfused,
            cuda_emu_impl::window_attention, cuda_emu_impl::global_attention};
#if defined(SECVIT_HAVE_CUDA)
  return {cuda_impl::sec_attention, cuda_impl::sec_attention_unfused, cuda_impl::window_attention,
          cuda_impl::global_attention};
#else
  throw_runtime_error("cuda: secvit was built without CUDA");
#endif
}

void run_device(AttentionCall& c, int32_t* order) {
  const Shape& s = c.q.shape;
  const CudaAttentionOps ops = cuda_ops(c.q.device());
  const CudaAttnType type = c.q.dtype == DType::Float32
                               ? CudaAttnType::F32
                               : (c.q.dtype == DType::BFloat16 ? CudaAttnType::BF16 : CudaAttnType::F16);
  const CudaAttentionArgs a{c.q.storage->data(), c.k.storage->data(), c.v.storage->data(),
                            c.out.storage->data(), s[0] * s[1], s[2], s[3], type};
  switch (c.kind) {
    case Kind::Sec: ops.sec(a, c.clusters, order); break;
    case Kind::Window: {
      const auto& w = c.window;
      ops.window(a, CudaWindowArgs{w.height, w.width, w.win_h, w.win_w, w.shift_h, w.shift_w});
      break;
    }
    case Kind::Global: ops.global(a); break;
    case Kind::SecUnfused: ops.sec_unfused(a, c.clusters, order); break;
  }
  // Settle here, on the calling (worker) thread: the result is complete when the call returns
  // and kernel failures surface as this call's error.
  device_backend(c.q.device())->synchronize();
}

// 16-bit tensors on the CPU: widen to fp32, run the fp32 kernels, round the result back.
Tensor widen(const Tensor& t) {
  Tensor w = empty_tensor(t.shape, DType::Float32, Device::Cpu);
  const uint16_t* src = t.data<uint16_t>();
  float* dst = w.data<float>();
  const int64_t n = t.numel();
  const bool bf16 = t.dtype == DType::BFloat16;
  for (int64_t i = 0; i < n; ++i) dst[i] = bf16 ? bf16_to_f32(src[i]) : f16_to_f32(src[i]);
  return w;
}

void run(AttentionCall& c);

void run_cpu_16bit(AttentionCall& c) {
  const DType dtype = c.q.dtype;
  AttentionCall wide = c;
  wide.q = widen(c.q);
  wide.k = widen(c.k);
  wide.v = widen(c.v);
  run(wide);
  c.out = empty_tensor(c.q.shape, dtype, Device::Cpu);
  const float* src = wide.out.data<float>();
  uint16_t* dst = c.out.data<uint16_t>();
  const int64_t n = c.out.numel();
  for (int64_t i = 0; i < n; ++i) dst[i] = dtype == DType::BFloat16 ? f32_to_bf16(src[i]) : f32_to_f16(src[i]);
  c.order = std::move(wide.order);
  c.q = c.k = c.v = Tensor();
}

void run(AttentionCall& c) {
  if (c.q.device() == Device::Cpu && c.q.dtype != DType::Float32) {
    run_cpu_16bit(c);
    return;
  }
  const Shape& s = c.q.shape;
  c.out = empty_tensor(s, c.q.dtype, c.q.device());
  int32_t* order = nullptr;
  if (c.return_order) {
    c.order = empty_tensor(Shape{s[0], s[1], s[2]}, DType::Int32, c.q.device());
    order = c.order.data<int32_t>();
  }
  if (c.q.device() != Device::Cpu) {
    run_device(c, order);
  } else {
    const cpu::AttentionParams p{c.q.data<float>(), c.k.data<float>(), c.v.data<float>(),
                                 c.out.data<float>(), s[0], s[1], s[2], s[3]};
    switch (c.kind) {
      case Kind::Sec: cpu::sec_attention_f32(p, c.clusters, order); break;
      case Kind::SecUnfused: cpu::sec_attention_unfused_f32(p, c.clusters, order); break;
      case Kind::Window: cpu::window_attention_f32(p, c.window); break;
      case Kind::Global: cpu::global_attention_f32(p); break;
    }
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
