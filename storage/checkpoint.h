// The tensors of a Hugging Face checkpoint directory: model.safetensors, or the shards
// listed in model.safetensors.index.json. Tensors are looked up by name and checked
// against the dtype and shape the model description expects.
#pragma once
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "quant/weight_view.h"
#include "storage/safetensors.h"

namespace moe {

class Checkpoint {
 public:
  // Opens and validates every shard. Throws std::runtime_error with a one-line message.
  explicit Checkpoint(const std::filesystem::path& dir);

  const std::filesystem::path& dir() const { return dir_; }
  bool has(const std::string& name) const { return find(name) != nullptr; }
  // The raw entry and the file holding it; nullptr when absent.
  const SafetensorsEntry* find(const std::string& name, const SafetensorsFile** file = nullptr) const;
  // A tensor of exactly `shape` in a float dtype; throws naming the file, the tensor and
  // what was expected when it is missing or differs.
  const SafetensorsEntry& require(const std::string& name, const std::vector<int64_t>& shape) const;
  // 2-D weight [rows, cols] (also accepts a 1-D [rows] tensor when cols == 1). FP8 e4m3 weights
  // come with their DeepSeek-V3 block scales (`<name>_scale_inv`), as F8E4M3 group 128.
  WeightView matrix(const std::string& name, int64_t rows, int64_t cols) const;
  std::vector<std::string> names() const;
  uint64_t total_bytes() const;

 private:
  WeightView fp8_block_matrix(const std::string& name, int64_t rows, int64_t cols) const;

  std::filesystem::path dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> shards_;
};

}  // namespace moe
