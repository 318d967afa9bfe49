// Bytes a loaded model owns beyond its file mappings: tensors a loader had to copy or rearrange
// (gpt-oss's interleaved experts, Qwen3-Next's per-head grouped projections). Held by
// Model::storage so views into it live as long as the model.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

namespace moe {

struct OwnedTensors {
  std::vector<std::unique_ptr<std::vector<uint8_t>>> buffers;
  uint8_t* add(size_t bytes) {
    buffers.push_back(std::make_unique<std::vector<uint8_t>>(bytes));
    return buffers.back()->data();
  }
};

}  // namespace moe
