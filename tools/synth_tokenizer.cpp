// The tokenizer files moe synth embeds into its packs, linked into the binary with .incbin
// (MOE_SYNTH_TOKENIZER_DIR is set by tools/CMakeLists.txt) so `moe synth` needs no data files.
#include "tools/synth_weights.h"

__asm__(
    ".pushsection .rodata\n"
    ".globl moe_synth_tok_begin\n.globl moe_synth_tok_end\n"
    ".globl moe_synth_tokcfg_begin\n.globl moe_synth_tokcfg_end\n"
    "moe_synth_tok_begin:\n.incbin \"" MOE_SYNTH_TOKENIZER_DIR "/tokenizer.json\"\nmoe_synth_tok_end:\n"
    "moe_synth_tokcfg_begin:\n.incbin \"" MOE_SYNTH_TOKENIZER_DIR "/tokenizer_config.json\"\nmoe_synth_tokcfg_end:\n"
    ".popsection\n");

extern "C" const char moe_synth_tok_begin[], moe_synth_tok_end[], moe_synth_tokcfg_begin[], moe_synth_tokcfg_end[];

namespace moe::cli {

std::string_view synth_tokenizer_json() { return {moe_synth_tok_begin, size_t(moe_synth_tok_end - moe_synth_tok_begin)}; }
std::string_view synth_tokenizer_config_json() {
  return {moe_synth_tokcfg_begin, size_t(moe_synth_tokcfg_end - moe_synth_tokcfg_begin)};
}

}  // namespace moe::cli
