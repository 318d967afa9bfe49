#include "storage/checkpoint.h"

#include <fmt/format.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>

namespace moe {

Checkpoint::Checkpoint(const std::filesystem::path& dir) : dir_(dir) {
  namespace fs = std::filesystem;
  const fs::path index = dir / "model.safetensors.index.json";
  const fs::path single = dir / "model.safetensors";
  if (fs::exists(index)) {
    require_regular_file(index);  // a FIFO would block the read
    nlohmann::json j;
    try {
      std::ifstream in(index);
      j = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
      throw std::runtime_error(fmt::format("{}: invalid JSON ({})", index.string(), e.what()));
    }
    if (!j.contains("weight_map") || !j["weight_map"].is_object())
      throw std::runtime_error(fmt::format("{}: no 'weight_map' object", index.string()));
    std::set<std::string> files;
    for (const auto& [name, file] : j["weight_map"].items()) {
      if (!file.is_string()) throw std::runtime_error(fmt::format("{}: weight_map['{}'] is not a file name", index.string(), name));
      files.insert(file.get<std::string>());
    }
    for (const auto& f : files) {
      if (f.find('/') != std::string::npos || f.find("..") != std::string::npos)
        throw std::runtime_error(fmt::format("{}: shard name '{}' must be a plain file name", index.string(), f));
      if (!fs::exists(dir / f))
        throw std::runtime_error(fmt::format("{}: shard '{}' listed in the index is missing", dir.string(), f));
      shards_.push_back(std::make_unique<SafetensorsFile>(dir / f));
    }
    // Every tensor the index promises must be in the shard it names.
    for (const auto& [name, file] : j["weight_map"].items()) {
      const SafetensorsFile* holder = nullptr;
      if (!find(name, &holder) || holder->path().filename() != file.get<std::string>())
        throw std::runtime_error(fmt::format("{}: tensor '{}' is listed in the index but missing from the shard",
                                             (dir / file.get<std::string>()).string(), name));
    }
  } else if (fs::exists(single)) {
    shards_.push_back(std::make_unique<SafetensorsFile>(single));
  } else {
    throw std::runtime_error(fmt::format(
        "{}: no model.safetensors or model.safetensors.index.json (expected a Hugging Face model directory)",
        dir.string()));
  }
}

const SafetensorsEntry* Checkpoint::find(const std::string& name, const SafetensorsFile** file) const {
  for (const auto& s : shards_) {
    if (const SafetensorsEntry* e = s->find(name)) {
      if (file) *file = s.get();
      return e;
    }
  }
  return nullptr;
}

const SafetensorsEntry& Checkpoint::require(const std::string& name, const std::vector<int64_t>& shape) const {
  const SafetensorsFile* file = nullptr;
  const SafetensorsEntry* e = find(name, &file);
  if (!e)
    throw std::runtime_error(fmt::format("{}: tensor '{}' is missing (expected shape {}); the checkpoint is incomplete "
                                         "or does not match config.json",
                                         dir_.string(), name, shape_str(shape)));
  if (e->shape != shape)
    throw std::runtime_error(fmt::format("{}: tensor '{}' has shape {}, expected {} from config.json",
                                         file->path().string(), name, shape_str(e->shape), shape_str(shape)));
  if (!e->dtype || is_quantized(*e->dtype))
    throw std::runtime_error(fmt::format("{}: tensor '{}' has dtype {}; supported: F32, F16, BF16",
                                         file->path().string(), name, e->dtype_name));
  return *e;
}

// DeepSeek-V3's FP8 layout: e4m3 values and an fp32 `<name>_scale_inv` of one scale per
// 128x128 block (w = f8 * scale), which is F8E4M3 with group 128 as it stands: no copy.
WeightView Checkpoint::fp8_block_matrix(const std::string& name, int64_t rows, int64_t cols) const {
  const SafetensorsFile* file = nullptr;
  const SafetensorsEntry* e = find(name, &file);
  if (e->shape != std::vector<int64_t>{rows, cols})
    throw std::runtime_error(fmt::format("{}: tensor '{}' has shape {}, expected {} from config.json",
                                         file->path().string(), name, shape_str(e->shape), shape_str({rows, cols})));
  const std::string sname = name + "_scale_inv";
  const SafetensorsFile* sfile = nullptr;
  const SafetensorsEntry* s = find(sname, &sfile);
  const std::vector<int64_t> sshape{(rows + 127) / 128, (cols + 127) / 128};
  if (!s)
    throw std::runtime_error(fmt::format("{}: FP8 tensor '{}' has no '{}' (block scales); only DeepSeek-V3's 128x128 "
                                         "block-scaled FP8 layout is supported",
                                         file->path().string(), name, sname));
  if (s->shape != sshape || s->dtype_name != "F32")
    throw std::runtime_error(fmt::format("{}: '{}' is {} {}, expected F32 {} (one scale per 128x128 block; other "
                                         "weight_block_size values are not supported)",
                                         sfile->path().string(), sname, s->dtype_name, shape_str(s->shape),
                                         shape_str(sshape)));
  WeightView w{DType::F8E4M3, e->data, rows, cols};
  w.scales = s->data;
  w.group = 128;
  return w;
}

WeightView Checkpoint::matrix(const std::string& name, int64_t rows, int64_t cols) const {
  const SafetensorsEntry* e = find(name);
  if (e && e->dtype == DType::F8E4M3 && cols > 1) return fp8_block_matrix(name, rows, cols);
  const bool vector_ok = cols == 1 && e && e->shape.size() == 1;
  const SafetensorsEntry& r = vector_ok ? require(name, {rows}) : require(name, {rows, cols});
  return WeightView{*r.dtype, r.data, rows, cols};
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  for (const auto& s : shards_)
    for (const auto& [n, _] : s->entries()) out.push_back(n);
  return out;
}

uint64_t Checkpoint::total_bytes() const {
  uint64_t b = 0;
  for (const auto& s : shards_)
    for (const auto& [_, e] : s->entries()) b += e.nbytes;
  return b;
}

}  // namespace moe
