// libFuzzer target: a real byte-level tokenizer (the qwen3_moe fixture, MOE_FUZZ_TOKENIZER) encodes
// any bytes as text, and decoding the ids gives back the text: exactly its NFC form (each stretch
// between special tokens on its own), after invalid UTF-8 is replaced by U+FFFD as encode does.
// Encode must never throw on any input.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>

#include "runtime/tokenizer/tokenizer.h"
#include "runtime/tokenizer/unicode.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const moe::Tokenizer tok = moe::Tokenizer::load(MOE_FUZZ_TOKENIZER);
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::vector<int32_t> ids = tok.encode(text, false);
  std::string back = tok.decode(ids, false);
  // Added special tokens are split off before normalization (as HF does), so each stretch of text
  // between them is NFC'd on its own: "<|im_end|>" + U+0338 must not compose ">" + U+0338.
  const std::string lossy = moe::tok::utf8_lossy(text);
  std::string want;
  size_t at = 0;
  for (const int32_t id : ids) {
    if (!tok.is_special(id)) continue;
    const std::string s = tok.decode(std::span(&id, 1), false);
    const size_t found = lossy.find(s, at);
    if (found == std::string::npos) {
      std::fprintf(stderr, "special token %d (%s) not in the text where encode put it\n", id, s.c_str());
      std::abort();
    }
    want += moe::tok::normalize_unicode(lossy.substr(at, found - at), moe::tok::NormalForm::NFC) + s;
    at = found + s.size();
  }
  want += moe::tok::normalize_unicode(lossy.substr(at), moe::tok::NormalForm::NFC);
  if (back != want) {
    std::fprintf(stderr, "round trip differs: %zu bytes in, %zu ids, %zu bytes back, %zu expected\n",
                 size, ids.size(), back.size(), want.size());
    std::abort();
  }
  return 0;
}
