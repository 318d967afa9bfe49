// libFuzzer target: Tokenizer::from_json on any bytes as tokenizer.json text. Whatever it accepts
// must encode and decode a short text; anything it refuses must be a std::exception (so no crash,
// no stack overflow on deep nesting, no unbounded time).
#include <cstdint>
#include <exception>
#include <string_view>

#include "runtime/tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    moe::Tokenizer t = moe::Tokenizer::from_json(text);
    auto ids = t.encode("Hello world 123  caf\xC3\xA9 \xE4\xB8\xAD\xCC\x81!\n", true);
    (void)t.decode(ids, false);
    (void)t.decode(ids, true);
  } catch (const std::exception&) {
  }
  return 0;
}
