// Subcommands of the `moe` CLI. Each registers its flags on the app and returns the
// function that runs it; errors are thrown and reported in one line by main.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>

namespace moe::cli {

using Runner = std::function<int()>;

Runner add_run(CLI::App& app);
Runner add_logits(CLI::App& app);
Runner add_tokenize(CLI::App& app);
Runner add_detokenize(CLI::App& app);
Runner add_inspect(CLI::App& app);
Runner add_perplexity(CLI::App& app);
Runner add_convert(CLI::App& app);  // pack issue: HF dir -> .moepack
Runner add_verify(CLI::App& app);
Runner add_synth(CLI::App& app);
Runner add_bench(CLI::App& app);
Runner add_compare(CLI::App& app);
Runner add_trace_sim(CLI::App& app);  // prefetch issue: replay a routing trace against cache policies
Runner add_chat_template(CLI::App& app);  // a chat rendered with the model's Jinja chat template
Runner add_serve_bench(CLI::App& app);  // the serve scheduler's batching measured without HTTP
Runner add_grammar(CLI::App& app);
Runner add_batch(CLI::App& app);  // OpenAI batch JSONL through the model, resumable  // constrained decoding without a model: samples, checks, mask timing
#ifdef MOE_WITH_SERVE
Runner add_serve(CLI::App& app);  // OpenAI-compatible HTTP server (needs httplib: not in MOE_PORTABLE builds)
#endif

}  // namespace moe::cli
