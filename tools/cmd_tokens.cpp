// moe tokenize / detokenize: text <-> token ids with the model's tokenizer.
#include <cstdio>

#include <fmt/format.h>

#include "session/session.h"
#include "tools/commands.h"
#include "tools/model_files.h"

namespace moe::cli {

Runner add_tokenize(CLI::App& app) {
  struct Opts {
    std::string model, text;
    bool no_special = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* c = app.add_subcommand("tokenize", "Print the token ids of a text as a JSON array");
  c->add_option("--model,-m", o->model, "Model directory (reads tokenizer.json)")->required();
  c->add_option("--text", o->text, "Text to encode")->required();
  c->add_flag("--no-special", o->no_special, "Do not add BOS/EOS tokens the tokenizer would add");
  return [o] {
    const Tokenizer tok = open_tokenizer(o->model);
    std::printf("[%s]\n", fmt::format("{}", fmt::join(tok.encode(o->text, !o->no_special), ", ")).c_str());
    return 0;
  };
}

Runner add_detokenize(CLI::App& app) {
  struct Opts {
    std::string model, tokens;
    bool skip_special = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* c = app.add_subcommand("detokenize", "Print the text of comma-separated token ids");
  c->add_option("--model,-m", o->model, "Model directory (reads tokenizer.json)")->required();
  c->add_option("--tokens", o->tokens, "Comma-separated token ids, e.g. 1,2,3 (a JSON array also works)")->required();
  c->add_flag("--skip-special", o->skip_special, "Leave out special tokens");
  return [o] {
    const Tokenizer tok = open_tokenizer(o->model);
    std::string s = o->tokens;
    if (!s.empty() && s.front() == '[') s = s.substr(1, s.find(']') - 1);
    const std::vector<int32_t> ids = parse_int_list(s);
    for (int32_t id : ids)
      if (id < 0 || id >= tok.vocab_size())
        throw std::invalid_argument(fmt::format("token id {} is outside the vocabulary [0, {})", id, tok.vocab_size()));
    const std::string text = tok.decode(ids, o->skip_special) + "\n";
    std::fwrite(text.data(), 1, text.size(), stdout);  // not printf: a decoded NUL must not end the text
    return 0;
  };
}

}  // namespace moe::cli
