// Errors of the Jinja interpreter: one line for people, naming the construct and the template line.
#pragma once
#include <stdexcept>
#include <string>

namespace moe::jinja {

// A template that does not parse, or fails while rendering: "template line 12: unsupported filter 'xmlattr'".
// line() is 0 when no line is known.
class Error : public std::runtime_error {
 public:
  Error(int line, const std::string& msg)
      : std::runtime_error(line > 0 ? "template line " + std::to_string(line) + ": " + msg : msg),
        line_(line), msg_(msg) {}
  int line() const { return line_; }
  const std::string& message() const { return msg_; }  // without the "template line N: " prefix

 private:
  int line_;
  std::string msg_;
};

// The template itself gave up: raise_exception(msg) (jinja2's TemplateError in transformers).
// message() is exactly what the template passed.
class TemplateException : public Error {
 public:
  TemplateException(int line, const std::string& msg) : Error(line, "raise_exception: " + msg), raw_(msg) {}
  const std::string& raised() const { return raw_; }

 private:
  std::string raw_;
};

namespace detail {
// Thrown by builtins, which do not know the template line; the evaluator rethrows it as Error
// with the line of the expression being evaluated.
struct Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};
[[noreturn]] inline void fail(const std::string& msg) { throw Failure(msg); }
}  // namespace detail

}  // namespace moe::jinja

namespace moe::jinja::detail {
// raise_exception(msg) from a builtin: the evaluator turns it into TemplateException.
struct Raised : Failure {
  using Failure::Failure;
};
}  // namespace moe::jinja::detail
