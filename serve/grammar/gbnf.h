// GBNF (llama.cpp's grammar format) -> Grammar. Users already have .gbnf files, so the syntax
// follows llama.cpp's grammars/README.md:
//   name ::= alternatives            rule names [a-zA-Z0-9_-]+; `root` starts by default
//   a b | c                          sequence, alternation; ( ) groups
//   x* x+ x? x{m} x{m,} x{m,n}       repetition
//   "text"  [a-z]  [^"\\]  .         literal, code-point class, negated class, any code point
//   escapes \n \t \r \\ \" \' \[ \] \- \^ \xHH \uHHHH \UHHHHHHHH (code points, UTF-8 encoded)
//   # comment                        to the end of the line
// A rule ends at the end of its line, except inside parentheses, after a trailing `|`, or when
// the next non-blank line starts with `|`. Terminals are Unicode code points, as in llama.cpp:
// "\xFF" is U+00FF (two UTF-8 bytes), not the byte 0xFF.
// Errors (GrammarError) read "gbnf: line L, column C: ..." (columns count code points).
#pragma once
#include <cstddef>
#include <string_view>

#include "serve/grammar/grammar.h"

namespace moe::grammar {

// Limits on hostile input (the server takes grammars from requests).
inline constexpr size_t kGbnfMaxBytes = size_t(1) << 20;  // grammar text
inline constexpr int kGbnfMaxNesting = 128;               // ( ) depth plus stacked quantifiers
inline constexpr int kGbnfMaxRepeat = 100000;             // m and n in {m,n}

// Parses `text` and builds it, starting at rule `root`. Throws GrammarError (also Builder's:
// left recursion, too many rules after unrolling {m,n}).
Grammar gbnf_grammar(std::string_view text, std::string_view root = "root");

}  // namespace moe::grammar
