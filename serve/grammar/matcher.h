// Running a grammar: a byte-level pushdown recognizer, and over it the per-step token mask.
//
// Parse state: a set of stacks. A stack is a chain of grammar positions (the top one always
// names a byte class); chains are interned, so a stack is one integer and equal stacks are
// equal integers. Repetition lowers to right recursion and a rule called last in an alternative
// does not push a return position (a tail call), so `"a"*` keeps one stack however long.
//
// The token mask (CompiledGrammar + GrammarMatcher) follows the idea of XGrammar's adaptive
// mask cache: for each position that can be on top of a stack, one walk of the vocabulary's
// byte trie (done once, the first time the position is on top) splits tokens into those accepted whatever lies below the top
// (kept as a mask), those rejected whatever lies below, and the rest, which leave the top rule
// part-way through and so depend on the stack below; only those are walked per step, from the
// real stack. Masks are also cached per parse state. The interned stacks, their memoized steps
// and the masks by state belong to the compiled grammar and are shared (under a lock) by all its
// matchers, so a state one request has seen is cheap for the next.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "serve/grammar/grammar.h"

namespace moe::grammar {

class TokenVocab;
class StackMachine;
struct PositionCache;
struct SharedRuntime;

// True when `text` is a whole sentence of the grammar; `prefix`: when it can still be extended
// into one. For tests and tools (no tokenizer involved).
bool accepts(const Grammar& g, std::string_view text);
bool accepts_prefix(const Grammar& g, std::string_view text);

// How long a new grammar's vocabulary walks may take at compile time before the rest are left
// to first use (servers, moe run): the first request's tokens then rarely pay for walks.
inline constexpr double kCompileWalkBudgetSeconds = 0.05;

struct CompileStats {
  double seconds = 0;        // compile(): the position table
  size_t positions = 0;      // byte-class positions that can be on top of a stack
};

// The vocabulary walks are done lazily, the first time a position is on top of a stack (in any
// matcher of the grammar): a schema with long bounded strings has thousands of positions, of
// which a generation visits a few.
struct WalkStats {
  size_t walked = 0;         // positions walked so far
  size_t uncertain = 0;      // of which have tokens left to the per-step walk
  double seconds = 0;        // time spent walking
  size_t masks_cached = 0;   // masks by state in the shared cache
};

// A grammar bound to a vocabulary, with the per-position caches. Immutable after compile();
// shared by every request that uses the same grammar (thread-safe to share).
class CompiledGrammar {
 public:
  static std::shared_ptr<const CompiledGrammar> compile(Grammar g, std::shared_ptr<const TokenVocab> vocab);
  ~CompiledGrammar();
  const Grammar& grammar() const { return *grammar_; }
  const TokenVocab& vocab() const { return *vocab_; }
  const CompileStats& stats() const { return stats_; }
  WalkStats walk_stats() const;
  // Walks the positions now rather than on first use, within `budget_seconds` (the rest stay
  // lazy); true when all were walked. Servers call it once per compiled grammar.
  bool walk_all(double budget_seconds = 1e30) const;

 private:
  friend class GrammarMatcher;
  CompiledGrammar() = default;
  std::shared_ptr<const Grammar> grammar_;
  std::shared_ptr<const TokenVocab> vocab_;
  std::shared_ptr<const StackMachine> positions_;  // position table (shared, immutable part)
  CompileStats stats_;
  mutable std::mutex mu_;                     // guards rt_ (and the caches in it)
  mutable std::unique_ptr<SharedRuntime> rt_;
  SharedRuntime& runtime() const;             // with mu_ held
};

// One generation's state. Not thread-safe (one request, one thread).
class GrammarMatcher {
 public:
  explicit GrammarMatcher(std::shared_ptr<const CompiledGrammar> g);
  ~GrammarMatcher();
  GrammarMatcher(GrammarMatcher&&) noexcept;
  GrammarMatcher& operator=(GrammarMatcher&&) = delete;

  // Tokens that may come next, as a bitmask of vocab().size() bits (bit i of word i/64). End
  // tokens (see TokenVocab) are allowed exactly when the text so far is complete.
  void fill_mask(std::span<uint64_t> mask);
  size_t mask_words() const;
  // Advances by a token; false (state unchanged) when the token is not allowed.
  bool accept_token(int32_t id);
  // Advances by raw bytes; false (state unchanged) when they do not continue a valid prefix.
  bool accept_bytes(std::string_view bytes);
  bool can_finish() const;   // the text so far is a whole sentence
  bool finished() const;     // nothing but an end token may follow (also after an end token)
  void reset();

 private:
  struct State;
  std::shared_ptr<const CompiledGrammar> g_;
  std::unique_ptr<State> s_;
};

}  // namespace moe::grammar
