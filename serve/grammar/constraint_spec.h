// What a request asks to constrain, compiled once per vocabulary and reused: agents send the
// same schema with every request, and a compile walks the whole vocabulary.
#pragma once
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "serve/grammar/grammar.h"
#include "serve/grammar/matcher.h"

namespace moe::grammar {

class TokenVocab;

struct GrammarSpec {
  enum class Kind { json_schema, json_object, gbnf, regex };
  Kind kind = Kind::json_object;
  std::string text;                // json_schema: the schema (JSON text); gbnf: the grammar; regex: the pattern
  bool flexible_whitespace = false;  // JSON: allow [ \t\n\r]{0,20} between tokens (default: compact)
};

// The grammar of a spec. Throws GrammarError.
Grammar build_grammar(const GrammarSpec& spec);

// How a model family writes tool calls (what serve/parsers reads back):
//   hermes       <tool_call>\n{"name": "f", "arguments": {...}}\n</tool_call>   (Qwen2.5, Qwen3, tiny-moe)
//   qwen3_coder  <tool_call>\n<function=f>\n<parameter=p>\nVALUE\n</parameter>\n</function>\n</tool_call>
//                (Qwen3-Coder): a string parameter's VALUE is raw text, any other is JSON.
// Calls are joined by "\n".
enum class ToolSyntax { hermes, qwen3_coder };

// Tool calls only: one of `tools` (OpenAI tool objects: {"type": "function", "function":
// {"name", "parameters"}}), or only `function` when given; several when `parallel`. Each
// call's arguments follow its function's parameters schema. Throws GrammarError (unknown
// function, unsupported schema keyword: named with the tool). tool_grammar.cpp.
Grammar tool_call_grammar(const nlohmann::ordered_json& tools, ToolSyntax syntax,
                          const std::optional<std::string>& function, bool parallel);

// Allows up to `n` spaces or newlines before the grammar's text.
Grammar with_leading_whitespace(Grammar g, int n);

// A reasoning model thinks first: the text may begin with `open`, then anything that does not
// contain `close`, then `close` and up to `ws` spaces or newlines, before the grammar's text.
// `inside`: the prompt already opened the block, so the text starts in the thinking and the
// block is not optional. Only the answer is constrained; the thinking is free.
Grammar with_reasoning(Grammar g, std::string_view open, std::string_view close, bool inside, int ws = 4);

// Compiled grammars by key, least recently used dropped past `capacity`. Thread-safe; a compile
// runs outside the lock (two threads may compile the same key once each). A new grammar's
// vocabulary walks are done at once within `walk_budget` seconds (the rest on first use), so
// the first request's tokens do not pay for them.
class GrammarCache {
 public:
  GrammarCache(std::shared_ptr<const TokenVocab> vocab, size_t capacity = 64, double walk_budget = kCompileWalkBudgetSeconds);
  // The grammar `build` makes, compiled, by `key` (the request's text). `compiled`, when given,
  // says whether this call compiled (else it was cached).
  std::shared_ptr<const CompiledGrammar> get(const std::string& key, const std::function<Grammar()>& build,
                                             bool* compiled = nullptr);

 private:
  std::shared_ptr<const TokenVocab> vocab_;
  size_t capacity_;
  double walk_budget_;
  mutable std::mutex m_;
  std::list<std::pair<std::string, std::shared_ptr<const CompiledGrammar>>> lru_;
  std::unordered_map<std::string, decltype(lru_)::iterator> index_;
};

}  // namespace moe::grammar
