// Gated DeltaNet layers from an HF checkpoint, into the one layout of LinearAttnWeights.
// Qwen3.5 ships separate q/k/v, z, b and a projections already in that layout; Qwen3-Next fuses
// them per key head ([q, k, v-group, z-group] and [b-group, a-group]), whose rows are gathered
// once into buffers the model owns.
#pragma once
#include <string>

#include "runtime/model.h"
#include "runtime/owned_tensors.h"

namespace moe {

// `prefix` is "<layers prefix>N.linear_attn.".
LinearAttnWeights load_linear_attn(const Checkpoint& ck, const ModelConfig& c, const std::string& prefix,
                                   OwnedTensors& owned);

}  // namespace moe
