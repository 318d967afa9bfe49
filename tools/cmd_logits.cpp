// moe logits: the correctness contract. Writes float32 logits as .npy [positions, vocab].
#include <cstdio>

#include "session/session.h"
#include "storage/npy.h"
#include "storage/output_file.h"
#include "tools/commands.h"
#include "tools/model_files.h"
#include "tools/session_flags.h"

namespace moe::cli {

Runner add_logits(CLI::App& app) {
  struct Opts {
    std::string model, tokens, out;
    bool all = false, stats = false;
    SessionOptions session;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* c = app.add_subcommand("logits", "Write the logits of a token sequence to a NumPy .npy file");
  add_storage_flags(c, o->session.storage);
  add_stats_flag(c, o->stats);
  c->add_option("--model,-m", o->model, "Hugging Face model directory or .moepack file")->required();
  c->add_option("--tokens", o->tokens, "Comma-separated token ids, e.g. 1,2,3")->required();
  c->add_option("--out,-o", o->out, "Output .npy file: float32 [positions, vocab]")->required();
  c->add_flag("--all-positions", o->all, "Logits for every position (default: the last only)");
  add_threads_flag(c, o->session.device.threads);
  return [o] {
    const std::vector<int32_t> ids = parse_int_list(o->tokens);
    // The model's files are inputs: --out over the model would destroy it. Checked before the
    // forward pass so a bad --out fails at once (write_npy_f32 checks again when it writes).
    const std::vector<std::filesystem::path> inputs = input_files(o->model);
    check_output_target(o->out, inputs);
    o->session.prefetch.mode = "off";  // one forward pass: nothing to prefetch for
    Session session(o->model, o->session);
    const Model& model = session.model();
    InferenceEngine& engine = session.engine();
    const SeqId s = engine.create_sequence();
    const BatchItem item{s, ids, o->all};
    const std::vector<float> logits = engine.forward({&item, 1});
    const int64_t rows = o->all ? int64_t(ids.size()) : 1;
    write_npy_f32(o->out, logits, {rows, model.cfg.vocab_size}, inputs);
    std::fprintf(stderr, "wrote %s: float32 [%lld, %lld]\n", o->out.c_str(), (long long)rows,
                 (long long)model.cfg.vocab_size);
    return 0;
  };
}

}  // namespace moe::cli
