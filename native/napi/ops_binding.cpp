#include "ops_binding.h"

#include "async_call.h"
#include "cpu/matmul.h"
#include "js_errors.h"
#include "tensor_handle.h"

namespace secvit::napi {
namespace {

// ---- matmul ---------------------------------------------------------------------------------
// a [M,K] or [B,M,K]; b [K,N] or [B,K,N] (a 2-D b is shared by every batch); float32, cpu.
struct MatmulArgs {
  Tensor a, b;
  cpu::MatmulParams params{};
  Shape out_shape;
};

MatmulArgs check_matmul(const Tensor& a, const Tensor& b) {
  const char* op = "matmul";
  if (a.dtype != DType::Float32 || b.dtype != DType::Float32)
    throw_type_error(op, ": a and b must be float32, got ", dtype_name(a.dtype), " and ",
                     dtype_name(b.dtype));
  if (a.device() != b.device())
    throw_range_error(op, ": a and b must be on one device, got ", device_name(a.device()),
                      " and ", device_name(b.device()));
  if (a.device() != Device::Cpu)
    throw_runtime_error(op, ": not implemented on ", device_name(a.device()),
                        " (move the tensors to 'cpu')");
  const size_t ra = a.shape.size(), rb = b.shape.size();
  if (ra < 2 || ra > 3) throw_range_error(op, ": a must be [M,K] or [B,M,K], got ", shape_string(a.shape));
  if (rb < 2 || rb > 3) throw_range_error(op, ": b must be [K,N] or [B,K,N], got ", shape_string(b.shape));
  if (rb == 3 && ra != 3) throw_range_error(op, ": a batched b [B,K,N] needs a batched a [B,M,K]");
  const int64_t batch = ra == 3 ? a.shape[0] : 1;
  const int64_t m = a.shape[ra - 2], k = a.shape[ra - 1];
  const int64_t kb = b.shape[rb - 2], n = b.shape[rb - 1];
  if (k != kb)
    throw_range_error(op, ": inner dimensions differ: a ", shape_string(a.shape), " has K=", k,
                      ", b ", shape_string(b.shape), " has K=", kb);
  if (rb == 3 && b.shape[0] != batch)
    throw_range_error(op, ": batch sizes differ: a has ", batch, ", b has ", b.shape[0]);
  MatmulArgs args;
  args.a = a;
  args.b = b;
  args.params = cpu::MatmulParams{nullptr, nullptr, nullptr, batch, m, k, n,
                                  m * k, rb == 3 ? k * n : 0, m * n};
  args.out_shape = ra == 3 ? Shape{batch, m, n} : Shape{m, n};
  return args;
}

Tensor run_matmul(MatmulArgs args) {
  Tensor out = empty_tensor(args.out_shape, DType::Float32, Device::Cpu);
  cpu::MatmulParams p = args.params;
  p.a = args.a.data<float>();
  p.b = args.b.data<float>();
  p.c = out.data<float>();
  cpu::matmul_f32(p);
  return out;
}

Napi::Value MatmulSync(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const Tensor& a = TensorHandle::FromValue(info[0], "matmul", "a")->tensor();
    const Tensor& b = TensorHandle::FromValue(info[1], "matmul", "b")->tensor();
    return TensorHandle::New(info.Env(), run_matmul(check_matmul(a, b)));
  });
}

Napi::Value Matmul(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    TensorHandle* ha = TensorHandle::FromValue(info[0], "matmul", "a");
    TensorHandle* hb = TensorHandle::FromValue(info[1], "matmul", "b");
    MatmulArgs args = check_matmul(ha->tensor(), hb->tensor());
    auto result = std::make_shared<Tensor>();
    return AsyncCall::Start(
        env, "secvit.matmul", {info[0], info[1], ha->source(env), hb->source(env)},
        [args, result] { *result = run_matmul(args); },
        [result](Napi::Env e) -> Napi::Value { return TensorHandle::New(e, std::move(*result)); });
  });
}

}  // namespace

void InitOps(Napi::Env env, Napi::Object exports) {
  exports.Set("matmulSync", Napi::Function::New<MatmulSync>(env, "matmulSync"));
  exports.Set("matmul", Napi::Function::New<Matmul>(env, "matmul"));
}

}  // namespace secvit::napi
