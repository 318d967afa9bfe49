// gpt-oss's routed experts from an HF checkpoint. Its layouts put gate and up in one tensor
// with interleaved outputs (gate = even, up = odd), and the transformers-5 form stores the
// matrices input-major; the engine wants separate [I, H] gate and up and an [H, I] down, so
// those are copied once into buffers the model owns (MXFP4 codes and scales move whole rows,
// nothing is re-quantized). The hub's MXFP4 down projection is used in place.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/model.h"
#include "runtime/owned_tensors.h"

namespace moe {

// Fills `row` with layer `layer`'s experts and L's expert biases; `prefix` is "model.layers.N.mlp.".
void load_gpt_oss_experts(const Checkpoint& ck, const ModelConfig& c, const std::string& prefix, LayerWeights& L,
                          std::vector<ExpertWeights>& row, OwnedTensors& owned);

}  // namespace moe
