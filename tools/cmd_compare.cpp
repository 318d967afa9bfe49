// moe compare: a (quantized) model against a reference on a text: KL divergence of the
// next-token distributions and top-1 agreement, position by position.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "session/session.h"
#include "tools/commands.h"
#include "tools/model_files.h"
#include "tools/session_flags.h"

namespace moe::cli {

namespace {

// log-softmax of one row into `out`.
void log_softmax(const float* x, int64_t n, std::vector<double>& out) {
  double mx = x[0];
  for (int64_t i = 1; i < n; ++i) mx = std::max(mx, double(x[i]));
  double z = 0;
  for (int64_t i = 0; i < n; ++i) z += std::exp(double(x[i]) - mx);
  const double lz = mx + std::log(z);
  out.resize(size_t(n));
  for (int64_t i = 0; i < n; ++i) out[size_t(i)] = double(x[i]) - lz;
}

}  // namespace

Runner add_compare(CLI::App& app) {
  struct Opts {
    std::string model, ref, file;
    int context = 256;
    SessionOptions session;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* c = app.add_subcommand("compare", "KL divergence and top-1 agreement of a model against a reference");
  c->add_option("--model,-m", o->model, "Model to judge (e.g. an int4 .moepack)")->required();
  c->add_option("--ref,-r", o->ref, "Reference model (e.g. the Hugging Face directory)")->required();
  c->add_option("--file,-f", o->file, "UTF-8 text to evaluate on")->required();
  c->add_option("--context,-c", o->context, "Tokens per window; windows do not overlap")->capture_default_str();
  add_threads_flag(c, o->session.device.threads);
  add_storage_flags(c, o->session.storage);  // both models' (a pack larger than RAM, an I/O error's advice)
  c->add_option("--kv-dtype", o->session.device.kv_dtype,
                "KV cache type of --model (the reference keeps f32): measures what --kv-dtype costs; give the same "
                "path for both")
      ->check(CLI::IsMember({"f32", "bf16", "f16", "fp8"}))
      ->capture_default_str();
  c->add_flag("--json", o->json, "Print one JSON object");
  return [o] {
    const std::string text = read_text_file(o->file, "--file");
    if (o->context < 2) throw std::invalid_argument("--context must be at least 2");
    o->session.prefetch.mode = "off";
    SessionOptions ref_opts = o->session;
    ref_opts.device.kv_dtype = "f32";
    Session a(o->model, o->session), b(o->ref, ref_opts);
    if (a.model().cfg.vocab_size != b.model().cfg.vocab_size)
      throw std::invalid_argument(fmt::format("vocabularies differ: {} has {}, {} has {}", o->model,
                                              a.model().cfg.vocab_size, o->ref, b.model().cfg.vocab_size));
    const std::vector<int32_t> ids = b.tokenizer().encode(text, false);
    if (ids.size() < 2) throw std::invalid_argument(fmt::format("{}: fewer than 2 tokens of text", o->file));
    InferenceEngine &ea = a.engine(), &eb = b.engine();
    const int64_t V = a.model().cfg.vocab_size;
    double kl = 0, kl_max = 0, nll_a = 0, nll_b = 0;
    int64_t agree = 0, n = 0;
    std::vector<double> la, lb;
    for (size_t start = 0; start + 1 < ids.size(); start += size_t(o->context)) {
      const size_t len = std::min(ids.size() - start, size_t(o->context));
      if (len < 2) break;
      auto run = [&](InferenceEngine& e) {
        const SeqId s = e.create_sequence();
        const BatchItem item{s, std::span(ids).subspan(start, len), true};
        auto l = e.forward({&item, 1});
        e.free_sequence(s);
        return l;
      };
      const auto xa = run(ea), xb = run(eb);
      for (size_t i = 0; i + 1 < len; ++i) {
        log_softmax(&xa[i * size_t(V)], V, la);
        log_softmax(&xb[i * size_t(V)], V, lb);
        double k = 0;  // KL(ref || model)
        for (int64_t v = 0; v < V; ++v) k += std::exp(lb[size_t(v)]) * (lb[size_t(v)] - la[size_t(v)]);
        kl += k;
        kl_max = std::max(kl_max, k);
        agree += std::max_element(la.begin(), la.end()) - la.begin() == std::max_element(lb.begin(), lb.end()) - lb.begin();
        const int32_t next = ids[start + i + 1];
        nll_a -= la[size_t(next)];
        nll_b -= lb[size_t(next)];
        ++n;
      }
    }
    const nlohmann::json j = {{"positions", n},
                              {"kl_mean", kl / double(n)},
                              {"kl_max", kl_max},
                              {"top1_agreement", double(agree) / double(n)},
                              {"perplexity", std::exp(nll_a / double(n))},
                              {"ref_perplexity", std::exp(nll_b / double(n))}};
    if (o->json) {
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf("%s\n", fmt::format("{} positions | KL(ref||model) mean {:.5f} max {:.4f} | top-1 agreement {:.4f} | "
                                      "perplexity {:.3f} vs ref {:.3f}",
                                      n, j["kl_mean"].get<double>(), kl_max, j["top1_agreement"].get<double>(),
                                      j["perplexity"].get<double>(), j["ref_perplexity"].get<double>())
                              .c_str());
    }
    return 0;
  };
}

}  // namespace moe::cli
