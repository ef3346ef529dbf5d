// Errors that cross into JavaScript. Every native failure is one of these three kinds and the
// binding turns it into the matching JS class (TypeError, RangeError, Error). Nothing in the
// addon calls exit() or abort(): a failure is always an exception to the caller.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace secvit {

enum class ErrorKind { Type, Range, Runtime };

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const { return kind_; }

 private:
  ErrorKind kind_;
};

template <typename... Args>
std::string str(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

template <typename... Args>
[[noreturn]] void throw_type_error(const Args&... args) {
  throw Error(ErrorKind::Type, str(args...));
}
template <typename... Args>
[[noreturn]] void throw_range_error(const Args&... args) {
  throw Error(ErrorKind::Range, str(args...));
}
template <typename... Args>
[[noreturn]] void throw_runtime_error(const Args&... args) {
  throw Error(ErrorKind::Runtime, str(args...));
}

}  // namespace secvit
