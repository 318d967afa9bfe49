// The pack format itself: a pack written with PackWriter reads back exactly, and every kind
// of damage (bad magic, other version, truncation, a flipped byte anywhere) gives a clear
// one-line error naming what is wrong.
#include <gtest/gtest.h>

#include <cstring>

#include "pack/pack_test_util.h"
#include "storage/pack_file.h"
#include "storage/pack_writer.h"

using namespace moe;
using namespace moe::test;
namespace fs = std::filesystem;

namespace {

nlohmann::json small_manifest() {
  return {{"architecture", "Test"}, {"files", {{"config.json", "{}"}}}};
}

pack::LayerLayout small_layout(uint32_t layer) {
  pack::LayerLayout L;
  L.layer = layer;
  L.n_experts = 3;
  uint64_t cur = 0;
  L.gate = pack::place_matrix(DType::Q4, 32, 8, 64, &cur);  // [I=8, H=64]
  L.up = pack::place_matrix(DType::Q4, 32, 8, 64, &cur);
  L.down = pack::place_matrix(DType::BF16, 0, 64, 8, &cur);  // [H, I]
  L.raw_bytes = cur;
  return L;
}

// Expert bytes encode (layer, expert, index) so a mixup shows.
std::vector<uint8_t> expert_bytes(uint32_t layer, uint32_t e, uint64_t n) {
  std::vector<uint8_t> raw(n);
  for (size_t i = 0; i < n; ++i) raw[i] = uint8_t(layer * 31 + e * 7 + (i % 5 == 0 ? i : 0));
  return raw;
}

// Two dense tensors, MoE layers 0 and 2 of three with 3 experts each; layer 2 zstd.
fs::path write_small_pack(const fs::path& path) {
  pack::PackWriter w(path, 3);
  uint64_t cur = 0;
  const auto norm = pack::place_matrix(DType::F32, 0, 4, 1, &cur);
  std::vector<uint8_t> b(norm.end());
  const float v[4] = {1, 2, 3, 4};
  std::memcpy(b.data(), v, 16);
  w.add_dense("final_norm", norm, b.data());
  cur = 0;
  const auto head = pack::place_matrix(DType::I8, 0, 3, 64, &cur);
  std::vector<uint8_t> h(head.end(), 7);
  w.add_dense("lm_head", head, h.data());
  for (uint32_t layer : {0u, 2u}) w.add_expert_layer(small_layout(layer));
  for (uint32_t layer : {0u, 2u})
    for (uint32_t e = 0; e < 3; ++e)
      w.add_record(layer, e, pack::encode_record(expert_bytes(layer, e, small_layout(layer).raw_bytes), {layer == 2, 3}));
  w.finish(small_manifest());
  return path;
}

std::string open_error(const fs::path& p) {
  try {
    PackFile f(p);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(PackFormat, RoundTrip) {
  const fs::path p = write_small_pack(pack_tmp("fmt") / "rt.moepack");
  EXPECT_FALSE(fs::exists(p.string() + ".tmp"));
  const PackFile f(p);
  EXPECT_EQ(f.n_layers(), 3);
  EXPECT_EQ(f.n_experts(0), 3);
  EXPECT_EQ(f.n_experts(1), 0);
  EXPECT_EQ(f.n_experts(2), 3);
  const auto* norm = f.find_dense("final_norm");
  ASSERT_NE(norm, nullptr);
  const WeightView nv = f.dense_view(*norm);
  EXPECT_EQ(static_cast<const float*>(nv.data)[3], 4.0f);
  const auto* head = f.find_dense("lm_head");
  ASSERT_NE(head, nullptr);
  EXPECT_EQ(f.dense_view(*head).dtype, DType::I8);
  EXPECT_NE(f.dense_view(*head).scales, nullptr);
  f.verify_dense();
  for (int layer : {0, 2})
    for (int e = 0; e < 3; ++e) {
      const ExpertRecordRef& r = f.record(layer, e);
      EXPECT_EQ(r.offset % 4096, 0u);
      EXPECT_EQ(r.padded_bytes % 4096, 0u);
      EXPECT_GE(r.padded_bytes, r.stored_bytes);
      EXPECT_LE(r.offset + r.padded_bytes, f.file_bytes());  // one O_DIRECT read stays in the file
      std::vector<uint8_t> raw(r.raw_bytes);
      f.decode(layer, e, f.stored(layer, e), raw.data(), true);
      EXPECT_EQ(raw, expert_bytes(uint32_t(layer), uint32_t(e), r.raw_bytes)) << layer << " " << e;
      const ExpertWeights w = f.views(layer, e, raw.data());
      EXPECT_EQ(w.gate.dtype, DType::Q4);
      EXPECT_EQ(w.gate.rows, 8);
      EXPECT_EQ(w.down.rows, 64);
      EXPECT_EQ(static_cast<const uint8_t*>(w.gate.data), raw.data());
    }
  EXPECT_TRUE(f.record(2, 1).compressed);  // repetitive bytes compress
  EXPECT_FALSE(f.record(0, 1).compressed);
  EXPECT_THROW(f.record(1, 0), std::out_of_range);
}

TEST(PackFormat, BadMagic) {
  const fs::path p = write_small_pack(pack_tmp("fmt") / "magic.moepack");
  auto b = read_bytes(p);
  b[0] = 'X';
  write_bytes(p, b);
  const std::string e = open_error(p);
  EXPECT_NE(e.find("magic.moepack: not a moe pack (bad magic"), std::string::npos) << e;
}

TEST(PackFormat, WrongVersion) {
  const fs::path p = write_small_pack(pack_tmp("fmt") / "ver.moepack");
  auto b = read_bytes(p);
  b[8] = 2;
  write_bytes(p, b);
  const std::string e = open_error(p);
  EXPECT_NE(e.find("pack format version 2 is not supported (this build reads version 1)"), std::string::npos) << e;
}

TEST(PackFormat, ByteSwapped) {
  const fs::path p = write_small_pack(pack_tmp("fmt") / "endian.moepack");
  auto b = read_bytes(p);
  std::swap(b[12], b[15]);
  std::swap(b[13], b[14]);
  write_bytes(p, b);
  EXPECT_NE(open_error(p).find("endianness check"), std::string::npos) << open_error(p);
}

TEST(PackFormat, Truncated) {
  const fs::path p = write_small_pack(pack_tmp("fmt") / "trunc.moepack");
  auto b = read_bytes(p);
  b.resize(b.size() - 100);
  write_bytes(p, b);
  EXPECT_NE(open_error(p).find("truncated"), std::string::npos) << open_error(p);
  b.resize(20);
  write_bytes(p, b);
  EXPECT_NE(open_error(p).find("shorter than the 128-byte header"), std::string::npos) << open_error(p);
}

TEST(PackFormat, CorruptHeaderManifestTable) {
  const fs::path p = write_small_pack(pack_tmp("fmt") / "meta.moepack");
  const auto good = read_bytes(p);
  const pack::Header h = PackFile(p).metadata().header;
  auto flip = [&](uint64_t at) {
    auto b = good;
    b[at] ^= 0x40;
    write_bytes(p, b);
    return open_error(p);
  };
  EXPECT_NE(flip(30).find("header checksum mismatch"), std::string::npos);
  EXPECT_NE(flip(h.manifest_offset + 3).find("manifest checksum mismatch"), std::string::npos);
  EXPECT_NE(flip(h.table_offset + 70).find("table checksum mismatch"), std::string::npos);
}

TEST(PackFormat, CorruptExpertRecordNamesLayerAndExpert) {
  const fs::path p = write_small_pack(pack_tmp("fmt") / "rec.moepack");
  uint64_t at = 0;
  {
    const PackFile f(p);
    at = f.record(2, 1).offset + 5;
  }
  auto b = read_bytes(p);
  b[at] ^= 0x01;
  write_bytes(p, b);
  const PackFile f(p);  // metadata is intact: opening works
  std::vector<uint8_t> raw(f.record(2, 1).raw_bytes);
  try {
    f.decode(2, 1, f.stored(2, 1), raw.data(), true);
    FAIL() << "no error for a corrupt record";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("rec.moepack: expert record of layer 2 expert 1 is corrupt"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(f.verify_record(2, 1), std::runtime_error);
  EXPECT_NO_THROW(f.verify_record(2, 0));
}

TEST(PackFormat, CorruptDenseRegion) {
  const fs::path p = write_small_pack(pack_tmp("fmt") / "dense.moepack");
  auto b = read_bytes(p);
  b[4096 + 2] ^= 0x10;
  write_bytes(p, b);
  const PackFile f(p);
  try {
    f.verify_dense();
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("dense region"), std::string::npos) << e.what();
  }
}

TEST(PackFormat, InterruptedWriteLeavesNoFile) {
  const fs::path dir = pack_tmp("fmt");
  const fs::path p = dir / "never.moepack";
  fs::remove(p);
  {
    pack::PackWriter w(p, 1);
  }  // destroyed without finish(): as if the run died
  EXPECT_FALSE(fs::exists(p));
  EXPECT_FALSE(fs::exists(p.string() + ".tmp"));
  // A file named like the old fixed temporary is neither used nor touched.
  write_bytes(p.string() + ".tmp", std::vector<uint8_t>(10, 1));
  write_small_pack(p);
  EXPECT_NO_THROW(PackFile{p});
  EXPECT_EQ(read_bytes(p.string() + ".tmp"), std::vector<uint8_t>(10, 1));
}

// A table that claims more decoded bytes than a record's matrices can take, or more than its
// zstd frame can expand to, is refused at open: readers (moe verify) allocate raw_bytes.
TEST(PackFormat, RecordSizeClaimsAreBoundedAtOpen) {
  const fs::path dir = pack_tmp("fmt");
  auto write_claim = [&](const fs::path& p, const pack::LayerLayout& L, uint64_t claim) {
    pack::PackWriter w(p, 1);
    uint64_t cur = 0;
    const auto norm = pack::place_matrix(DType::F32, 0, 4, 1, &cur);
    std::vector<uint8_t> b(norm.end(), 0);
    w.add_dense("final_norm", norm, b.data());
    pack::LayerLayout big = L;
    big.raw_bytes = claim;
    big.n_experts = 1;
    w.add_expert_layer(big);
    pack::EncodedRecord rec = pack::encode_record(std::vector<uint8_t>(1 << 16, 0), {true, 3});
    ASSERT_TRUE(rec.compressed);
    rec.raw_bytes = claim;
    w.add_record(0, 0, rec);
    w.finish(small_manifest());
  };
  // The small layout's matrices take a few KB; the record claims 64 GiB.
  write_claim(dir / "claim.moepack", small_layout(0), uint64_t(1) << 36);
  EXPECT_NE(open_error(dir / "claim.moepack").find("record size 68719476736 exceeds the"), std::string::npos)
      << open_error(dir / "claim.moepack");
  // Matrices that could take 24 GiB, but a frame of a few bytes cannot expand that far.
  pack::LayerLayout huge;
  uint64_t cur = 0;
  huge.gate = pack::place_matrix(DType::BF16, 0, 65536, 65536, &cur);
  huge.up = pack::place_matrix(DType::BF16, 0, 65536, 65536, &cur);
  huge.down = pack::place_matrix(DType::BF16, 0, 65536, 65536, &cur);
  write_claim(dir / "bomb.moepack", huge, cur);
  EXPECT_NE(open_error(dir / "bomb.moepack").find("cannot decode to 25769803776 bytes"), std::string::npos)
      << open_error(dir / "bomb.moepack");
}

TEST(PackFormat, LargeWritesCrossStagingBuffers) {
  // 40 MB of dense data: several 16 MiB staging buffers handed to the background writer.
  const fs::path p = pack_tmp("fmt") / "large.moepack";
  uint64_t cur = 0;
  const auto m = pack::place_matrix(DType::BF16, 0, 10000, 2000, &cur);
  std::vector<uint8_t> b(m.end());
  for (size_t i = 0; i < b.size(); ++i) b[i] = uint8_t(i * 2654435761u >> 13);
  {
    pack::PackWriter w(p, 1);
    w.add_dense("embed", m, b.data());
    w.add_dense("lm_head", m, b.data());
    w.finish(small_manifest());
  }
  const PackFile f(p);
  EXPECT_NO_THROW(f.verify_dense());
  for (const char* name : {"embed", "lm_head"}) {
    const WeightView v = f.dense_view(*f.find_dense(name));
    EXPECT_EQ(std::memcmp(v.data, b.data(), b.size()), 0) << name;
  }
  EXPECT_EQ(f.file_bytes(), fs::file_size(p));
}
