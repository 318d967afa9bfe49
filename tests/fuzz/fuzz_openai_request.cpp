// libFuzzer target: the OpenAI request parser (serve/http/openai_request.h) on any bytes, as a
// chat and as a completions body. Bad input must end in ApiError 400 with a message; any other
// exception, a crash or a sanitizer report is a bug. What it accepts must be usable: the
// validated values are in range and the normalized messages serialize, and an error body
// serializes too.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "serve/http/openai_request.h"
#include "serve/http/openai_response.h"

namespace {

using namespace moe::serve::http;

void check_common(const CommonRequest& r) {
  const auto& s = r.sampling;
  if (!(s.temperature >= 0 && s.temperature <= 2) || !(s.top_p > 0 && s.top_p <= 1) || s.top_k < 0 ||
      !(s.min_p >= 0 && s.min_p <= 1) || std::fabs(s.presence_penalty) > 2 || std::fabs(s.frequency_penalty) > 2)
    std::abort();
  if (r.max_tokens && *r.max_tokens < 1) std::abort();
  for (const auto& [id, b] : s.logit_bias)
    if (id < 0 || id >= 4096 || !(std::fabs(b) <= 100)) std::abort();
  for (const std::string& st : r.stop)
    if (st.empty()) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  const RequestLimits limits{.vocab_size = 4096};
  try {
    const ChatRequest r = parse_chat_request(body, limits);
    check_common(r);
    if (r.messages.empty()) std::abort();
    for (const auto& m : r.messages)
      if (!m.contains("role") || !m.contains("content")) std::abort();
    (void)r.messages.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::strict);
    if (r.tools_enabled && !r.tools.is_array()) std::abort();
  } catch (const ApiError& e) {
    if (e.status != 400) std::abort();
    (void)dump(error_json(e));
  }
  try {
    const CompletionRequest r = parse_completion_request(body, limits);
    check_common(r);
    if (r.token_prompt && r.prompt_tokens.empty()) std::abort();
    for (const int32_t id : r.prompt_tokens)
      if (id < 0 || id >= 4096) std::abort();
  } catch (const ApiError& e) {
    if (e.status != 400) std::abort();
    (void)dump(error_json(e));
  }
  return 0;
}
