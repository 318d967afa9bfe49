// An error the client caused or must hear about, as the OpenAI API reports it:
// HTTP status + {"error": {"message", "type", "param", "code"}}. Thrown by request parsing and
// the handlers; the server turns it into the response. Anything else thrown is a 500.
#pragma once
#include <stdexcept>
#include <string>

namespace moe::serve::http {

class ApiError : public std::runtime_error {
 public:
  ApiError(int status, std::string type, const std::string& message, std::string param = {}, std::string code = {})
      : std::runtime_error(message), status(status), type(std::move(type)), param(std::move(param)),
        code(std::move(code)) {}
  int status;
  std::string type;   // "invalid_request_error", "authentication_error", ...
  std::string param;  // the offending field ("temperature", "messages[2].role"); empty: null
  std::string code;   // "context_length_exceeded", "invalid_api_key", ...; empty: null
};

// 400 invalid_request_error naming the parameter.
inline ApiError bad_request(const std::string& message, std::string param = {}, std::string code = {}) {
  return ApiError(400, "invalid_request_error", message, std::move(param), std::move(code));
}

}  // namespace moe::serve::http
