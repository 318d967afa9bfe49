// Times the tokenizer on the pathological 1 MB texts (tests/tokenizer/pathological_texts.h): long
// runs of combining marks, spaces, digits and letters, which must tokenize in linear time. Prints
// seconds, token count and id hash per text; the hashes match tests/tokenizer/pathological_golden.txt
// (HF tokenizers). Plain main: timing is reported, never asserted.
// Usage: bench_tokenizer [SOURCE_DIR [tokenizer.json...]]   (default: the golden's tokenizers)
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <exception>

#include "runtime/tokenizer/tokenizer.h"
#include "tests/tokenizer/pathological_texts.h"

int main(int argc, char** argv) {
  std::string root = argc > 1 ? argv[1] : MOE_SOURCE_DIR;
  std::vector<std::string> paths(argv + std::min(argc, 2), argv + argc);
  if (paths.empty()) paths = moe::test::pathological_tokenizers();
  auto texts = moe::test::pathological_texts();
  int status = 0;
  for (const auto& p : paths) {
    try {
      moe::Tokenizer tok = moe::Tokenizer::load(root + "/" + p);
      for (const auto& [name, text] : texts) {
        auto t0 = std::chrono::steady_clock::now();
        std::vector<int32_t> ids = tok.encode(text, false);
        double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        std::printf("%-42s %-14s %8.3f s  %8zu ids  %016" PRIx64 "\n", p.c_str(), name.c_str(), s,
                    ids.size(), moe::test::fnv1a_ids(ids));
        std::fflush(stdout);
      }
    } catch (const std::exception& e) {
      std::fprintf(stderr, "bench_tokenizer: %s\n", e.what());
      status = 1;
    }
  }
  return status;
}
