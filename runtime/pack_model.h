// Packs as models: a .moepack -> Model (dense tensors viewed in the mapping, experts through
// an ExpertSource), and Model -> the canonical list of non-expert tensors a converter writes.
// The pack names tensors after Model's fields ("layers.3.attn.q"), never after a checkpoint
// family: HF naming stays in runtime/model_loader.cpp.
#pragma once
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/model.h"
#include "storage/pack_file.h"

namespace moe {

// What a tensor is for: decides its format at convert time and groups NMSE reports.
enum class TensorClass { Embedding, LmHead, Norm, Attention, Bias, Router, SharedExpert, SharedExpertGate, DenseFfn };
std::string_view tensor_class_name(TensorClass c);

struct DenseTensor {
  std::string name;
  TensorClass cls;
  WeightView view;  // [rows, cols]; vectors (norms, biases) are [n, 1]
};
// Every non-expert tensor of `m` under its pack name, in pack order. A tied LM head (the
// same memory as the embedding) is left out; the loader re-ties it.
std::vector<DenseTensor> dense_tensors(const Model& m);

// The same list from a config alone (names, classes, shapes), for writers without a Model.
struct DenseSpec {
  std::string name;
  TensorClass cls;
  int64_t rows, cols;  // vectors are [n, 1]
};
std::vector<DenseSpec> dense_specs(const ModelConfig& cfg);

// The config of a pack: its embedded config.json (+ generation_config.json eos/bos ids).
ModelConfig pack_model_config(const PackFile& pack);

// Every expert addressable in the mapping: uncompressed records are viewed in place,
// compressed ones decoded once into owned buffers. Each record's checksum is verified
// the first time it is acquired (a corrupt record throws naming layer and expert).
class MappedPackExperts final : public ExpertSource {
 public:
  explicit MappedPackExperts(std::shared_ptr<const PackFile> pack, bool verify = true);
  ExpertWeights acquire(int layer, int expert) override;
  void release(int, int) override {}

 private:
  struct Slot {
    bool ready = false;
    ExpertWeights w;
    std::shared_ptr<uint8_t> owned;  // decoded record of a compressed expert
  };
  std::shared_ptr<const PackFile> pack_;
  bool verify_;
  std::mutex mu_;
  std::vector<std::vector<Slot>> slots_;  // [layer][expert]
};

struct PackLoadOptions {
  // Checksum the dense region at load: one corrupt byte of a norm or embedding would otherwise
  // give silently wrong logits. It is read once anyway; xxh64 runs at memory speed (~GB/s).
  bool verify_dense = true;
  bool verify_experts = true;   // checksum each record when first acquired (MappedPackExperts)
  // The expert source over the pack (e.g. a budgeted TieredExperts); MappedPackExperts when empty.
  // It gets the pack and the config parsed from it (the tier needs top_k).
  std::function<std::unique_ptr<ExpertSource>(std::shared_ptr<const PackFile>, const ModelConfig&)> make_experts;
};
// Opens and validates a pack and builds the Model. Model::storage keeps the PackFile
// (and so the mapping the views point into) alive.
Model load_pack_model(const std::filesystem::path& path, const PackLoadOptions& opt = {});
// The same from a pack already open (a session opens it once and reads its tokenizer too).
Model load_pack_model(std::shared_ptr<const PackFile> pack, const PackLoadOptions& opt = {});

// A directory is a Hugging Face checkpoint (load_hf_model), a file a .moepack.
Model load_model(const std::filesystem::path& path);

}  // namespace moe
