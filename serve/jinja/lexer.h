// Template source -> tokens, with jinja2's whitespace rules as transformers configures them:
// trim_blocks (the first newline after a block or comment tag is dropped), lstrip_blocks (spaces
// before a block or comment tag at the start of a line are dropped), "-" / "+" modifiers on tags,
// newlines normalized to "\n" and one trailing newline of the template dropped.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace moe::jinja {

enum class Tok : uint8_t { Data, VarBegin, VarEnd, BlockBegin, BlockEnd, Name, String, Int, Float, Op, Eof };

struct Token {
  Tok type;
  int line;
  std::string text;  // Data, Name, String (unescaped), Op; the source text of numbers
  int64_t int_value = 0;
  double float_value = 0;
};

// Throws Error naming the line on an unclosed tag or comment, an unknown character, a bad escape.
std::vector<Token> tokenize(std::string_view source);

const char* describe(Tok t);  // "end of print statement", ... for parse errors

}  // namespace moe::jinja
