// moe perplexity: how well a model predicts a text, next to a unigram baseline.
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <map>

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "session/session.h"
#include "tools/commands.h"
#include "tools/model_files.h"
#include "tools/session_flags.h"

namespace moe::cli {

Runner add_perplexity(CLI::App& app) {
  struct Opts {
    std::string model, file;
    int context = 256;
    bool stats = false;
    SessionOptions session;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* c = app.add_subcommand("perplexity", "Perplexity of a model on a text file, with a unigram baseline");
  add_storage_flags(c, o->session.storage);
  add_stats_flag(c, o->stats);
  add_prefetch_flags(c, o->session.prefetch);
  c->add_option("--model,-m", o->model, "Hugging Face model directory or .moepack file")->required();
  c->add_option("--file,-f", o->file, "UTF-8 text file")->required();
  c->add_option("--context,-c", o->context, "Tokens per window; windows do not overlap")->capture_default_str();
  add_threads_flag(c, o->session.device.threads);
  return [o] {
    const std::string text = read_text_file(o->file, "--file");
    if (o->context < 2) throw std::invalid_argument("--context must be at least 2");
    Session session(o->model, o->session);
    const Model& model = session.model();
    const Tokenizer& tok = session.tokenizer();
    const std::vector<int32_t> ids = tok.encode(text, false);
    if (ids.size() < 2) throw std::invalid_argument(fmt::format("{}: fewer than 2 tokens of text", o->file));
    InferenceEngine& engine = session.engine();
    const int64_t V = model.cfg.vocab_size;
    const auto t0 = std::chrono::steady_clock::now();
    const bool tty = ::isatty(2);  // progress only for people watching
    double nll = 0;
    int64_t predicted = 0;
    for (size_t start = 0; start + 1 < ids.size(); start += size_t(o->context)) {
      const size_t n = std::min(ids.size() - start, size_t(o->context));
      if (n < 2) break;
      const SeqId s = engine.create_sequence();
      const BatchItem item{s, std::span(ids).subspan(start, n), true};
      const std::vector<float> logits = engine.forward({&item, 1});
      engine.free_sequence(s);
      for (size_t i = 0; i + 1 < n; ++i) {
        const float* row = &logits[i * size_t(V)];
        double mx = row[0];
        for (int64_t v = 1; v < V; ++v) mx = std::max(mx, double(row[v]));
        double z = 0;
        for (int64_t v = 0; v < V; ++v) z += std::exp(double(row[v]) - mx);
        nll -= double(row[ids[start + i + 1]]) - mx - std::log(z);
        ++predicted;
      }
      if (tty) std::fprintf(stderr, "\rperplexity: %zu / %zu tokens", std::min(start + n, ids.size()), ids.size());
    }
    if (tty) std::fprintf(stderr, "\n");
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    // Unigram baseline: token frequencies of this very text (add-one smoothed over the
    // vocabulary), scored on the same predicted positions. An optimistic baseline.
    std::map<int32_t, int64_t> freq;
    for (int32_t id : ids) ++freq[id];
    double uni = 0;
    const double denom = double(ids.size()) + double(V);
    for (size_t start = 0; start + 1 < ids.size(); start += size_t(o->context)) {
      const size_t n = std::min(ids.size() - start, size_t(o->context));
      if (n < 2) break;
      for (size_t i = 1; i < n; ++i) uni -= std::log((double(freq[ids[start + i]]) + 1.0) / denom);
    }
    const nlohmann::json j = {{"tokens", ids.size()},
                              {"predicted", predicted},
                              {"context", o->context},
                              {"nll_per_token", nll / double(predicted)},
                              {"perplexity", std::exp(nll / double(predicted))},
                              {"unigram_perplexity", std::exp(uni / double(predicted))},
                              {"seconds", secs},
                              {"tokens_per_second", double(ids.size()) / secs}};
    std::printf("%s\n", j.dump().c_str());
    session.flush_trace();
    if (o->stats) std::fputs(session.stats().format(ids.size()).c_str(), stderr);
    return 0;
  };
}

}  // namespace moe::cli
