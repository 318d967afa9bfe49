// moe: run Mixture-of-Experts language models on one GPU or a CPU alone.
#include <malloc.h>

#include <cstdio>
#include <exception>
#include <map>
#include <string>

#include "storage/truncation_guard.h"
#include "tools/commands.h"

int main(int argc, char** argv) {
  // A forward pass allocates megabytes of activations per layer (a 512-token prompt: 8 MB for
  // q alone). glibc would hand blocks that size back to the kernel on free and fault every page
  // in again on the next layer (6% of prefill); keeping them in the heap costs only the peak.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
  CLI::App app{"moe: run Mixture-of-Experts language models (Mixtral, Qwen2/Qwen3-MoE, OLMoE) from Hugging Face checkpoints"};
  app.require_subcommand(1);
  const std::map<std::string, moe::cli::Runner> runners = {
      {"run", moe::cli::add_run(app)},           {"logits", moe::cli::add_logits(app)},
      {"tokenize", moe::cli::add_tokenize(app)}, {"detokenize", moe::cli::add_detokenize(app)},
      {"inspect", moe::cli::add_inspect(app)},     {"perplexity", moe::cli::add_perplexity(app)},
      {"convert", moe::cli::add_convert(app)},     {"verify", moe::cli::add_verify(app)},
      {"synth", moe::cli::add_synth(app)},         {"bench", moe::cli::add_bench(app)},
      {"compare", moe::cli::add_compare(app)},     {"trace-sim", moe::cli::add_trace_sim(app)},
      {"chat-template", moe::cli::add_chat_template(app)}, {"serve-bench", moe::cli::add_serve_bench(app)},
      {"grammar", moe::cli::add_grammar(app)},     {"batch", moe::cli::add_batch(app)},
#ifdef MOE_WITH_SERVE
      {"serve", moe::cli::add_serve(app)},
#endif
  };
  CLI11_PARSE(app, argc, argv);
  moe::install_truncation_reporter();  // a model file truncated under us: one error line, not a bus error
  try {
    for (const auto& [name, run] : runners)
      if (app.got_subcommand(name)) return run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "moe: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
