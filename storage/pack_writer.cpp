#include "storage/pack_writer.h"

#include <zstd.h>

#include <fmt/format.h>

#include <chrono>
#include <cstring>
#include <stdexcept>

namespace moe::pack {

EncodedRecord encode_record(std::vector<uint8_t> raw, const RecordEncoding& enc) {
  EncodedRecord r;
  r.raw_bytes = raw.size();
  if (enc.zstd) {
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<uint8_t> z(ZSTD_compressBound(raw.size()));
    const size_t n = ZSTD_compress(z.data(), z.size(), raw.data(), raw.size(), enc.zstd_level);
    if (ZSTD_isError(n)) throw std::runtime_error(fmt::format("zstd compression failed: {}", ZSTD_getErrorName(n)));
    r.compress_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    // Incompressible records (typical of int4 codes) are stored raw: no decode cost for nothing.
    if (n < raw.size()) {
      z.resize(n);
      r.stored = std::move(z);
      r.compressed = true;
    }
  }
  if (!r.compressed) r.stored = std::move(raw);
  r.xxh64 = xxh64(r.stored.data(), r.stored.size());
  return r;
}

PackWriter::PackWriter(const std::filesystem::path& out, uint32_t n_layers, std::span<const std::filesystem::path> inputs)
    : file_(out, inputs), out_file_(file_.fd(), out) {
  meta_.header.n_layers = n_layers;
  dense_hash_ = XXH64_createState();
  XXH64_reset(dense_hash_, 0);
  pad_to(kPage);  // the header page, filled in by finish()
  meta_.header.dense_offset = kPage;
}

PackWriter::~PackWriter() {
  if (dense_hash_) XXH64_freeState(dense_hash_);
}

void PackWriter::pad_to(uint64_t offset) {
  static const uint8_t zeros[kPage] = {};
  while (pos() < offset) {
    const uint64_t n = std::min<uint64_t>(offset - pos(), kPage);
    if (!in_experts_ && meta_.header.dense_offset) XXH64_update(dense_hash_, zeros, n);
    write(zeros, n);
  }
}

void PackWriter::add_dense(const std::string& name, const MatrixLayout& local, const uint8_t* bytes) {
  if (in_experts_) throw std::logic_error("PackWriter: dense tensor '" + name + "' after the first expert record");
  const uint64_t base = align_up(pos(), kPartAlign);
  pad_to(base);
  DenseEntry d;
  d.name = name;
  d.m = local;
  d.m.data_offset += base - meta_.header.dense_offset;
  if (local.shape_view().scale_bytes() > 0) d.m.scales_offset += base - meta_.header.dense_offset;
  if (local.dtype == DType::Q4Z) d.m.zeros_offset += base - meta_.header.dense_offset;
  d.bytes = uint64_t(local.shape_view().bytes());
  const uint64_t n = local.end();
  XXH64_update(dense_hash_, bytes, n);
  write(bytes, n);
  meta_.dense.push_back(std::move(d));
}

void PackWriter::add_expert_layer(const LayerLayout& layout) { meta_.layers.push_back(layout); }

void PackWriter::add_record(uint32_t layer, uint32_t expert, const EncodedRecord& rec) {
  if (!in_experts_) {
    // The dense region ends here; records start on the next page.
    meta_.header.dense_bytes = pos() - meta_.header.dense_offset;
    meta_.header.dense_xxh64 = XXH64_digest(dense_hash_);
    in_experts_ = true;
  }
  pad_to(align_up(pos(), kPage));
  RecordEntry r;
  r.layer = layer;
  r.expert = expert;
  r.offset = pos();
  r.stored_bytes = rec.stored.size();
  r.raw_bytes = rec.raw_bytes;
  r.xxh64 = rec.xxh64;
  r.flags = rec.compressed ? kFlagZstd : 0;
  write(rec.stored.data(), rec.stored.size());
  pad_to(align_up(pos(), kPage));  // so one O_DIRECT read of padded_bytes stays inside the file
  meta_.records.push_back(r);
}

void PackWriter::finish(const nlohmann::json& manifest) {
  if (!in_experts_) {
    meta_.header.dense_bytes = pos() - meta_.header.dense_offset;
    meta_.header.dense_xxh64 = XXH64_digest(dense_hash_);
    in_experts_ = true;
  }
  Header& h = meta_.header;
  const std::string mj = manifest.dump();
  h.manifest_offset = pos();
  h.manifest_bytes = mj.size();
  h.manifest_xxh64 = xxh64(mj.data(), mj.size());
  write(mj.data(), mj.size());
  pad_to(align_up(pos(), 8));
  const std::vector<uint8_t> table = encode_table(meta_);
  h.table_offset = pos();
  h.table_bytes = table.size();
  h.table_xxh64 = xxh64(table.data(), table.size());
  write(table.data(), table.size());
  h.n_dense = uint32_t(meta_.dense.size());
  h.n_expert_layers = uint32_t(meta_.layers.size());
  h.n_records = uint32_t(meta_.records.size());
  h.file_bytes = pos();
  uint8_t hb[kHeaderBytes];
  encode_header(h, hb);
  out_file_.finish(hb, kHeaderBytes);
  file_.commit();
}

}  // namespace moe::pack
