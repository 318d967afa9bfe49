#include "storage/pack_format.h"

#include <fmt/format.h>
#include <xxhash.h>
#include <zstd.h>

#include <bit>
#include <cstring>
#include <set>
#include <stdexcept>

namespace moe::pack {

// The format is little-endian and we read it with memcpy; a big-endian host would need swaps.
static_assert(std::endian::native == std::endian::little, "moe packs are read on little-endian hosts only");

namespace {

template <class T>
void put(uint8_t* p, uint64_t off, T v) {
  std::memcpy(p + off, &v, sizeof(T));
}
template <class T>
T get(const uint8_t* p, uint64_t off) {
  T v;
  std::memcpy(&v, p + off, sizeof(T));
  return v;
}

void put_matrix(uint8_t* p, const MatrixLayout& m) {
  put<uint8_t>(p, 0, uint8_t(m.dtype));
  put<int32_t>(p, 4, m.group);
  put<int64_t>(p, 8, m.rows);
  put<int64_t>(p, 16, m.cols);
  put<uint64_t>(p, 24, m.data_offset);
  put<uint64_t>(p, 32, m.scales_offset);
  put<uint64_t>(p, 40, m.zeros_offset);
}

MatrixLayout get_matrix(const uint8_t* p) {
  MatrixLayout m;
  const uint8_t d = get<uint8_t>(p, 0);
  m.dtype = d <= uint8_t(DType::MXFP4) ? DType(d) : DType(255);  // 255: rejected by check_matrix
  m.group = get<int32_t>(p, 4);
  m.rows = get<int64_t>(p, 8);
  m.cols = get<int64_t>(p, 16);
  m.data_offset = get<uint64_t>(p, 24);
  m.scales_offset = get<uint64_t>(p, 32);
  m.zeros_offset = get<uint64_t>(p, 40);
  return m;
}

uint64_t zeros_bytes(const WeightView& v) { return v.dtype == DType::Q4Z ? uint64_t(v.rows * (v.cols / v.group)) : 0; }

// The most bytes a matrix of this dtype and shape takes in a record: its parts back to back,
// each padded to kPartAlign (what place_matrix lays out).
uint64_t packed_bytes(const MatrixLayout& m) {
  const WeightView v = m.shape_view();
  return align_up(uint64_t(v.data_bytes()), kPartAlign) + align_up(uint64_t(v.scale_bytes()), kPartAlign) +
         align_up(zeros_bytes(v), kPartAlign);
}

// A zstd frame cannot expand more than this: every block of at most 128 KiB (ZSTD_BLOCKSIZE_MAX)
// costs at least 4 bytes (a 3-byte block header and one byte of an RLE block).
constexpr uint64_t kMaxZstdRatio = (uint64_t(1) << 17) / 4;

struct Checker {
  const std::string& name;
  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error(fmt::format("{}: not a valid moe pack: {}; re-run moe convert", name, what));
  }
  // [off, off + n) inside [0, limit), without overflow.
  void range(uint64_t off, uint64_t n, uint64_t limit, const std::string& what) const {
    if (off > limit || n > limit - off)
      fail(fmt::format("{} [{}, +{}) lies outside its {}-byte region (truncated or corrupt)", what, off, n, limit));
  }
  // Shape, dtype and group consistent, parts aligned and inside [0, limit).
  void matrix(const MatrixLayout& m, uint64_t limit, const std::string& what) const {
    if (uint8_t(m.dtype) > uint8_t(DType::MXFP4)) fail(fmt::format("{}: unknown dtype code", what));
    if (m.rows <= 0 || m.cols <= 0 || m.rows > (int64_t(1) << 32) || m.cols > (int64_t(1) << 32) ||
        m.rows * m.cols > (int64_t(1) << 44))
      fail(fmt::format("{}: implausible shape [{}, {}]", what, m.rows, m.cols));
    const bool q4 = m.dtype == DType::Q4 || m.dtype == DType::Q4Z;
    const bool ok_group = q4 ? ((m.group == 32 || m.group == 64 || m.group == 128) && m.cols % m.group == 0)
                          : m.dtype == DType::F8E4M3 ? (m.group == 0 || m.group == 128)
                          : m.dtype == DType::MXFP4  ? (m.group == 32 && m.cols % 32 == 0)
                                                     : m.group == 0;
    if (!ok_group) fail(fmt::format("{}: group {} does not fit {} [{}, {}]", what, m.group, dtype_name(m.dtype), m.rows, m.cols));
    const WeightView v = m.shape_view();
    auto part = [&](uint64_t off, uint64_t n, const char* p) {
      if (n == 0) return;
      if (off % kPartAlign != 0) fail(fmt::format("{}: {} offset {} is not {}-byte aligned", what, p, off, kPartAlign));
      range(off, n, limit, what + " " + p);
    };
    part(m.data_offset, uint64_t(v.data_bytes()), "data");
    part(m.scales_offset, uint64_t(v.scale_bytes()), "scales");
    part(m.zeros_offset, zeros_bytes(v), "zeros");
  }
};

}  // namespace

uint64_t xxh64(const void* p, size_t n) { return XXH64(p, n, 0); }

// Fuzz builds (scripts/fuzz.sh) accept any checksum so mutations reach the parser behind it.
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
static bool sum_ok(uint64_t, uint64_t) { return true; }
#else
static bool sum_ok(uint64_t got, uint64_t want) { return got == want; }
#endif

WeightView MatrixLayout::shape_view() const {
  WeightView v;
  v.dtype = dtype;
  v.rows = rows;
  v.cols = cols;
  v.group = group;
  return v;
}

uint64_t MatrixLayout::end() const {
  const WeightView v = shape_view();
  uint64_t e = data_offset + uint64_t(v.data_bytes());
  if (v.scale_bytes() > 0) e = std::max(e, scales_offset + uint64_t(v.scale_bytes()));
  if (zeros_bytes(v) > 0) e = std::max(e, zeros_offset + zeros_bytes(v));
  return e;
}

WeightView MatrixLayout::view(const uint8_t* base) const {
  WeightView v = shape_view();
  v.data = base + data_offset;
  if (v.scale_bytes() > 0) v.scales = base + scales_offset;
  if (zeros_bytes(v) > 0) v.zeros = base + zeros_offset;
  return v;
}

MatrixLayout place_matrix(DType dtype, int32_t group, int64_t rows, int64_t cols, uint64_t* cursor) {
  MatrixLayout m;
  m.dtype = dtype;
  m.group = group;
  m.rows = rows;
  m.cols = cols;
  const WeightView v = m.shape_view();
  uint64_t c = align_up(*cursor, kPartAlign);
  m.data_offset = c;
  c = align_up(c + uint64_t(v.data_bytes()), kPartAlign);
  if (v.scale_bytes() > 0) {
    m.scales_offset = c;
    c = align_up(c + uint64_t(v.scale_bytes()), kPartAlign);
  }
  if (zeros_bytes(v) > 0) {
    m.zeros_offset = c;
    c = align_up(c + zeros_bytes(v), kPartAlign);
  }
  *cursor = c;
  return m;
}

void encode_header(const Header& h, uint8_t out[kHeaderBytes]) {
  std::memset(out, 0, kHeaderBytes);
  std::memcpy(out, kMagic, 8);
  put<uint32_t>(out, 8, h.version);
  put<uint32_t>(out, 12, h.endian);
  put<uint64_t>(out, 16, h.file_bytes);
  put<uint64_t>(out, 24, h.manifest_offset);
  put<uint64_t>(out, 32, h.manifest_bytes);
  put<uint64_t>(out, 40, h.manifest_xxh64);
  put<uint64_t>(out, 48, h.table_offset);
  put<uint64_t>(out, 56, h.table_bytes);
  put<uint64_t>(out, 64, h.table_xxh64);
  put<uint64_t>(out, 72, h.dense_offset);
  put<uint64_t>(out, 80, h.dense_bytes);
  put<uint64_t>(out, 88, h.dense_xxh64);
  put<uint32_t>(out, 96, h.n_dense);
  put<uint32_t>(out, 100, h.n_expert_layers);
  put<uint32_t>(out, 104, h.n_records);
  put<uint32_t>(out, 108, h.n_layers);
  // bytes [112, 120) reserved, zero
  put<uint64_t>(out, 120, xxh64(out, 120));
}

std::vector<uint8_t> encode_table(const Metadata& m) {
  std::vector<uint8_t> t(m.dense.size() * kDenseEntryBytes + m.layers.size() * kLayerLayoutBytes +
                         m.records.size() * kRecordEntryBytes);
  uint8_t* p = t.data();
  for (const auto& d : m.dense) {
    if (d.name.empty() || d.name.size() >= kNameBytes)
      throw std::invalid_argument(fmt::format("pack: tensor name '{}' must be 1 to {} bytes", d.name, kNameBytes - 1));
    std::memcpy(p, d.name.data(), d.name.size());
    put_matrix(p + 64, d.m);
    put<uint64_t>(p, 112, d.bytes);
    p += kDenseEntryBytes;
  }
  for (const auto& l : m.layers) {
    put<uint32_t>(p, 0, l.layer);
    put<uint32_t>(p, 4, l.n_experts);
    put<uint64_t>(p, 8, l.raw_bytes);
    put_matrix(p + 16, l.gate);
    put_matrix(p + 16 + kMatrixLayoutBytes, l.up);
    put_matrix(p + 16 + 2 * kMatrixLayoutBytes, l.down);
    p += kLayerLayoutBytes;
  }
  for (const auto& r : m.records) {
    put<uint32_t>(p, 0, r.layer);
    put<uint32_t>(p, 4, r.expert);
    put<uint64_t>(p, 8, r.offset);
    put<uint64_t>(p, 16, r.stored_bytes);
    put<uint64_t>(p, 24, r.raw_bytes);
    put<uint64_t>(p, 32, r.xxh64);
    put<uint32_t>(p, 40, r.flags);
    p += kRecordEntryBytes;
  }
  return t;
}

namespace {

Header parse_header(const uint8_t* b, size_t size, const Checker& ck) {
  if (size < 8 || std::memcmp(b, kMagic, 8) != 0)
    throw std::runtime_error(fmt::format(
        "{}: not a moe pack (bad magic: the file must start with 'MOEPACK\\0'); give a .moepack written by moe convert or moe synth",
        ck.name));
  if (size < kHeaderBytes) ck.fail(fmt::format("file is {} bytes, shorter than the {}-byte header (truncated)", size, kHeaderBytes));
  Header h;
  h.endian = get<uint32_t>(b, 12);
  if (h.endian != kEndianCheck)
    ck.fail(fmt::format("endianness check reads 0x{:08x} instead of 0x{:08x} (byte-swapped or corrupt header)", h.endian,
                        kEndianCheck));
  h.version = get<uint32_t>(b, 8);
  if (h.version != kVersion)
    throw std::runtime_error(fmt::format(
        "{}: pack format version {} is not supported (this build reads version {}); re-run moe convert with this build",
        ck.name, h.version, kVersion));
  h.header_xxh64 = get<uint64_t>(b, 120);
  if (!sum_ok(xxh64(b, 120), h.header_xxh64)) ck.fail("header checksum mismatch (corrupt header)");
  h.file_bytes = get<uint64_t>(b, 16);
  h.manifest_offset = get<uint64_t>(b, 24);
  h.manifest_bytes = get<uint64_t>(b, 32);
  h.manifest_xxh64 = get<uint64_t>(b, 40);
  h.table_offset = get<uint64_t>(b, 48);
  h.table_bytes = get<uint64_t>(b, 56);
  h.table_xxh64 = get<uint64_t>(b, 64);
  h.dense_offset = get<uint64_t>(b, 72);
  h.dense_bytes = get<uint64_t>(b, 80);
  h.dense_xxh64 = get<uint64_t>(b, 88);
  h.n_dense = get<uint32_t>(b, 96);
  h.n_expert_layers = get<uint32_t>(b, 100);
  h.n_records = get<uint32_t>(b, 104);
  h.n_layers = get<uint32_t>(b, 108);
  if (h.file_bytes != size)
    ck.fail(fmt::format("file is {} bytes but its header says {} (truncated or an interrupted copy)", size, h.file_bytes));
  ck.range(h.manifest_offset, h.manifest_bytes, size, "manifest");
  ck.range(h.table_offset, h.table_bytes, size, "table");
  ck.range(h.dense_offset, h.dense_bytes, size, "dense region");
  if (h.dense_offset < kPage || h.dense_offset % kPage != 0)
    ck.fail(fmt::format("dense region offset {} is not a 4096-aligned offset past the header page", h.dense_offset));
  const uint64_t want = uint64_t(h.n_dense) * kDenseEntryBytes + uint64_t(h.n_expert_layers) * kLayerLayoutBytes +
                        uint64_t(h.n_records) * kRecordEntryBytes;
  if (h.table_bytes != want)
    ck.fail(fmt::format("table is {} bytes but its counts need {}", h.table_bytes, want));
  if (h.n_layers == 0 || h.n_layers > 4096) ck.fail(fmt::format("implausible layer count {}", h.n_layers));
  return h;
}

nlohmann::json parse_manifest(const uint8_t* b, const Header& h, const Checker& ck) {
  const uint8_t* p = b + h.manifest_offset;
  if (!sum_ok(xxh64(p, h.manifest_bytes), h.manifest_xxh64)) ck.fail("manifest checksum mismatch (corrupt manifest)");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(p, p + h.manifest_bytes);
  } catch (const nlohmann::json::exception& e) {
    ck.fail(fmt::format("manifest is not valid JSON ({})", e.what()));
  }
  if (!j.is_object()) ck.fail("manifest is not a JSON object");
  if (!j.contains("architecture") || !j["architecture"].is_string()) ck.fail("manifest has no 'architecture' string");
  if (!j.contains("files") || !j["files"].is_object()) ck.fail("manifest has no 'files' object");
  for (const auto& [k, v] : j["files"].items())
    if (!v.is_string()) ck.fail(fmt::format("manifest files['{}'] is not a string", k));
  if (!j["files"].contains("config.json")) ck.fail("manifest has no embedded config.json");
  return j;
}

}  // namespace

Metadata parse_metadata(const uint8_t* b, size_t size, const std::string& name) {
  const Checker ck{name};
  Metadata m;
  m.header = parse_header(b, size, ck);
  const Header& h = m.header;
  m.manifest = parse_manifest(b, h, ck);

  const uint8_t* t = b + h.table_offset;
  if (!sum_ok(xxh64(t, h.table_bytes), h.table_xxh64)) ck.fail("tensor table checksum mismatch (corrupt table)");
  std::set<std::string> names;
  for (uint32_t i = 0; i < h.n_dense; ++i, t += kDenseEntryBytes) {
    DenseEntry d;
    const char* s = reinterpret_cast<const char*>(t);
    const size_t len = strnlen(s, kNameBytes);
    if (len == 0 || len == kNameBytes) ck.fail(fmt::format("dense tensor entry {} has no NUL-terminated name", i));
    d.name.assign(s, len);
    if (!names.insert(d.name).second) ck.fail(fmt::format("dense tensor '{}' appears twice", d.name));
    d.m = get_matrix(t + 64);
    d.bytes = get<uint64_t>(t, 112);
    ck.matrix(d.m, h.dense_bytes, "dense tensor '" + d.name + "'");
    const WeightView v = d.m.shape_view();
    if (d.bytes != uint64_t(v.bytes()))
      ck.fail(fmt::format("dense tensor '{}' says {} bytes, its shape needs {}", d.name, d.bytes, v.bytes()));
    m.dense.push_back(std::move(d));
  }
  uint64_t expected_records = 0;
  std::set<uint32_t> layer_ids;
  for (uint32_t i = 0; i < h.n_expert_layers; ++i, t += kLayerLayoutBytes) {
    LayerLayout l;
    l.layer = get<uint32_t>(t, 0);
    l.n_experts = get<uint32_t>(t, 4);
    l.raw_bytes = get<uint64_t>(t, 8);
    const std::string what = fmt::format("layer {} expert layout", l.layer);
    if (l.layer >= h.n_layers || !layer_ids.insert(l.layer).second)
      ck.fail(fmt::format("{}: layer out of range or repeated", what));
    if (l.n_experts == 0 || l.n_experts > 65536) ck.fail(fmt::format("{}: implausible expert count {}", what, l.n_experts));
    if (l.raw_bytes > (uint64_t(1) << 40)) ck.fail(fmt::format("{}: implausible record size {}", what, l.raw_bytes));
    l.gate = get_matrix(t + 16);
    l.up = get_matrix(t + 16 + kMatrixLayoutBytes);
    l.down = get_matrix(t + 16 + 2 * kMatrixLayoutBytes);
    ck.matrix(l.gate, l.raw_bytes, what + " gate");
    ck.matrix(l.up, l.raw_bytes, what + " up");
    ck.matrix(l.down, l.raw_bytes, what + " down");
    if (l.gate.rows != l.up.rows || l.gate.cols != l.up.cols || l.down.rows != l.gate.cols || l.down.cols != l.gate.rows)
      ck.fail(fmt::format("{}: gate [{}, {}], up [{}, {}], down [{}, {}] do not form a SwiGLU expert", what, l.gate.rows,
                          l.gate.cols, l.up.rows, l.up.cols, l.down.rows, l.down.cols));
    // Readers allocate raw_bytes per record: it may not claim more than the matrices can take.
    const uint64_t most = packed_bytes(l.gate) + packed_bytes(l.up) + packed_bytes(l.down);
    if (l.raw_bytes > most)
      ck.fail(fmt::format("{}: record size {} exceeds the {} bytes its {} [{}, {}] matrices can take", what, l.raw_bytes,
                          most, dtype_name(l.gate.dtype), l.gate.rows, l.gate.cols));
    if (!m.layers.empty() && l.layer <= m.layers.back().layer) ck.fail(fmt::format("{}: layers not in ascending order", what));
    expected_records += l.n_experts;
    m.layers.push_back(l);
  }
  if (expected_records != h.n_records)
    ck.fail(fmt::format("table lists {} expert records but its layers have {} experts", h.n_records, expected_records));
  const uint64_t region_begin = h.dense_offset + h.dense_bytes;
  uint64_t next_free = region_begin;
  size_t li = 0;
  uint32_t want_expert = 0;
  for (uint32_t i = 0; i < h.n_records; ++i, t += kRecordEntryBytes) {
    RecordEntry r;
    r.layer = get<uint32_t>(t, 0);
    r.expert = get<uint32_t>(t, 4);
    r.offset = get<uint64_t>(t, 8);
    r.stored_bytes = get<uint64_t>(t, 16);
    r.raw_bytes = get<uint64_t>(t, 24);
    r.xxh64 = get<uint64_t>(t, 32);
    r.flags = get<uint32_t>(t, 40);
    while (li < m.layers.size() && want_expert == m.layers[li].n_experts) {  // next layer's expert 0
      ++li;
      want_expert = 0;
    }
    const std::string what = fmt::format("record of layer {} expert {}", r.layer, r.expert);
    if (li >= m.layers.size() || r.layer != m.layers[li].layer || r.expert != want_expert)
      ck.fail(fmt::format("{}: records must list every expert of each layer in order", what));
    ++want_expert;
    if (r.raw_bytes != m.layers[li].raw_bytes) ck.fail(fmt::format("{}: decoded size {} differs from its layer's {}", what, r.raw_bytes, m.layers[li].raw_bytes));
    if ((r.flags & ~kFlagZstd) != 0) ck.fail(fmt::format("{}: unknown flags 0x{:x}", what, r.flags));
    if (!(r.flags & kFlagZstd) && r.stored_bytes != r.raw_bytes)
      ck.fail(fmt::format("{}: uncompressed but stored size {} != decoded size {}", what, r.stored_bytes, r.raw_bytes));
    if ((r.flags & kFlagZstd) && (r.stored_bytes > ZSTD_compressBound(r.raw_bytes) ||
                                  r.raw_bytes / kMaxZstdRatio > r.stored_bytes))
      ck.fail(fmt::format("{}: zstd frame of {} bytes cannot decode to {} bytes (corrupt table)", what, r.stored_bytes,
                          r.raw_bytes));
    if (r.stored_bytes == 0 || r.offset % kPage != 0 || r.offset < next_free)
      ck.fail(fmt::format("{}: offset {} is not 4096-aligned after the previous record (overlap or corrupt table)", what, r.offset));
    ck.range(r.offset, r.stored_bytes, size, what);
    next_free = r.offset + align_up(r.stored_bytes, kPage);
    m.records.push_back(r);
  }
  return m;
}

}  // namespace moe::pack
