// moe run: stream a completion of a prompt, then report prompt and generation speed.
#include <algorithm>
#include <cstdio>
#include <memory>
#include <limits>
#include <string_view>

#include <fmt/format.h>

#include "runtime/generate.h"
#include "serve/grammar/token_vocab.h"
#include "serve/scheduler/grammar_constraint.h"
#include "session/session.h"
#include "tools/commands.h"
#include "tools/percentile.h"
#include "tools/constraint_flags.h"
#include "tools/model_files.h"
#include "tools/session_flags.h"

namespace moe::cli {

Runner add_run(CLI::App& app) {
  struct Opts {
    std::string model, prompt, prompt_file;
    int n = 64, top_k = 0;
    float temp = 0.8f, top_p = 0.95f, min_p = 0.0f, rep = 1.0f;
    uint64_t seed = 1;
    bool ignore_eos = false, no_echo = false, stats = false;
    SessionOptions session;
    ConstraintFlags constraint;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* c = app.add_subcommand("run", "Generate text from a prompt (streams tokens as they are produced)");
  add_storage_flags(c, o->session.storage);
  add_stats_flag(c, o->stats);
  add_prefetch_flags(c, o->session.prefetch);
  add_device_flags(c, o->session.device);
  c->add_option("--model,-m", o->model, "Hugging Face model directory or .moepack file")->required();
  auto* p = c->add_option("--prompt,-p", o->prompt, "Prompt text");
  auto* pf = c->add_option("--prompt-file,-f", o->prompt_file, "Read the prompt from a file (at most 64 MiB)");
  p->excludes(pf);
  c->add_flag("--no-echo", o->no_echo, "Print only the generated text, not the prompt");
  c->add_option("-n,--n-tokens", o->n, "Maximum number of tokens to generate")
      ->check(CLI::Range(0, std::numeric_limits<int>::max()))
      ->capture_default_str();
  c->add_option("--temp", o->temp, "Sampling temperature (0 = greedy)")->capture_default_str();
  c->add_option("--top-k", o->top_k, "Keep the k most likely tokens (0 = off)")->capture_default_str();
  c->add_option("--top-p", o->top_p, "Nucleus sampling mass (1 = off)")->capture_default_str();
  c->add_option("--min-p", o->min_p, "Drop tokens below min-p times the top probability (0 = off)")->capture_default_str();
  c->add_option("--repeat-penalty", o->rep, "Repetition penalty over the last 64 tokens (1 = off)")->capture_default_str();
  add_seed_flag(c, o->seed, "Random seed; the same seed gives the same tokens");
  add_threads_flag(c, o->session.device.threads)->capture_default_str();
  c->add_flag("--ignore-eos", o->ignore_eos, "Keep generating past end-of-sequence tokens");
  add_constraint_flags(c, o->constraint);
  return [o] {
    std::optional<grammar::Grammar> constraint = constraint_grammar(o->constraint);  // before the model loads
    if (constraint && o->ignore_eos) throw std::invalid_argument("--ignore-eos cannot be combined with a constraint: the constrained text ends with an end-of-sequence token");
    if (!o->prompt_file.empty()) o->prompt = read_text_file(o->prompt_file, "--prompt-file");
    if (o->prompt.empty()) throw std::invalid_argument("give a prompt with --prompt TEXT or --prompt-file FILE");
    o->session.verbose = true;  // the VRAM placement plan, when it is planned
    Session session(o->model, o->session);
    const Tokenizer& tok = session.tokenizer();
    InferenceEngine& engine = session.engine();
    GenerateOptions g;
    g.max_new_tokens = o->n;
    g.sampling = {o->temp, o->top_k, o->top_p, o->min_p, o->rep, 64, o->seed};
    if (!o->ignore_eos) {
      g.stop_ids = session.stop_ids();
    }
    const std::vector<int32_t> prompt = tok.encode(o->prompt, true);
    if (prompt.empty()) throw std::invalid_argument("the prompt encodes to no tokens; give a non-empty --prompt");
    // fwrite, not fputs: text may hold NUL bytes, which must come out, not end the output.
    const auto out = [](std::string_view s) { std::fwrite(s.data(), 1, s.size(), stdout); };
    if (!o->no_echo) out(o->prompt);
    std::fflush(stdout);
    std::unique_ptr<serve::GrammarConstraint> gc;
    if (constraint) {
      if (g.stop_ids.empty()) throw std::invalid_argument("the model has no end-of-sequence token to end a constrained text");
      auto cg = grammar::CompiledGrammar::compile(std::move(*constraint), grammar::TokenVocab::from_tokenizer(tok, g.stop_ids));
      cg->walk_all(grammar::kCompileWalkBudgetSeconds);  // as the server does
      gc = std::make_unique<serve::GrammarConstraint>(std::move(cg));
      g.constrain = [&](size_t, std::span<float> logits) { gc->apply(logits); };
    }
    StreamDecoder dec(tok, true);
    GenerateStats st;
    generate(engine, {prompt}, g, [&](size_t, int32_t id) {
      if (gc) gc->accept(id);
      out(dec.push(id));
      std::fflush(stdout);
    }, &st);
    out(dec.finish());
    std::fputs("\n", stdout);
    std::fflush(stdout);  // the speed line (stderr) must come after the text
    // The first generated token comes out of the prefill pass; decode speed counts the rest.
    const double pre = st.prefill_seconds > 0 ? double(st.prompt_tokens) / st.prefill_seconds : 0.0;
    const double dec_s = st.decode_seconds > 0 ? double(st.generated_tokens - 1) / st.decode_seconds : 0.0;
    std::fprintf(stderr, "%s\n",
                 fmt::format("prompt: {} tokens, {:.1f} tok/s | generation: {} tokens, {:.1f} tok/s",
                             st.prompt_tokens, pre, st.generated_tokens, dec_s).c_str());
    if (gc) {
      const std::vector<double>& ms = gc->mask_seconds();
      const auto pct = [&](double p) { return percentile(ms, p) * 1e3; };
      std::fprintf(stderr, "%s\n",
                   fmt::format("constraint: compiled in {:.1f} ms, vocabulary walks {:.1f} ms | mask per token p50 {:.3f} ms, p99 {:.3f} ms{}",
                               gc->compiled().stats().seconds * 1e3, gc->compiled().walk_stats().seconds * 1e3, pct(0.5), pct(0.99),
                               gc->done() ? "" : " | the text is not complete (token limit)").c_str());
    }
    const uint64_t n = uint64_t(st.prompt_tokens + st.generated_tokens);
    session.flush_trace();
    if (o->stats) std::fputs(session.stats().format(n).c_str(), stderr);
    return 0;
  };
}

}  // namespace moe::cli
