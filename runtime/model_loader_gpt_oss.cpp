#include "runtime/model_loader_gpt_oss.h"

#include <fmt/format.h>

#include <cstring>
#include <stdexcept>

#include "storage/checkpoint.h"

namespace moe {
namespace {

// Every other row of [rows, row_bytes] starting at `first` (0: gate, 1: up).
void take_rows(const uint8_t* src, int64_t rows, int64_t row_bytes, int first, uint8_t* dst) {
  for (int64_t r = first, o = 0; r < rows; r += 2, ++o) std::memcpy(dst + o * row_bytes, src + r * row_bytes, size_t(row_bytes));
}

// out[c, r] = in[r, c] for elements of `elem` bytes.
void transpose(const uint8_t* in, int64_t rows, int64_t cols, int elem, uint8_t* out) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) std::memcpy(out + (c * rows + r) * elem, in + (r * cols + c) * elem, size_t(elem));
}

const SafetensorsEntry& u8(const Checkpoint& ck, const std::string& name, const std::vector<int64_t>& shape) {
  const SafetensorsFile* file = nullptr;
  const SafetensorsEntry* e = ck.find(name, &file);
  if (!e) throw std::runtime_error(fmt::format("{}: tensor '{}' is missing (gpt-oss MXFP4 layout)", ck.dir().string(), name));
  if (e->dtype_name != "U8" || e->shape != shape)
    throw std::runtime_error(fmt::format("{}: tensor '{}' is {} with {} dims, expected U8 {}", file->path().string(), name,
                                         e->dtype_name, e->shape.size(), fmt::join(shape, "x")));
  return *e;
}

}  // namespace

void load_gpt_oss_experts(const Checkpoint& ck, const ModelConfig& c, const std::string& p, LayerWeights& L,
                          std::vector<ExpertWeights>& row, OwnedTensors& owned) {
  const int64_t E = c.router.n_experts, I = c.moe_intermediate, H = c.hidden;
  const std::string x = p + "experts.";
  // Biases: gate_up [E, 2I] interleaved -> flat gate and up [E * I]; down [E, H] as is.
  {
    const auto& gu = ck.require(x + "gate_up_proj_bias", {E, 2 * I});
    const int elem = dtype_size(*gu.dtype);
    uint8_t* g = owned.add(size_t(E * I * elem));
    uint8_t* u = owned.add(size_t(E * I * elem));
    const auto* src = static_cast<const uint8_t*>(gu.data);
    for (int64_t i = 0; i < E * I; ++i) {
      std::memcpy(g + i * elem, src + (2 * i) * elem, size_t(elem));
      std::memcpy(u + i * elem, src + (2 * i + 1) * elem, size_t(elem));
    }
    L.expert_gate_bias = WeightView{*gu.dtype, g, E * I, 1};
    L.expert_up_bias = WeightView{*gu.dtype, u, E * I, 1};
    const auto& dn = ck.require(x + "down_proj_bias", {E, H});
    L.expert_down_bias = WeightView{*dn.dtype, dn.data, E * H, 1};
  }
  if (ck.has(x + "gate_up_proj_blocks")) {
    // The hub's MXFP4: rows are output features, 16 bytes and one scale per 32 inputs.
    if (H % 32 != 0 || I % 32 != 0)
      throw std::runtime_error(fmt::format("{}: MXFP4 experts need hidden ({}) and intermediate ({}) sizes that are "
                                           "multiples of 32", ck.dir().string(), H, I));
    const auto& gub = u8(ck, x + "gate_up_proj_blocks", {E, 2 * I, H / 32, 16});
    const auto& gus = u8(ck, x + "gate_up_proj_scales", {E, 2 * I, H / 32});
    const auto& dnb = u8(ck, x + "down_proj_blocks", {E, H, I / 32, 16});
    const auto& dns = u8(ck, x + "down_proj_scales", {E, H, I / 32});
    for (int64_t e = 0; e < E; ++e) {
      const auto* blocks = static_cast<const uint8_t*>(gub.data) + e * 2 * I * (H / 2);
      const auto* scales = static_cast<const uint8_t*>(gus.data) + e * 2 * I * (H / 32);
      ExpertWeights w;
      for (int which = 0; which < 2; ++which) {
        uint8_t* d = owned.add(size_t(I * H / 2));
        uint8_t* s = owned.add(size_t(I * H / 32));
        take_rows(blocks, 2 * I, H / 2, which, d);
        take_rows(scales, 2 * I, H / 32, which, s);
        (which == 0 ? w.gate : w.up) = WeightView{DType::MXFP4, d, I, H, s, nullptr, 32};
      }
      w.down = WeightView{DType::MXFP4, static_cast<const uint8_t*>(dnb.data) + e * H * (I / 2), H, I,
                          static_cast<const uint8_t*>(dns.data) + e * H * (I / 32), nullptr, 32};
      row.push_back(w);
    }
    return;
  }
  // transformers 5: gate_up_proj [E, H, 2I] and down_proj [E, I, H], used as x @ W.
  const auto& gu = ck.require(x + "gate_up_proj", {E, H, 2 * I});
  const auto& dn = ck.require(x + "down_proj", {E, I, H});
  const int elem = dtype_size(*gu.dtype);
  std::vector<uint8_t> t(size_t(2 * I * H * elem));
  for (int64_t e = 0; e < E; ++e) {
    transpose(static_cast<const uint8_t*>(gu.data) + e * H * 2 * I * elem, H, 2 * I, elem, t.data());  // [2I, H]
    ExpertWeights w;
    for (int which = 0; which < 2; ++which) {
      uint8_t* d = owned.add(size_t(I * H * elem));
      take_rows(t.data(), 2 * I, H * elem, which, d);
      (which == 0 ? w.gate : w.up) = WeightView{*gu.dtype, d, I, H};
    }
    uint8_t* d = owned.add(size_t(H * I * dtype_size(*dn.dtype)));
    transpose(static_cast<const uint8_t*>(dn.data) + e * I * H * dtype_size(*dn.dtype), I, H, dtype_size(*dn.dtype), d);
    w.down = WeightView{*dn.dtype, d, H, I};
    row.push_back(w);
  }
}

}  // namespace moe
