// Expert records (storage/vram/expert_record.h) and RecordSource: the bytes the VRAM tier
// copies, read back through the same layout, on the CPU (FakeDevice for the tier path).
#include <gtest/gtest.h>

#include <deque>
#include <random>

#include "quant/quantize.h"
#include "storage/vram/expert_record.h"
#include "storage/vram/fake_device.h"
#include "storage/vram/record_source.h"
#include "storage/vram/vram_tier.h"

namespace moe {
namespace {

// Owned matrices of one format for a few experts, plus a ResidentExperts over them.
struct Experts {
  std::deque<QuantizedMatrix> q;
  std::deque<std::vector<uint16_t>> bf16;
  std::vector<std::vector<ExpertWeights>> table;  // [layer][expert]
};

WeightView make(Experts& ex, std::mt19937& rng, DType t, int64_t rows, int64_t cols) {
  std::normal_distribution<float> nd;
  std::vector<float> w(size_t(rows * cols));
  for (float& v : w) v = nd(rng);
  if (t == DType::BF16) {
    auto& b = ex.bf16.emplace_back(w.size());
    for (size_t i = 0; i < w.size(); ++i) b[i] = f32_to_bf16(w[i]);
    return WeightView{DType::BF16, b.data(), rows, cols};
  }
  ex.q.push_back(quantize(w.data(), rows, cols, {t, t == DType::F8E4M3 ? 0 : 32}));
  return ex.q.back().view();
}

// Layers: 0 dense, 1 and 2 with `n` experts of [inter, hidden] / [hidden, inter].
Experts make_experts(DType t, int n, int64_t hidden, int64_t inter, uint32_t seed) {
  Experts ex;
  std::mt19937 rng(seed);
  ex.table.resize(3);
  for (int l = 1; l < 3; ++l)
    for (int e = 0; e < n; ++e)
      ex.table[size_t(l)].push_back(
          {make(ex, rng, t, inter, hidden), make(ex, rng, t, inter, hidden), make(ex, rng, t, hidden, inter)});
  return ex;
}

class RecordTest : public ::testing::TestWithParam<DType> {};

TEST_P(RecordTest, PackedRecordReadsBackTheSameMatrices) {
  Experts ex = make_experts(GetParam(), 2, 64, 96, 1);
  const ExpertWeights& w = ex.table[1][1];
  const ExpertRecordLayout L = expert_record_layout(w);
  EXPECT_EQ(L.bytes % kRecordAlign, 0u);
  EXPECT_GE(L.bytes, uint64_t(w.bytes()));
  for (const RecordPiece* p : {&L.gate, &L.up, &L.down})
    for (uint64_t off : {p->data, p->scales, p->zeros}) EXPECT_EQ(off % kRecordAlign, 0u);
  std::vector<uint8_t> rec(size_t(L.bytes), 0xAB);  // poison: padding must come out zero
  pack_expert_record(w, L, rec.data());
  for (auto [m, p] : {std::pair{&w.gate, &L.gate}, std::pair{&w.up, &L.up}, std::pair{&w.down, &L.down}}) {
    const WeightView v = record_view(*m, rec.data(), *p);
    EXPECT_EQ(dequantize(v), dequantize(*m));
  }
  // Every byte outside the pieces is zero padding (none of the poison is left there).
  std::vector<bool> in_piece(rec.size(), false);
  for (auto [m, p] : {std::pair{&w.gate, &L.gate}, std::pair{&w.up, &L.up}, std::pair{&w.down, &L.down}}) {
    const int64_t zb = m->dtype == DType::Q4Z ? m->rows * (m->cols / m->group) : 0;
    for (auto [off, n] : {std::pair{p->data, m->data_bytes()}, std::pair{p->scales, m->scale_bytes()},
                          std::pair{p->zeros, zb}})
      for (int64_t i = 0; i < n; ++i) in_piece[size_t(off) + size_t(i)] = true;
  }
  size_t dirty = 0;
  for (size_t i = 0; i < rec.size(); ++i) dirty += !in_piece[i] && rec[i] != 0;
  EXPECT_EQ(dirty, 0u);
}

INSTANTIATE_TEST_SUITE_P(Formats, RecordTest, ::testing::Values(DType::Q4, DType::Q4Z, DType::F8E4M3, DType::BF16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

TEST(RecordSource, TierSlotsHoldTheRecords) {
  Experts ex = make_experts(DType::Q4Z, 4, 64, 64, 2);
  ResidentExperts src(ex.table);
  RecordSource rs(src, {0, 4, 4});
  EXPECT_EQ(rs.n_experts(0), 0);
  EXPECT_EQ(rs.bytes({2, 3}), expert_record_layout(ex.table[2][3]).bytes);
  FakeDevice dev({1 << 24, 1e6, 0.0});
  VramOptions o;
  o.budget_bytes = 3 * rs.bytes({1, 0});  // 3 of 8 experts: evictions
  o.top_k = 1;
  VramTier tier(rs, dev, dev, std::move(o));
  for (auto [l, e] : {std::pair{1, 2}, std::pair{2, 3}, std::pair{1, 0}, std::pair{2, 1}, std::pair{1, 2}}) {
    const VramExpert x = tier.acquire(l, e);
    tier.wait(x);
    dev.finish_all();
    std::vector<uint8_t> want(size_t(rs.bytes({l, e})));
    pack_expert_record(ex.table[size_t(l)][size_t(e)], rs.layout(), want.data());
    EXPECT_EQ(dev.read(x.addr, x.bytes), want) << "layer " << l << " expert " << e;
    tier.release(l, e);
  }
  EXPECT_GT(tier.stats().evictions, 0u);
}

TEST(RecordSource, Wide16RecordsHoldF32) {
  Experts ex = make_experts(DType::BF16, 2, 32, 32, 3);
  ResidentExperts src(ex.table);
  RecordSource rs(src, {0, 2, 2}, /*wide16=*/true);
  EXPECT_EQ(rs.shape().gate.dtype, DType::F32);
  std::vector<uint8_t> rec(size_t(rs.bytes({1, 1})));
  rs.copy_to({1, 1}, rec.data());
  const WeightView v = record_view(rs.shape().down, rec.data(), rs.layout().down);
  EXPECT_EQ(dequantize(v), dequantize(ex.table[1][1].down));
}

TEST(RecordSource, RefusesMixedShapesAndUnknownExperts) {
  Experts ex = make_experts(DType::Q4, 2, 64, 64, 4);
  Experts other = make_experts(DType::Q4, 2, 64, 32, 5);
  ex.table[2][1] = other.table[1][0];  // a different intermediate size
  ResidentExperts src(ex.table);
  RecordSource rs(src, {0, 2, 2});
  std::vector<uint8_t> rec(size_t(rs.bytes({1, 0})));
  EXPECT_NO_THROW(rs.copy_to({2, 0}, rec.data()));
  try {
    rs.copy_to({2, 1}, rec.data());
    FAIL() << "a differently shaped expert was packed";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("expert 1 of layer 2"), std::string::npos) << e.what();
  }
  EXPECT_THROW(rs.copy_to({0, 0}, rec.data()), std::out_of_range);
  EXPECT_THROW(rs.copy_to({1, 2}, rec.data()), std::out_of_range);
  EXPECT_THROW(RecordSource(src, {0, 0, 0}), std::invalid_argument);
}

}  // namespace
}  // namespace moe
