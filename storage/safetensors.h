// Parser for the safetensors format: an 8-byte little-endian header length, a JSON
// header {name: {dtype, shape, data_offsets}}, then the tensor bytes. Everything is
// validated at open: a corrupt or truncated file throws a one-line error naming the
// file and the tensor.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "quant/dtype.h"
#include "storage/mapped_file.h"

namespace moe {

struct SafetensorsEntry {
  std::string dtype_name;       // as written in the file ("BF16", "I64", ...)
  std::optional<DType> dtype;   // set when the element type is one we compute with
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;
  uint64_t nbytes = 0;
};

class SafetensorsFile {
 public:
  // Maps and validates the file. Throws std::runtime_error on any inconsistency.
  explicit SafetensorsFile(const std::filesystem::path& path);
  // Validates a header+data image already in memory (used by the fuzz target).
  static std::map<std::string, SafetensorsEntry> parse(const uint8_t* bytes, size_t size,
                                                       const std::string& name_for_errors);

  const std::filesystem::path& path() const { return file_.path(); }
  const std::map<std::string, SafetensorsEntry>& entries() const { return entries_; }
  const SafetensorsEntry* find(const std::string& name) const;

 private:
  MappedFile file_;
  std::map<std::string, SafetensorsEntry> entries_;
};

std::string shape_str(const std::vector<int64_t>& shape);

}  // namespace moe
