// Integration: a real .moepack (PackWriter -> PackFile) served through the RAM tier by every
// reader, with zstd and stored-as-is records, a budget smaller than the experts, and a
// corrupted record reported by the pack's own checksum.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <random>

#include "storage/io/make_reader.h"
#include "storage/pack_file.h"
#include "storage/pack_writer.h"
#include "storage/tier/budget.h"
#include "storage/tier/tiered_experts.h"
#include "tiers/fake_catalog.h"

namespace moe {
namespace {

constexpr int kLayers = 3, kExperts = 6;  // layer 0 dense, layers 1-2 MoE
constexpr int64_t H = 64, I = 48;

// Bit patterns of matrix m of an expert: small integers for even experts (compressible: zstd
// kept), random bits for odd ones (incompressible: stored as is). Compared bitwise.
std::vector<uint32_t> values(int l, int e, int m, int64_t n) {
  std::vector<uint32_t> v(static_cast<size_t>(n));
  std::mt19937 rng(uint32_t(l * 1000 + e * 10 + m));
  for (int64_t i = 0; i < n; ++i) {
    const float small = float((l * 7 + e * 3 + m + i) % 5);
    uint32_t bits = 0;
    std::memcpy(&bits, &small, 4);
    v[size_t(i)] = e % 2 == 0 ? bits : uint32_t(rng());
  }
  return v;
}

bool matches(int l, int e, const WeightView& v, int m) {
  const std::vector<uint32_t> want = values(l, e, m, v.rows * v.cols);
  return std::memcmp(v.data, want.data(), want.size() * 4) == 0;
}

std::filesystem::path write_pack(const std::filesystem::path& dir) {
  const auto out = dir / "tiny.moepack";
  pack::PackWriter w(out, kLayers);
  for (int l = 1; l < kLayers; ++l) {
    uint64_t cur = 0;
    pack::LayerLayout L;
    L.layer = uint32_t(l);
    L.n_experts = kExperts;
    L.gate = pack::place_matrix(DType::F32, 0, I, H, &cur);
    L.up = pack::place_matrix(DType::F32, 0, I, H, &cur);
    L.down = pack::place_matrix(DType::F32, 0, H, I, &cur);
    L.raw_bytes = cur;
    w.add_expert_layer(L);
  }
  for (int l = 1; l < kLayers; ++l) {
    uint64_t cur = 0;
    const pack::MatrixLayout ms[3] = {pack::place_matrix(DType::F32, 0, I, H, &cur), pack::place_matrix(DType::F32, 0, I, H, &cur),
                                      pack::place_matrix(DType::F32, 0, H, I, &cur)};
    for (int e = 0; e < kExperts; ++e) {
      std::vector<uint8_t> raw(cur);
      for (int m = 0; m < 3; ++m) {
        const std::vector<uint32_t> v = values(l, e, m, ms[m].rows * ms[m].cols);
        std::memcpy(raw.data() + ms[m].data_offset, v.data(), v.size() * 4);
      }
      w.add_record(uint32_t(l), uint32_t(e), pack::encode_record(std::move(raw), {.zstd = true}));
    }
  }
  w.finish({{"architecture", "test"}, {"files", {{"config.json", "{}"}}}});
  return out;
}

TEST(PackTier, ServesAPackThroughEveryReader) {
  const test::TempDir tmp("pack");
  const auto& dir = tmp.path;
  auto pack = std::make_shared<PackFile>(write_pack(dir));
  ASSERT_EQ(pack->n_experts(0), 0);
  ASSERT_TRUE(pack->record(1, 0).compressed);
  ASSERT_FALSE(pack->record(1, 1).compressed);
  for (const char* io : {"uring", "pread", "mmap"}) {
    TierOptions o;
    o.budget_bytes = total_expert_bytes(*pack) / 3;
    o.top_k = 2;
    TieredExperts t(pack, make_reader(io, pack->path()), std::move(o));
    for (int pass = 0; pass < 2; ++pass)
      for (int l = 1; l < kLayers; ++l)
        for (int e = 0; e < kExperts; ++e) {
          const ExpertWeights w = t.acquire(l, e);
          EXPECT_TRUE(matches(l, e, w.gate, 0) && matches(l, e, w.up, 1) && matches(l, e, w.down, 2))
              << io << " layer " << l << " expert " << e;
          t.release(l, e);
        }
    const TierStats s = t.stats();
    EXPECT_EQ(s.checksum_verifications, uint64_t((kLayers - 1) * kExperts));
    EXPECT_LE(s.peak_allocated_bytes, s.budget_bytes);
    EXPECT_GT(s.evictions, 0u);
  }
}

TEST(PackTier, CorruptRecordNamesLayerAndExpert) {
  const test::TempDir tmp("pack-corrupt");
  const auto& dir = tmp.path;
  const auto path = write_pack(dir);
  {
    const PackFile p(path);
    std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(std::streamoff(p.record(2, 3).offset + 100));
    f.put('\x7f');
  }
  auto pack = std::make_shared<PackFile>(path);
  TierOptions o;
  o.budget_bytes = total_expert_bytes(*pack);
  TieredExperts t(pack, make_reader("uring", path), std::move(o));
  try {
    t.acquire(2, 3);
    ADD_FAILURE();
  } catch (const std::runtime_error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("layer 2 expert 3"), std::string::npos) << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  }
  EXPECT_NO_THROW(t.acquire(2, 2));
}

}  // namespace
}  // namespace moe
