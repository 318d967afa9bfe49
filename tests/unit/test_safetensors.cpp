#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>

#include "storage/checkpoint.h"
#include "storage/safetensors.h"
#include "unit/st_writer.h"

using namespace moe;
using namespace moe::test;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

std::map<std::string, SafetensorsEntry> parse(const std::string& b) {
  return SafetensorsFile::parse(reinterpret_cast<const uint8_t*>(b.data()), b.size(), "x.safetensors");
}

}  // namespace

TEST(Safetensors, ParsesTensorsAndData) {
  const auto b = safetensors_bytes({f32_tensor("a", {2, 3}, 1.0f), {"b", "BF16", {4}, std::vector<uint8_t>(8, 0)},
                                    {"ids", "I64", {2}, std::vector<uint8_t>(16, 0)}});
  const auto m = parse(b);
  ASSERT_EQ(m.size(), 3u);
  const auto& a = m.at("a");
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3}));
  ASSERT_TRUE(a.dtype.has_value());
  EXPECT_EQ(*a.dtype, DType::F32);
  float v;
  std::memcpy(&v, a.data + 5 * 4, 4);
  EXPECT_EQ(v, 6.0f);
  EXPECT_EQ(*m.at("b").dtype, DType::BF16);
  EXPECT_FALSE(m.at("ids").dtype.has_value());  // known to the format, not computed with
  EXPECT_EQ(m.at("ids").nbytes, 16u);
}

TEST(Safetensors, MetadataIsIgnored) {
  std::string b = safetensors_bytes({f32_tensor("a", {1})});
  // Rebuild with a __metadata__ entry.
  nlohmann::json h = {{"__metadata__", {{"format", "pt"}}},
                      {"a", {{"dtype", "F32"}, {"shape", {1}}, {"data_offsets", {0, 4}}}}};
  std::string hs = h.dump();
  std::string out(8, '\0');
  out[0] = char(hs.size());
  out += hs + std::string(4, '\0');
  EXPECT_EQ(parse(out).size(), 1u);
}

TEST(Safetensors, TooShort) { EXPECT_NE(error_of([] { parse("abc"); }).find("shorter than the 8-byte header"), std::string::npos); }

TEST(Safetensors, HeaderLengthBeyondFile) {
  std::string b = safetensors_bytes({f32_tensor("a", {4})});
  b[0] = char(0xff);
  b[1] = char(0xff);
  EXPECT_NE(error_of([&] { parse(b); }).find("exceeds the file size"), std::string::npos);
}

TEST(Safetensors, TruncatedData) {
  std::string b = safetensors_bytes({f32_tensor("a", {4}), f32_tensor("layer.w", {8})});
  b.resize(b.size() - 5);
  const std::string e = error_of([&] { parse(b); });
  EXPECT_NE(e.find("x.safetensors"), std::string::npos) << e;
  EXPECT_NE(e.find("'layer.w'"), std::string::npos) << e;
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;
}

TEST(Safetensors, BadJson) {
  std::string b = safetensors_bytes({f32_tensor("a", {4})});
  b[8] = '#';
  EXPECT_NE(error_of([&] { parse(b); }).find("not valid JSON"), std::string::npos);
}

TEST(Safetensors, SizeMismatch) {
  auto t = f32_tensor("a", {4});
  t.shape = {5};
  EXPECT_NE(error_of([&] { parse(safetensors_bytes({t})); }).find("needs 20 bytes but data_offsets give 16"),
            std::string::npos);
}

TEST(Safetensors, UnknownDtypeAndBadFields) {
  auto t = f32_tensor("a", {4});
  t.dtype = "F128";
  EXPECT_NE(error_of([&] { parse(safetensors_bytes({t})); }).find("unknown dtype 'F128'"), std::string::npos);
  nlohmann::json h = {{"a", {{"dtype", "F32"}, {"shape", {-1}}, {"data_offsets", {0, 4}}}}};
  std::string hs = h.dump(), out(8, '\0');
  out[0] = char(hs.size());
  EXPECT_NE(error_of([&] { parse(out + hs + std::string(4, '\0')); }).find("non-negative"), std::string::npos);
}

TEST(Safetensors, ReversedOffsets) {
  nlohmann::json h = {{"a", {{"dtype", "F32"}, {"shape", {1}}, {"data_offsets", {4, 0}}}}};
  std::string hs = h.dump(), out(8, '\0');
  out[0] = char(hs.size());
  EXPECT_NE(error_of([&] { parse(out + hs + std::string(4, '\0')); }).find("reversed"), std::string::npos);
}

// A header built by hand (JSON text as written, so keys may repeat) over `data_bytes` zeros.
static std::string raw_safetensors(const std::string& header, size_t data_bytes) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[size_t(i)] = char((uint64_t(header.size()) >> (8 * i)) & 0xff);
  return out + header + std::string(data_bytes, '\0');
}

// nlohmann keeps the last of two equal keys: the first tensor vanished without a word.
TEST(Safetensors, DuplicateNamesAreRejected) {
  const std::string t = R"({"dtype":"F32","shape":[1],"data_offsets":[0,4]})";
  const std::string e = error_of([&] { parse(raw_safetensors("{\"w\":" + t + ",\"w\":" + t + "}", 4)); });
  EXPECT_NE(e.find("x.safetensors: not a valid safetensors file: key 'w' appears twice in the header"), std::string::npos)
      << e;
  const std::string inner = R"({"w":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}})";
  EXPECT_NE(error_of([&] { parse(raw_safetensors(inner, 4)); }).find("key 'dtype' appears twice"), std::string::npos);
}

// Two tensors over the same bytes alias each other (writing one changes the other).
TEST(Safetensors, OverlappingTensorsAreRejected) {
  const std::string h = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                        R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})";
  const std::string e = error_of([&] { parse(raw_safetensors(h, 12)); });
  EXPECT_NE(e.find("tensors 'a' [0, 8) and 'b' [4, 12) overlap"), std::string::npos) << e;
  // Adjacent and empty tensors are fine.
  const std::string ok = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                         R"("e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},)"
                         R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})";
  EXPECT_EQ(parse(raw_safetensors(ok, 12)).size(), 3u);
}

TEST(Checkpoint, SingleFileLookupAndValidation) {
  const auto d = temp_dir("ckpt1");
  write_file(d / "model.safetensors", safetensors_bytes({f32_tensor("w", {3, 2}, 0.5f), f32_tensor("n", {3})}));
  Checkpoint ck(d);
  const WeightView w = ck.matrix("w", 3, 2);
  EXPECT_EQ(w.rows, 3);
  EXPECT_EQ(load_as_f32(w.dtype, w.data, 5), 5.5f);
  EXPECT_EQ(ck.matrix("n", 3, 1).rows, 3);
  std::string e = error_of([&] { ck.matrix("w", 2, 3); });
  EXPECT_NE(e.find("tensor 'w' has shape [3, 2], expected [2, 3]"), std::string::npos) << e;
  e = error_of([&] { ck.matrix("missing.weight", 4, 4); });
  EXPECT_NE(e.find("tensor 'missing.weight' is missing (expected shape [4, 4])"), std::string::npos) << e;
  std::filesystem::remove_all(d);
}

TEST(Checkpoint, ShardedIndex) {
  const auto d = temp_dir("ckpt2");
  write_file(d / "model-00001-of-00002.safetensors", safetensors_bytes({f32_tensor("a", {2})}));
  write_file(d / "model-00002-of-00002.safetensors", safetensors_bytes({f32_tensor("b", {2}, 7.0f)}));
  write_file(d / "model.safetensors.index.json",
             R"({"metadata": {}, "weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}})");
  Checkpoint ck(d);
  EXPECT_EQ(load_as_f32(DType::F32, ck.matrix("b", 2, 1).data, 0), 7.0f);
  // A shard that lacks a tensor the index promises.
  write_file(d / "model.safetensors.index.json",
             R"({"weight_map": {"a": "model-00001-of-00002.safetensors", "c": "model-00002-of-00002.safetensors"}})");
  std::string e = error_of([&] { Checkpoint c2(d); });
  EXPECT_NE(e.find("tensor 'c' is listed in the index but missing"), std::string::npos) << e;
  // A shard that is missing altogether.
  std::filesystem::remove(d / "model-00002-of-00002.safetensors");
  e = error_of([&] { Checkpoint c3(d); });
  EXPECT_NE(e.find("shard 'model-00002-of-00002.safetensors' listed in the index is missing"), std::string::npos) << e;
  std::filesystem::remove_all(d);
}

TEST(Checkpoint, NotAModelDirectory) {
  const auto d = temp_dir("ckpt3");
  EXPECT_NE(error_of([&] { Checkpoint c(d); }).find("no model.safetensors"), std::string::npos);
  std::filesystem::remove_all(d);
}
