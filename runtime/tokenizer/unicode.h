// UTF-8 and Unicode helpers used by the tokenizer (character classes follow Rust's `char` methods,
// which is what Hugging Face `tokenizers` uses).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace moe::tok {

// Length in bytes of the UTF-8 sequence whose lead byte is `lead` (1 for invalid lead bytes).
inline size_t utf8_seq_len(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xF0) return 4;
  if (lead >= 0xE0) return 3;
  if (lead >= 0xC0) return 2;
  return 1;
}

// Decodes the code point starting at s[i] (s must be valid UTF-8) and advances i past it.
char32_t next_code_point(std::string_view s, size_t& i);

// Appends the UTF-8 encoding of cp.
void append_utf8(std::string& out, char32_t cp);

bool is_valid_utf8(std::string_view s);

// Same output as Rust's String::from_utf8_lossy: every maximal invalid subpart becomes U+FFFD.
std::string utf8_lossy(std::string_view bytes);

// Rust char::is_whitespace (Unicode White_Space property).
bool is_whitespace(char32_t c);
// Rust char::is_numeric (general categories Nd, Nl, No).
bool is_numeric(char32_t c);
// HF `is_punc`: ASCII punctuation or any Unicode punctuation category (P*).
bool is_punctuation(char32_t c);
// Rust regex `\w`: Alphabetic, Mark, Decimal_Number, Connector_Punctuation, Join_Control.
bool is_word_char(char32_t c);
// General category Mark (Mn, Mc, Me).
bool is_combining_mark(char32_t c);

enum class NormalForm { NFC, NFD, NFKC, NFKD };
// Unicode normalization via utf8proc. Input must be valid UTF-8.
std::string normalize_unicode(std::string_view s, NormalForm form);

// Rust str::chars().flat_map(char::to_lowercase): full per-character lowercase mapping.
std::string to_lower(std::string_view s);

}  // namespace moe::tok
