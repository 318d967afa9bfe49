// moe grammar: a constraint (JSON Schema, json_object, GBNF, regex, tool calls) compiled over a
// model's vocabulary, without running the model. It prints random documents drawn through the
// mask (--samples: property tests check each against the schema), checks given documents token
// by token (--check: completeness), and times the mask per token (--bench).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>

#include <nlohmann/json.hpp>

#include "serve/grammar/token_vocab.h"
#include "serve/scheduler/grammar_explore.h"
#include "session/session.h"
#include "tools/commands.h"
#include "tools/percentile.h"
#include "tools/constraint_flags.h"
#include "tools/model_files.h"

namespace moe::cli {
namespace {

using json = nlohmann::ordered_json;

// EOS and the usual end-of-turn tokens the vocabulary has.
std::vector<int32_t> end_tokens(const Tokenizer& tok) {
  std::vector<int32_t> out;
  if (auto e = tok.eos_id()) out.push_back(*e);
  for (const char* name : {"<|im_end|>", "<|endoftext|>", "<|eot_id|>", "</s>", "<|end|>", "<|return|>"})
    if (auto id = tok.token_to_id(name); id && std::find(out.begin(), out.end(), *id) == out.end()) out.push_back(*id);
  if (out.empty()) throw std::invalid_argument("the tokenizer has no end-of-sequence token to finish a constrained text");
  return out;
}

}  // namespace

Runner add_grammar(CLI::App& app) {
  struct Opts {
    std::string model, check;
    ConstraintFlags cf;
    bool bench = false, print = false, json_out = false, walk_all = false;
    int samples = 0, max_tokens = 256;
    uint64_t seed = 1;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* c = app.add_subcommand("grammar", "Compile a constraint over a model's vocabulary: random documents, token checks, mask timing");
  c->add_option("--model,-m", o->model, "Model directory, tokenizer directory or .moepack (its tokenizer)")->required();
  add_constraint_flags(c, o->cf);
  c->add_option("--samples", o->samples, "Print this many random documents drawn through the mask (JSON lines)")->check(CLI::Range(0, 1000000));
  c->add_option("--max-tokens", o->max_tokens, "Tokens per random document at most")->check(CLI::Range(1, 1000000));
  c->add_option("--seed", o->seed, "Seed of the first random document (then seed+1, ...)");
  c->add_option("--check", o->check, "JSON-lines file of documents (each line a JSON string): each must pass the mask token by token");
  c->add_flag("--bench", o->bench, "Print compile time and mask time per token (p50, p99, max) over the samples");
  c->add_flag("--json", o->json_out, "--bench: the summary as one JSON line on stdout");
  c->add_flag("--print-grammar", o->print, "Print the compiled grammar's rules");
  c->add_flag("--walk-all", o->walk_all, "Walk the vocabulary from every position before sampling (timed as part of the compile)");
  return [o] {
    const Tokenizer tok = open_tokenizer(o->model);
    auto t0 = std::chrono::steady_clock::now();
    auto vocab = grammar::TokenVocab::from_tokenizer(tok, end_tokens(tok));
    const double vocab_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    t0 = std::chrono::steady_clock::now();
    std::optional<grammar::Grammar> built = constraint_grammar(o->cf);
    if (!built) throw std::invalid_argument("give one of --json-schema, --json-object, --grammar, --regex, --tool-calls");
    grammar::Grammar g = std::move(*built);
    const double build_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (o->print) std::fputs(g.to_string().c_str(), stdout);
    auto cg = grammar::CompiledGrammar::compile(std::move(g), vocab);
    int failures = 0;
    if (!o->check.empty()) {
      std::ifstream in(o->check);
      if (!in) throw std::invalid_argument(fmt::format("--check {}: cannot open", o->check));
      std::string line;
      for (int n = 1; std::getline(in, line); ++n) {
        if (line.empty()) continue;
        json doc;
        try {
          doc = json::parse(line);
        } catch (const json::exception&) {
          throw std::invalid_argument(fmt::format("--check {}:{}: not a JSON string", o->check, n));
        }
        if (!doc.is_string()) throw std::invalid_argument(fmt::format("--check {}:{}: not a JSON string", o->check, n));
        const auto ids = tok.encode(doc.get<std::string>(), false);
        const auto r = serve::check_tokens(cg, ids);
        failures += !r.ok;
        std::printf("%s\n", json{{"line", n}, {"ok", r.ok}, {"tokens", ids.size()}, {"error", r.error}}.dump().c_str());
      }
    }
    double walk_all_s = 0;
    if (o->walk_all) {
      const auto tw = std::chrono::steady_clock::now();
      cg->walk_all();
      walk_all_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - tw).count();
    }
    std::vector<double> all, first;  // first: the first document's masks (nothing cached yet)
    int finished = 0, empty = 0;
    for (int i = 0; i < o->samples; ++i) {
      auto d = serve::random_document(cg, o->seed + uint64_t(i), o->max_tokens);
      finished += d.finished;
      empty += d.empty_mask;
      all.insert(all.end(), d.mask_seconds.begin(), d.mask_seconds.end());
      if (i == 0) first = d.mask_seconds;
      if (!o->bench || !o->json_out)
        std::printf("%s\n", json{{"text", d.text}, {"tokens", d.tokens}, {"finished", d.finished}, {"empty_mask", d.empty_mask}}
                                .dump(-1, ' ', false, json::error_handler_t::replace)
                                .c_str());
    }
    if (o->bench) {
      const auto& st = cg->stats();
      const grammar::WalkStats ws = cg->walk_stats();
      auto ms = [](double s) { return s * 1e3; };
      const double mx = all.empty() ? 0.0 : *std::max_element(all.begin(), all.end());
      json s{{"vocab", vocab->size()},
             {"trie_nodes", vocab->nodes()},
             {"vocab_ms", ms(vocab_s)},
             {"grammar_ms", ms(build_s)},
             {"compile_ms", ms(build_s + st.seconds + walk_all_s)},
             {"positions", st.positions},
             {"walk_all", o->walk_all},
             {"positions_walked", ws.walked},
             {"uncertain_positions", ws.uncertain},
             {"walk_ms", ms(ws.seconds)},
             {"samples", o->samples},
             {"finished", finished},
             {"empty_masks", empty},
             {"masks", all.size()},
             {"mask_p50_ms", ms(percentile(all, 0.5))},
             {"mask_p99_ms", ms(percentile(all, 0.99))},
             {"mask_max_ms", ms(mx)},
             {"first_doc_p50_ms", ms(percentile(first, 0.5))},
             {"first_doc_p99_ms", ms(percentile(first, 0.99))}};
      if (o->json_out) {
        std::printf("%s\n", s.dump().c_str());
      } else {
        std::fprintf(stderr,
                     "grammar: vocab %d tokens (%u trie nodes) | compile %.2f ms (%zu positions%s) | %zu positions "
                     "walked in %.1f ms | %zu masks over %d samples (%d finished): p50 %.4f ms, p99 %.4f ms, max %.4f "
                     "ms; first sample p99 %.4f ms\n",
                     vocab->size(), vocab->nodes(), ms(build_s + st.seconds + walk_all_s), st.positions,
                     o->walk_all ? ", all walked" : "", ws.walked, ms(ws.seconds), all.size(), o->samples, finished,
                     ms(percentile(all, 0.5)), ms(percentile(all, 0.99)), ms(mx), ms(percentile(first, 0.99)));
      }
    }
    return failures || empty ? 1 : 0;
  };
}

}  // namespace moe::cli
