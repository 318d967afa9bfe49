// Writes small valid packs into DIR as the pack fuzzer's seed corpus: one plain, one with
// zstd records and Q4Z/F8 block-scaled matrices, so mutations start from every code path.
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "storage/pack_writer.h"

using namespace moe;

static void write_seed(const std::filesystem::path& path, bool zstd, DType et, int32_t group) {
  pack::PackWriter w(path, 2);
  uint64_t cur = 0;
  const auto norm = pack::place_matrix(DType::F32, 0, 64, 1, &cur);
  std::vector<uint8_t> b(norm.end(), 0);
  w.add_dense("final_norm", norm, b.data());
  cur = 0;
  const auto head = pack::place_matrix(DType::I8, 0, 16, 64, &cur);
  b.assign(head.end(), 3);
  w.add_dense("lm_head", head, b.data());
  pack::LayerLayout L;
  L.layer = 1;
  L.n_experts = 2;
  cur = 0;
  L.gate = pack::place_matrix(et, group, 128, 128, &cur);
  L.up = pack::place_matrix(et, group, 128, 128, &cur);
  L.down = pack::place_matrix(et, group, 128, 128, &cur);
  L.raw_bytes = cur;
  w.add_expert_layer(L);
  for (uint32_t e = 0; e < 2; ++e) {
    std::vector<uint8_t> raw(L.raw_bytes);
    for (size_t i = 0; i < raw.size(); ++i) raw[i] = uint8_t((i * 7 + e) % 11);
    w.add_record(1, e, pack::encode_record(std::move(raw), {zstd, 3}));
  }
  w.finish({{"architecture", "Seed"}, {"files", {{"config.json", "{\"architectures\": [\"Seed\"]}"}}}});
}

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_pack_seeds DIR\n");
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  std::filesystem::create_directories(dir);
  write_seed(dir / "q4.moepack", false, DType::Q4, 32);
  write_seed(dir / "q4z-zstd.moepack", true, DType::Q4Z, 64);
  write_seed(dir / "f8-block.moepack", true, DType::F8E4M3, 128);
  return 0;
}
