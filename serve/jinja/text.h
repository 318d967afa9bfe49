// Python str semantics over UTF-8: code points, whitespace, case mapping, printability.
// Strings are kept as UTF-8; an invalid byte b stands for the code point 0xDC00 + b (Python's
// surrogateescape), so text that is not UTF-8 passes through unchanged.
#pragma once
#include <string>
#include <string_view>

namespace moe::jinja::text {

std::u32string decode(std::string_view s);
std::string encode(std::u32string_view s);
void append(std::string& out, char32_t c);
size_t length(std::string_view s);  // in code points, like Python len()

bool is_space(char32_t c);      // str.isspace()
bool is_printable(char32_t c);  // str.isprintable(), for repr()
bool is_linebreak(char32_t c);  // a str.splitlines() boundary
bool is_alpha(char32_t c);
bool is_digit(char32_t c);      // decimal digit (Nd)
bool is_numeric(char32_t c);
bool is_upper(char32_t c);
bool is_lower(char32_t c);
bool is_cased(char32_t c);
char32_t to_upper(char32_t c);
char32_t to_lower(char32_t c);
char32_t to_title(char32_t c);

std::string upper(std::string_view s);
std::string lower(std::string_view s);
std::string py_title(std::string_view s);       // str.title()
std::string py_capitalize(std::string_view s);  // str.capitalize()
std::string swapcase(std::string_view s);

}  // namespace moe::jinja::text
