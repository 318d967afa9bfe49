#include "storage/pack_file.h"

#include <zstd.h>

#include <fmt/format.h>

#include <cstring>
#include <memory>
#include <stdexcept>
#include <vector>

namespace moe {
namespace {

// Fuzz builds (scripts/fuzz.sh) accept any checksum so mutations reach the decoder behind it.
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
bool sum_ok(uint64_t, uint64_t) { return true; }
#else
bool sum_ok(uint64_t got, uint64_t want) { return got == want; }
#endif

void check_record(const std::filesystem::path& path, int layer, int expert, const ExpertRecordRef& r, const uint8_t* stored) {
  const uint64_t got = pack::xxh64(stored, r.stored_bytes);
  if (!sum_ok(got, r.checksum))
    throw std::runtime_error(fmt::format(
        "{}: expert record of layer {} expert {} is corrupt (xxh64 {:016x}, expected {:016x}); re-run moe convert",
        path.string(), layer, expert, got, r.checksum));
}

}  // namespace

PackFile::PackFile(const std::filesystem::path& path) : file_(path) {
  meta_ = pack::parse_metadata(file_.data(), file_.size(), path.string());
  layer_slot_.assign(meta_.header.n_layers, -1);
  size_t first = 0;
  for (size_t i = 0; i < meta_.layers.size(); ++i) {
    layer_slot_[meta_.layers[i].layer] = int(i);
    first_record_.push_back(first);
    first += meta_.layers[i].n_experts;
  }
  for (const auto& r : meta_.records) {
    ExpertRecordRef ref;
    ref.offset = r.offset;
    ref.stored_bytes = r.stored_bytes;
    ref.padded_bytes = pack::align_up(r.stored_bytes, pack::kPage);
    ref.raw_bytes = r.raw_bytes;
    ref.checksum = r.xxh64;
    ref.compressed = (r.flags & pack::kFlagZstd) != 0;
    refs_.push_back(ref);
  }
  for (size_t i = 0; i < meta_.dense.size(); ++i) dense_index_[meta_.dense[i].name] = i;
}

int PackFile::n_experts(int layer) const {
  if (layer < 0 || layer >= n_layers() || layer_slot_[size_t(layer)] < 0) return 0;
  return int(meta_.layers[size_t(layer_slot_[size_t(layer)])].n_experts);
}

size_t PackFile::index(int layer, int expert) const {
  if (expert < 0 || expert >= n_experts(layer))
    throw std::out_of_range(fmt::format("{}: no expert record for layer {} expert {}", path().string(), layer, expert));
  return first_record_[size_t(layer_slot_[size_t(layer)])] + size_t(expert);
}

const ExpertRecordRef& PackFile::record(int layer, int expert) const { return refs_[index(layer, expert)]; }

void PackFile::decode(int layer, int expert, const uint8_t* stored, uint8_t* raw, bool verify) const {
  const ExpertRecordRef& r = record(layer, expert);
  if (verify) check_record(path(), layer, expert, r, stored);
  if (!r.compressed) {
    if (raw != stored) std::memcpy(raw, stored, r.raw_bytes);
    return;
  }
  const size_t n = ZSTD_decompress(raw, r.raw_bytes, stored, r.stored_bytes);
  if (ZSTD_isError(n) || n != r.raw_bytes)
    throw std::runtime_error(fmt::format("{}: expert record of layer {} expert {} is not a valid zstd frame ({}); re-run moe convert",
                                         path().string(), layer, expert,
                                         ZSTD_isError(n) ? ZSTD_getErrorName(n) : "wrong decoded size"));
}

ExpertWeights PackFile::views(int layer, int expert, const uint8_t* raw) const {
  (void)index(layer, expert);  // range check
  const pack::LayerLayout& l = meta_.layers[size_t(layer_slot_[size_t(layer)])];
  return {l.gate.view(raw), l.up.view(raw), l.down.view(raw)};
}

void PackFile::verify_record(int layer, int expert) const {
  const ExpertRecordRef& r = record(layer, expert);
  check_record(path(), layer, expert, r, file_.data() + r.offset);
}

void PackFile::verify_decode(int layer, int expert) const {
  verify_record(layer, expert);
  const ExpertRecordRef& r = record(layer, expert);
  if (!r.compressed) return;
  auto fail = [&](const std::string& why) {
    throw std::runtime_error(fmt::format(
        "{}: expert record of layer {} expert {} is not a valid zstd frame ({}); re-run moe convert", path().string(),
        layer, expert, why));
  };
  std::unique_ptr<ZSTD_DStream, decltype(&ZSTD_freeDStream)> ds(ZSTD_createDStream(), ZSTD_freeDStream);
  if (!ds) throw std::bad_alloc();
  std::vector<uint8_t> buf(ZSTD_DStreamOutSize());
  ZSTD_inBuffer in{file_.data() + r.offset, r.stored_bytes, 0};
  uint64_t produced = 0;
  size_t ret = 1;
  while (ret != 0) {
    ZSTD_outBuffer out{buf.data(), buf.size(), 0};
    ret = ZSTD_decompressStream(ds.get(), &out, &in);
    if (ZSTD_isError(ret)) fail(ZSTD_getErrorName(ret));
    produced += out.pos;
    if (produced > r.raw_bytes) fail(fmt::format("decodes to more than the stated {} bytes", r.raw_bytes));
    if (ret != 0 && in.pos == in.size && out.pos < out.size) fail("truncated frame");
  }
  if (produced != r.raw_bytes || in.pos != in.size)
    fail(fmt::format("decodes to {} bytes, stated {}{}", produced, r.raw_bytes, in.pos != in.size ? ", trailing bytes" : ""));
}

void PackFile::verify_dense() const {
  const auto& h = meta_.header;
  const uint64_t got = pack::xxh64(dense_base(), h.dense_bytes);
  if (!sum_ok(got, h.dense_xxh64))
    throw std::runtime_error(fmt::format(
        "{}: dense region (embeddings, attention, norms, routers) is corrupt (xxh64 {:016x}, expected {:016x}); re-run moe convert",
        path().string(), got, h.dense_xxh64));
}

std::string PackFile::embedded_file(const std::string& name) const {
  const auto& f = meta_.manifest["files"];
  return f.contains(name) ? f[name].get<std::string>() : std::string();
}

const pack::DenseEntry* PackFile::find_dense(const std::string& name) const {
  const auto it = dense_index_.find(name);
  return it == dense_index_.end() ? nullptr : &meta_.dense[it->second];
}

}  // namespace moe
