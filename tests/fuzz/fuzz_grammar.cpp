// libFuzzer target: the three grammar compilers of serve/grammar (constrained decoding), which
// take JSON Schemas, GBNF text and regexes straight from requests. The first byte picks the
// compiler ('0' JSON Schema, '1' GBNF, '2' regex: byte % 3, so every input means something);
// the rest is its input. A compiled grammar is then run over a few short strings. Bad input
// must end in GrammarError (or, for the JSON text itself, a nlohmann exception); any other
// exception escapes on purpose (std::terminate: the fuzzer reports it with its what()), and a
// crash, sanitizer report, hang or runaway memory is a bug.
#include <cstdint>
#include <string_view>

#include <nlohmann/json.hpp>

#include "serve/grammar/gbnf.h"
#include "serve/grammar/grammar.h"
#include "serve/grammar/json_schema.h"
#include "serve/grammar/matcher.h"
#include "serve/grammar/regex.h"

namespace {

using namespace moe::grammar;

Grammar compile(uint8_t which, std::string_view text) {
  switch (which % 3) {
    case 0: return json_schema_grammar(nlohmann::ordered_json::parse(text));
    case 1: return gbnf_grammar(text);
    default: return regex_grammar(text);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    const Grammar g = compile(data[0], text);
    // Strings that start a JSON value, a word, a number, a multi-byte character; the answers
    // are not checked (no reference to compare with), only that the recognizer survives them.
    for (std::string_view s : {"", "{\"a\": [1", "ab", "-12.5e", "\xC3\xA9\xE2\x82", "\"x\\u00"})
      (void)accepts_prefix(g, s);
    (void)accepts(g, "a");
  } catch (const GrammarError&) {
  } catch (const nlohmann::ordered_json::exception&) {
  }
  return 0;
}
