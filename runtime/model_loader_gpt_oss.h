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

namespace moe {

// Bytes a model owns beyond its mappings (copied or rearranged tensors).
struct OwnedTensors {
  std::vector<std::unique_ptr<std::vector<uint8_t>>> buffers;
  uint8_t* add(size_t bytes) {
    buffers.push_back(std::make_unique<std::vector<uint8_t>>(bytes));
    return buffers.back()->data();
  }
};

// Fills `row` with layer `layer`'s experts and L's expert biases; `prefix` is "model.layers.N.mlp.".
void load_gpt_oss_experts(const Checkpoint& ck, const ModelConfig& c, const std::string& prefix, LayerWeights& L,
                          std::vector<ExpertWeights>& row, OwnedTensors& owned);

}  // namespace moe
