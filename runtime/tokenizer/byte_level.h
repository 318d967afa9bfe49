// The GPT-2 byte <-> printable-unicode-character mapping used by ByteLevel components.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace moe::tok {

// The code point that stands for byte b.
char32_t byte_to_char(uint8_t b);
// The byte that code point c stands for, if c is one of the 256 mapped code points.
std::optional<uint8_t> char_to_byte(char32_t c);

// Maps every byte of s to its UTF-8 encoded stand-in character.
std::string bytes_to_unicode(std::string_view s);

// Maps a byte-level token back to raw bytes. Returns nullopt if the token contains a character
// outside the mapping (HF then uses the token's own bytes).
std::optional<std::string> unicode_to_bytes(std::string_view token);

}  // namespace moe::tok
