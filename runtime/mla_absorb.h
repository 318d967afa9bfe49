// MLA (DeepSeek-V2/V3) in absorbed form: kv_b_proj split per head into W_UK transposed (queries
// into the latent space) and W_UV (latents out), in a form the quantized matmuls read.
#pragma once

#include <cstdint>
#include <vector>

#include "quant/quantize.h"
#include "quant/weight_view.h"
#include "runtime/model_config.h"

namespace moe {

struct MlaAbsorbed {
  QuantizedMatrix uk_t, uv;  // owned copies, when views into kv_b_proj will not do
  // Per head: W_UK transposed [kv_lora_rank, qk_nope_head_dim] and W_UV [v_head_dim,
  // kv_lora_rank]; views into uk_t / uv or into kv_b_proj itself (which must then outlive them).
  std::vector<WeightView> uk_t_heads, uv_heads;
};

// kv_b_proj [n_heads * (qk_nope_head_dim + v_head_dim), kv_lora_rank]: per head, nope rows of W_UK,
// then vd rows of W_UV. Exact where the weights came as shipped: block-scaled FP8 (all three widths
// multiples of 128) is transposed code by code and W_UV read in place; float weights become fp32
// copies. Weights quantized by us (INT8, INT4) become int8 rows (int8 activations), which an
// fp32 copy would make 4x the bytes read per token.
MlaAbsorbed absorb_mla(const ModelConfig& c, const WeightView& kv_b);

}  // namespace moe
