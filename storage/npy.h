// NumPy .npy files (format 1.0) of float32, C order: the contract of `moe logits`.
#pragma once
#include <cstdint>
#include <filesystem>
#include <span>
#include <vector>

namespace moe {

// Written safely (storage/output_file.h): `path` is the old file or the whole new one, never a
// truncated one; refused when it is not a regular file or is one of `inputs`.
void write_npy_f32(const std::filesystem::path& path, std::span<const float> data, const std::vector<int64_t>& shape,
                   std::span<const std::filesystem::path> inputs = {});

struct NpyArray {
  std::vector<int64_t> shape;
  std::vector<float> data;
};
// Reads a little-endian float32 ('<f4') or float64 ('<f8', converted) array in C order.
NpyArray read_npy_f32(const std::filesystem::path& path);

}  // namespace moe
