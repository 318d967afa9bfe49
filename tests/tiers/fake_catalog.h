// Test double for a pack file: per (layer, expert) a record of random F32 gate/up/down
// matrices written at 4 KiB-aligned offsets of a temp file. Values are regenerated from a
// seed rather than kept, so big fakes cost no RAM (the RSS test relies on it). Records marked
// "compressed" are stored as an 8-byte magic + bytes XOR 0x5A, to exercise the staging path.
#pragma once
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "storage/expert_catalog.h"
#include "storage/io/expert_reader.h"

namespace moe::test {

struct FakeSpec {
  int n_layers = 3;
  int n_experts = 8;
  int dense_layer = -1;    // a layer with no experts
  int64_t hidden = 64;
  int64_t inter = 40;      // layer l uses inter + inter_step * l: sizes differ by layer
  int64_t inter_step = 0;
  bool compress_odd = false;  // odd experts stored "compressed"
  bool pad_file_end = false;  // false: the file ends at the last record's stored bytes
  uint64_t seed = 1;
};

inline uint64_t fnv1a(const uint8_t* p, uint64_t n) {
  uint64_t h = 1469598103934665603ull;
  for (uint64_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

inline std::filesystem::path tier_temp_dir(const std::string& tag) {
  // Under the working directory (the build tree) rather than /tmp: some filesystems (older
  // tmpfs, overlays) refuse O_DIRECT, and the RSS test needs it.
  auto d = std::filesystem::current_path() / ("moe-tiers-" + tag + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}

// Removes its directory when the test ends, however it ends (a failed ASSERT returns early).
struct TempDir {
  explicit TempDir(const std::string& tag) : path(tier_temp_dir(tag)) {}
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::filesystem::path path;
};

class FakeCatalog final : public ExpertCatalog {
 public:
  static constexpr uint64_t kMagic = 0x46414b455a535444ull;  // "DTSZEKAF"

  FakeCatalog(std::filesystem::path path, FakeSpec spec) : path_(std::move(path)), spec_(spec) {
    std::ofstream f(path_, std::ios::binary | std::ios::trunc);
    if (!f) throw std::runtime_error(path_.string() + ": cannot create");
    uint64_t off = 0, end = 0;
    records_.resize(size_t(spec_.n_layers));
    verifies_ = std::make_unique<std::atomic<int>[]>(size_t(spec_.n_layers * spec_.n_experts));
    for (int l = 0; l < spec_.n_layers; ++l) {
      if (l == spec_.dense_layer) continue;
      for (int e = 0; e < spec_.n_experts; ++e) {
        std::vector<uint8_t> stored = stored_bytes(l, e);
        ExpertRecordRef r;
        r.offset = off;
        r.stored_bytes = stored.size();
        r.padded_bytes = align_up(stored.size());
        r.raw_bytes = raw_bytes(l);
        r.compressed = compressed(e);
        r.checksum = fnv1a(stored.data(), stored.size());
        stored.resize(r.padded_bytes, 0);
        f.seekp(std::streamoff(off));
        f.write(reinterpret_cast<const char*>(stored.data()), std::streamsize(r.stored_bytes));
        if (spec_.pad_file_end) f.write(reinterpret_cast<const char*>(stored.data() + r.stored_bytes),
                                        std::streamsize(r.padded_bytes - r.stored_bytes));
        end = off + (spec_.pad_file_end ? r.padded_bytes : r.stored_bytes);
        off += r.padded_bytes;
        records_[size_t(l)].push_back(r);
      }
    }
    f.close();
    std::filesystem::resize_file(path_, end);
  }

  const std::filesystem::path& path() const override { return path_; }
  int n_layers() const override { return spec_.n_layers; }
  int n_experts(int layer) const override { return int(records_.at(size_t(layer)).size()); }
  const ExpertRecordRef& record(int layer, int expert) const override { return records_.at(size_t(layer)).at(size_t(expert)); }

  void decode(int layer, int expert, const uint8_t* stored, uint8_t* raw, bool verify) const override {
    ++decodes_;
    const ExpertRecordRef& r = record(layer, expert);
    if (verify) {
      ++verifies_[size_t(layer * spec_.n_experts + expert)];
      const uint64_t h = fnv1a(stored, r.stored_bytes);
      if (h != r.checksum)
        throw std::runtime_error(fmt::format("{}: layer {} expert {}: checksum mismatch (expected {:016x}, got {:016x}); "
                                             "the pack is corrupt, rebuild it",
                                             path_.string(), layer, expert, r.checksum, h));
    }
    if (r.compressed) {
      uint64_t m = 0;
      std::memcpy(&m, stored, 8);
      if (m != kMagic) throw std::runtime_error(fmt::format("{}: layer {} expert {}: bad frame", path_.string(), layer, expert));
      for (uint64_t i = 0; i < r.raw_bytes; ++i) raw[i] = stored[8 + i] ^ 0x5A;
    } else if (raw != stored) {
      std::memcpy(raw, stored, r.raw_bytes);
    }
  }

  ExpertWeights views(int layer, int, const uint8_t* raw) const override {
    const int64_t H = spec_.hidden, I = inter(layer);
    const auto* f = reinterpret_cast<const float*>(raw);
    ExpertWeights w;
    w.gate = WeightView{DType::F32, f, I, H};
    w.up = WeightView{DType::F32, f + I * H, I, H};
    w.down = WeightView{DType::F32, f + 2 * I * H, H, I};
    return w;
  }

  // The values the expert's matrices must hold: gate, up, down concatenated.
  std::vector<float> expected(int layer, int expert) const {
    std::mt19937_64 rng(spec_.seed * 1000003 + uint64_t(layer) * 1009 + uint64_t(expert));
    std::uniform_real_distribution<float> d(-1.0f, 1.0f);
    std::vector<float> v(size_t(3 * spec_.hidden * inter(layer)));
    for (float& x : v) x = d(rng);
    return v;
  }
  // True when the views of an acquired expert hold exactly expected(layer, expert).
  bool matches(int layer, int expert, const ExpertWeights& w) const {
    const std::vector<float> v = expected(layer, expert);
    const size_t m = v.size() / 3;
    return w.gate.dtype == DType::F32 && std::memcmp(w.gate.data, v.data(), m * 4) == 0 &&
           std::memcmp(w.up.data, v.data() + m, m * 4) == 0 && std::memcmp(w.down.data, v.data() + 2 * m, m * 4) == 0;
  }

  // Flips one byte of the record on disk (the checksum then fails).
  void corrupt(int layer, int expert) const {
    std::fstream f(path_, std::ios::binary | std::ios::in | std::ios::out);
    const uint64_t at = record(layer, expert).offset + 11;
    f.seekg(std::streamoff(at));
    char c = 0;
    f.read(&c, 1);
    c = char(c ^ 0x01);
    f.seekp(std::streamoff(at));
    f.write(&c, 1);
  }

  int verify_count(int layer, int expert) const { return verifies_[size_t(layer * spec_.n_experts + expert)].load(); }
  int decode_count() const { return decodes_.load(); }
  int64_t inter(int layer) const { return spec_.inter + spec_.inter_step * layer; }
  uint64_t raw_bytes(int layer) const { return uint64_t(3 * spec_.hidden * inter(layer)) * 4; }
  bool compressed(int expert) const { return spec_.compress_odd && expert % 2 == 1; }

 private:
  std::vector<uint8_t> stored_bytes(int l, int e) const {
    const std::vector<float> v = expected(l, e);
    std::vector<uint8_t> raw(v.size() * 4);
    std::memcpy(raw.data(), v.data(), raw.size());
    if (!compressed(e)) return raw;
    std::vector<uint8_t> s(8 + raw.size());
    std::memcpy(s.data(), &kMagic, 8);
    for (size_t i = 0; i < raw.size(); ++i) s[8 + i] = raw[i] ^ 0x5A;
    return s;
  }

  std::filesystem::path path_;
  FakeSpec spec_;
  std::vector<std::vector<ExpertRecordRef>> records_;
  std::unique_ptr<std::atomic<int>[]> verifies_;
  mutable std::atomic<int> decodes_{0};
};

}  // namespace moe::test
