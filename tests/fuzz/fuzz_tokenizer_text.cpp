// libFuzzer target: a real byte-level tokenizer (the qwen3_moe fixture, MOE_FUZZ_TOKENIZER) encodes
// any bytes as text, and decoding the ids gives back the text: exactly its NFC form, after invalid
// UTF-8 is replaced by U+FFFD as encode does. Encode must never throw on any input.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "runtime/tokenizer/tokenizer.h"
#include "runtime/tokenizer/unicode.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const moe::Tokenizer tok = moe::Tokenizer::load(MOE_FUZZ_TOKENIZER);
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::vector<int32_t> ids = tok.encode(text, false);
  std::string back = tok.decode(ids, false);
  std::string want = moe::tok::normalize_unicode(moe::tok::utf8_lossy(text), moe::tok::NormalForm::NFC);
  if (back != want) {
    std::fprintf(stderr, "round trip differs: %zu bytes in, %zu ids, %zu bytes back, %zu expected\n",
                 size, ids.size(), back.size(), want.size());
    std::abort();
  }
  return 0;
}
