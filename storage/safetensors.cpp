#include "storage/safetensors.h"

#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>
#include <tuple>

namespace moe {
namespace {

// Byte width of every element type the format defines; 0 for unknown names.
int element_bytes(const std::string& t) {
  if (t == "F64" || t == "I64" || t == "U64") return 8;
  if (t == "F32" || t == "I32" || t == "U32") return 4;
  if (t == "F16" || t == "BF16" || t == "I16" || t == "U16") return 2;
  if (t == "I8" || t == "U8" || t == "BOOL" || t == "F8_E4M3" || t == "F8_E5M2") return 1;
  return 0;
}

[[noreturn]] void bad(const std::string& file, const std::string& what) {
  throw std::runtime_error(fmt::format("{}: not a valid safetensors file: {}", file, what));
}

}  // namespace

std::string shape_str(const std::vector<int64_t>& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

std::map<std::string, SafetensorsEntry> SafetensorsFile::parse(const uint8_t* bytes, size_t size,
                                                               const std::string& file) {
  if (size < 8) bad(file, fmt::format("file is {} bytes, shorter than the 8-byte header length (truncated?)", size));
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[i];
  if (header_len > size - 8)
    bad(file, fmt::format("header length {} exceeds the file size {} (truncated or corrupt)", header_len, size));
  const uint8_t* data = bytes + 8 + header_len;
  const uint64_t data_size = size - 8 - header_len;

  nlohmann::json header;
  // nlohmann keeps the last of repeated keys silently: a second "w" would replace the first
  // tensor unseen. A stack of key sets, one per open object, catches repeats at any depth.
  std::vector<std::set<std::string>> keys;
  std::string repeated;
  const auto cb = [&](int, nlohmann::json::parse_event_t ev, nlohmann::json& v) {
    using E = nlohmann::json::parse_event_t;
    if (ev == E::object_start) keys.emplace_back();
    if (ev == E::object_end && !keys.empty()) keys.pop_back();
    if (ev == E::key && !keys.empty() && !keys.back().insert(v.get<std::string>()).second && repeated.empty())
      repeated = v.get<std::string>();
    return true;
  };
  try {
    header = nlohmann::json::parse(bytes + 8, bytes + 8 + header_len, cb);
  } catch (const nlohmann::json::exception& e) {
    bad(file, fmt::format("header is not valid JSON ({})", e.what()));
  }
  if (!header.is_object()) bad(file, "header is not a JSON object");
  if (!repeated.empty()) bad(file, fmt::format("key '{}' appears twice in the header", repeated));

  std::map<std::string, SafetensorsEntry> out;
  std::vector<std::tuple<uint64_t, uint64_t, std::string>> spans;  // [begin, end) of each non-empty tensor
  for (const auto& item : header.items()) {
    // Not a structured binding: clang 14 (the fuzz build) cannot capture those in lambdas.
    const std::string& name = item.key();
    const auto& info = item.value();
    if (name == "__metadata__") continue;
    auto tensor_bad = [&](const std::string& what) { bad(file, fmt::format("tensor '{}': {}", name, what)); };
    if (!info.is_object()) tensor_bad("entry is not an object");
    const auto dt = info.find("dtype");
    const auto sh = info.find("shape");
    const auto off = info.find("data_offsets");
    if (dt == info.end() || !dt->is_string()) tensor_bad("missing 'dtype'");
    if (sh == info.end() || !sh->is_array()) tensor_bad("missing 'shape'");
    if (off == info.end() || !off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
        !(*off)[1].is_number_unsigned())
      tensor_bad("'data_offsets' must be two non-negative integers");

    SafetensorsEntry e;
    e.dtype_name = dt->get<std::string>();
    const int eb = element_bytes(e.dtype_name);
    if (eb == 0) tensor_bad(fmt::format("unknown dtype '{}'", e.dtype_name));
    DType d;
    if (dtype_from_safetensors(e.dtype_name, &d)) e.dtype = d;

    uint64_t count = 1;
    for (const auto& v : *sh) {
      if (!v.is_number_unsigned()) tensor_bad("shape entries must be non-negative integers");
      const uint64_t n = v.get<uint64_t>();
      if (n != 0 && count > (uint64_t(1) << 62) / n) tensor_bad("shape is implausibly large");
      count *= n;
      e.shape.push_back(int64_t(n));
    }
    const uint64_t begin = (*off)[0].get<uint64_t>(), end = (*off)[1].get<uint64_t>();
    if (begin > end) tensor_bad(fmt::format("data_offsets [{}, {}] are reversed", begin, end));
    if (end > data_size)
      tensor_bad(fmt::format("data ends at byte {} but the data section has only {} bytes (file truncated?)", end,
                             data_size));
    if (end - begin != count * uint64_t(eb))
      tensor_bad(fmt::format("{} {} needs {} bytes but data_offsets give {}", e.dtype_name, shape_str(e.shape),
                             count * uint64_t(eb), end - begin));
    e.data = data + begin;
    e.nbytes = end - begin;
    if (e.nbytes > 0) spans.emplace_back(begin, end, name);
    out.emplace(name, std::move(e));
  }
  // Two tensors sharing bytes would alias each other's data: a writer never produces that.
  std::sort(spans.begin(), spans.end());
  for (size_t i = 1; i < spans.size(); ++i)
    if (std::get<0>(spans[i]) < std::get<1>(spans[i - 1]))
      bad(file, fmt::format("tensors '{}' [{}, {}) and '{}' [{}, {}) overlap in the data section",
                            std::get<2>(spans[i - 1]), std::get<0>(spans[i - 1]), std::get<1>(spans[i - 1]),
                            std::get<2>(spans[i]), std::get<0>(spans[i]), std::get<1>(spans[i])));
  return out;
}

SafetensorsFile::SafetensorsFile(const std::filesystem::path& path) : file_(path) {
  entries_ = parse(file_.data(), file_.size(), path.string());
}

const SafetensorsEntry* SafetensorsFile::find(const std::string& name) const {
  auto it = entries_.find(name);
  return it == entries_.end() ? nullptr : &it->second;
}

}  // namespace moe
