#include "runtime/tokenizer/byte_level.h"

#include "runtime/tokenizer/unicode.h"

namespace moe::tok {

namespace {

struct ByteTables {
  std::array<char32_t, 256> to_char{};
  std::array<std::string, 256> to_utf8;
  std::array<int16_t, 256 + 68> from_char{};  // code point -> byte, -1 if unmapped
  ByteTables() {
    from_char.fill(-1);
    // Printable bytes keep their own code point; the others are shifted to 256, 257, ...
    auto printable = [](int b) {
      return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    };
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      to_char[b] = printable(b) ? static_cast<char32_t>(b) : next++;
      append_utf8(to_utf8[b], to_char[b]);
      from_char[to_char[b]] = static_cast<int16_t>(b);
    }
  }
};

const ByteTables& tables() {
  static const ByteTables t;
  return t;
}

}  // namespace

char32_t byte_to_char(uint8_t b) { return tables().to_char[b]; }

std::optional<uint8_t> char_to_byte(char32_t c) {
  const auto& t = tables();
  if (c >= t.from_char.size() || t.from_char[c] < 0) return std::nullopt;
  return static_cast<uint8_t>(t.from_char[c]);
}

std::string bytes_to_unicode(std::string_view s) {
  const auto& t = tables();
  std::string out;
  out.reserve(s.size() * 2);
  for (unsigned char b : s) out += t.to_utf8[b];
  return out;
}

std::optional<std::string> unicode_to_bytes(std::string_view token) {
  std::string out;
  out.reserve(token.size());
  size_t i = 0;
  while (i < token.size()) {
    auto b = char_to_byte(next_code_point(token, i));
    if (!b) return std::nullopt;
    out.push_back(static_cast<char>(*b));
  }
  return out;
}

}  // namespace moe::tok
