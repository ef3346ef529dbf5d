#include "js_errors.h"

#include <cmath>

namespace secvit::napi {

Napi::Error make_js_error(Napi::Env env, ErrorKind kind, const std::string& message) {
  switch (kind) {
    case ErrorKind::Type: return Napi::TypeError::New(env, message);
    case ErrorKind::Range: return Napi::RangeError::New(env, message);
    case ErrorKind::Runtime: break;
  }
  return Napi::Error::New(env, message);
}

namespace {
std::string js_type(const Napi::Value& v) {
  switch (v.Type()) {
    case napi_undefined: return "undefined";
    case napi_null: return "null";
    case napi_boolean: return "boolean";
    case napi_number: return "number";
    case napi_string: return "string";
    case napi_symbol: return "symbol";
    case napi_object: return v.IsArray() ? "array" : "object";
    case napi_function: return "function";
    case napi_external: return "external";
    case napi_bigint: return "bigint";
  }
  return "unknown";
}
}  // namespace

std::string arg_string(const Napi::Value& v, const std::string& what) {
  if (!v.IsString()) throw_type_error(what, ": expected a string, got ", js_type(v));
  return v.As<Napi::String>().Utf8Value();
}

bool arg_bool(const Napi::Value& v, const std::string& what) {
  if (!v.IsBoolean()) throw_type_error(what, ": expected a boolean, got ", js_type(v));
  return v.As<Napi::Boolean>().Value();
}

bool arg_bool(const Napi::Value& v, const char* op, const char* arg) {
  if (!v.IsBoolean()) throw_type_error(op, ": ", arg, ": expected a boolean, got ", js_type(v));
  return v.As<Napi::Boolean>().Value();
}

int64_t arg_int(const Napi::Value& v, const std::string& what, int64_t min, int64_t max) {
  if (!v.IsNumber()) throw_type_error(what, ": expected an integer, got ", js_type(v));
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || std::floor(d) != d)
    throw_range_error(what, ": expected an integer, got ", d);
  if (d < double(min) || d > double(max))
    throw_range_error(what, ": expected an integer in [", min, ", ", max, "], got ", d);
  return int64_t(d);
}

Shape arg_shape(const Napi::Value& v, const std::string& what) {
  if (!v.IsArray()) throw_type_error(what, ": expected an array of integers, got ", js_type(v));
  Napi::Array a = v.As<Napi::Array>();
  Shape shape;
  const uint32_t n = a.Length();
  if (n > uint32_t(kMaxDims)) throw_range_error(what, ": at most ", kMaxDims, " dimensions are supported, got ", n);
  for (uint32_t i = 0; i < n; ++i)
    shape.push_back(arg_int(a.Get(i), str(what, "[", i, "]"), 0, kMaxElements));
  checked_numel(shape, what.c_str());
  return shape;
}

DType arg_dtype(const Napi::Value& v, const std::string& what) {
  DType t;
  const std::string s = arg_string(v, what);
  if (!parse_dtype(s, &t))
    throw_type_error(what, ": expected 'float32', 'int32', 'float16' or 'bfloat16', got '", s, "'");
  return t;
}

Device arg_device(const Napi::Value& v, const std::string& what) {
  Device d;
  const std::string s = arg_string(v, what);
  if (!parse_device(s, &d))
    throw_range_error(what, ": expected 'cpu', 'cuda' or 'cuda-emu', got '", s, "'");
  return d;
}

}  // namespace secvit::napi
