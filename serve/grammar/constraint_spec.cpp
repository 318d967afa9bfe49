#include "serve/grammar/constraint_spec.h"



#include "serve/grammar/gbnf.h"
#include "serve/grammar/json_schema.h"
#include "serve/grammar/regex.h"
#include "serve/grammar/token_vocab.h"

namespace moe::grammar {

using json = nlohmann::ordered_json;

namespace {
JsonSchemaOptions json_options(bool flexible) {
  JsonSchemaOptions o;
  o.whitespace = flexible ? JsonSchemaOptions::Whitespace::flexible : JsonSchemaOptions::Whitespace::compact;
  return o;
}
}  // namespace

namespace {
// Adds rules for "up to n spaces/newlines, then the root" and returns that rule (the root itself
// when n is 0). The grammar's root is unchanged.
uint32_t with_leading_whitespace_root(Grammar& g, int n) {
  if (n <= 0) return g.root;
  ByteSet ws;
  ws.set(' ');
  ws.set('\n');
  const uint32_t set = uint32_t(g.byte_sets.size());
  g.byte_sets.push_back(ws);
  const Element space{Element::Kind::bytes, set};
  uint32_t prev = 0;
  for (int k = 1; k <= n; ++k) {  // O_k ::= ws O_{k-1} | ""
    std::vector<Element> s{space};
    if (k > 1) s.push_back({Element::Kind::rule, prev});
    g.rules.push_back({"leading_ws", {std::move(s), {}}});
    prev = uint32_t(g.rules.size() - 1);
  }
  g.rules.push_back({"start", {{Element{Element::Kind::rule, prev}, Element{Element::Kind::rule, g.root}}}});
  return uint32_t(g.rules.size() - 1);
}
}  // namespace

Grammar with_leading_whitespace(Grammar g, int n) {
  g.root = with_leading_whitespace_root(g, n);
  return g;
}

Grammar with_reasoning(Grammar g, std::string_view open, std::string_view close, bool inside, int ws) {
  if (close.empty()) throw GrammarError("reasoning: the closing marker is empty");
  const size_t m = close.size();
  auto add_set = [&](const ByteSet& s) {
    g.byte_sets.push_back(s);
    return Element{Element::Kind::bytes, uint32_t(g.byte_sets.size() - 1)};
  };
  const uint32_t answer = with_leading_whitespace_root(g, ws);
  // S_k: k bytes of `close` matched; any byte that does not complete it loops.
  const auto steps = marker_steps(close);
  const uint32_t first = uint32_t(g.rules.size());
  for (size_t k = 0; k < m; ++k) g.rules.push_back({"thinking", {}});
  for (size_t k = 0; k < m; ++k) {
    auto& alts = g.rules[first + k].alternatives;
    for (size_t t = 0; t <= m; ++t)
      if (!steps[k][t].empty())
        alts.push_back({add_set(steps[k][t]), Element{Element::Kind::rule, t == m ? answer : uint32_t(first + t)}});
  }
  std::vector<Element> think;
  if (!inside)
    for (unsigned char c : open) {
      ByteSet s;
      s.set(c);
      think.push_back(add_set(s));
    }
  think.push_back({Element::Kind::rule, first});
  Rule start{"reasoning_then_answer", {std::move(think)}};
  if (!inside) start.alternatives.push_back({Element{Element::Kind::rule, g.root}});
  g.rules.push_back(std::move(start));
  g.root = uint32_t(g.rules.size() - 1);
  return g;
}

Grammar build_grammar(const GrammarSpec& spec) {
  Grammar g;
  switch (spec.kind) {
    case GrammarSpec::Kind::json_schema: {
      json schema;
      try {
        schema = json::parse(spec.text);
      } catch (const json::exception& e) {
        throw GrammarError(std::string("json_schema: not valid JSON: ") + e.what());
      }
      g = json_schema_grammar(schema, json_options(spec.flexible_whitespace));
      break;
    }
    case GrammarSpec::Kind::json_object: g = json_object_grammar(json_options(spec.flexible_whitespace)); break;
    case GrammarSpec::Kind::gbnf: g = gbnf_grammar(spec.text); break;
    case GrammarSpec::Kind::regex: g = regex_grammar(spec.text); break;
  }
  return g;
}

GrammarCache::GrammarCache(std::shared_ptr<const TokenVocab> vocab, size_t capacity, double walk_budget)
    : vocab_(std::move(vocab)), capacity_(std::max<size_t>(capacity, 1)), walk_budget_(walk_budget) {}

std::shared_ptr<const CompiledGrammar> GrammarCache::get(const std::string& key, const std::function<Grammar()>& build,
                                                         bool* compiled) {
  if (compiled) *compiled = false;
  {
    std::lock_guard lk(m_);
    if (auto it = index_.find(key); it != index_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second);
      return it->second->second;
    }
  }
  auto cg = CompiledGrammar::compile(build(), vocab_);
  if (walk_budget_ > 0) cg->walk_all(walk_budget_);
  if (compiled) *compiled = true;
  std::lock_guard lk(m_);
  if (auto it = index_.find(key); it != index_.end()) return it->second->second;
  lru_.emplace_front(key, cg);
  index_[key] = lru_.begin();
  while (lru_.size() > capacity_) {
    index_.erase(lru_.back().first);
    lru_.pop_back();
  }
  return cg;
}

}  // namespace moe::grammar
