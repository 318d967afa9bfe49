// Routing traces as JSON lines: the writer formats records by hand (one line per layer-step
// is the hot path of a recording run; nlohmann would print weights at full precision), the
// reader parses each line with nlohmann and checks it against the header. Both share one
// record check so a recorder bug fails at write time with the same words the reader uses.
#include "prefetch/trace.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <stdexcept>

#include <fmt/format.h>

#include <nlohmann/json.hpp>

namespace moe {

namespace {

constexpr const char* kFormat = "moe-routing-trace";
constexpr int kVersion = 1;

// Empty when the header is usable, else what is wrong with it.
std::string header_problem(const TraceHeader& h) {
  if (h.n_layers < 1) return fmt::format("n_layers {} must be at least 1", h.n_layers);
  if (int(h.n_experts.size()) != h.n_layers)
    return fmt::format("n_experts has {} entries, expected one per layer ({})", h.n_experts.size(), h.n_layers);
  if (int(h.expert_bytes.size()) != h.n_layers)
    return fmt::format("expert_bytes has {} entries, expected one per layer ({})", h.expert_bytes.size(), h.n_layers);
  if (h.top_k < 1) return fmt::format("top_k {} must be at least 1", h.top_k);
  bool any_moe = false;
  for (int l = 0; l < h.n_layers; ++l) {
    const int n = h.n_experts[size_t(l)];
    if (n < 0) return fmt::format("n_experts[{}] is {}; expected 0 (dense) or a positive count", l, n);
    if (n > 0 && n < h.top_k) return fmt::format("layer {} has {} experts, fewer than top_k {}", l, n, h.top_k);
    any_moe |= n > 0;
  }
  if (!any_moe) return "no layer has experts (every n_experts entry is 0)";
  if (h.lookahead < 0) return fmt::format("lookahead {} must not be negative", h.lookahead);
  return {};
}

std::string id_problem(const TraceHeader& h, int layer, int32_t id) {
  const int n = h.n_experts[size_t(layer)];
  if (id < 0 || id >= n) return fmt::format("expert id {} out of range for layer {} ({} experts)", id, layer, n);
  return {};
}

// Empty when `r` fits `h`, else what is wrong (the reader prefixes PATH:LINE).
std::string record_problem(const TraceHeader& h, const TraceRecord& r) {
  if (r.layer < 0 || r.layer >= h.n_layers)
    return fmt::format("layer {} out of range (the header has {} layers)", r.layer, h.n_layers);
  if (h.n_experts[size_t(r.layer)] == 0)
    return fmt::format("layer {} is dense in the header (n_experts 0); records are for MoE layers only", r.layer);
  const size_t n = r.seq.size(), k = size_t(h.top_k);
  if (n == 0) return "record has no tokens (seq is empty)";
  if (r.pos.size() != n || r.experts.size() != n * k || r.weights.size() != n * k)
    return fmt::format("token counts disagree: seq {}, pos {}, experts {}/{} ids, weights {}/{} values (top_k {})", n,
                       r.pos.size(), r.experts.size(), n * k, r.weights.size(), n * k, k);
  for (size_t t = 0; t < n; ++t)
    for (size_t i = 0; i < k; ++i) {
      const int32_t id = r.experts[t * k + i];
      if (auto p = id_problem(h, r.layer, id); !p.empty()) return fmt::format("token {}: {}", t, p);
      for (size_t j = 0; j < i; ++j)
        if (r.experts[t * k + j] == id) return fmt::format("token {}: expert {} chosen twice", t, id);
      if (!std::isfinite(r.weights[t * k + i])) return fmt::format("token {}: gate weight is not finite", t);
    }
  if (int(r.predicted.size()) > h.lookahead)
    return fmt::format("pred has {} lists but the header's lookahead is {}", r.predicted.size(), h.lookahead);
  for (size_t d = 0; d < r.predicted.size(); ++d)
    for (int32_t id : r.predicted[d])
      if (auto p = id_problem(h, r.layer, id); !p.empty()) return fmt::format("pred (lookahead {}): {}", d + 1, p);
  return {};
}

void append_ints(std::string& s, const int32_t* v, size_t n) {
  s += '[';
  for (size_t i = 0; i < n; ++i) {
    if (i) s += ',';
    fmt::format_to(std::back_inserter(s), "{}", v[i]);
  }
  s += ']';
}

}  // namespace

// ---- writer ----

// The header is checked before the file is created: a bad one leaves nothing behind.
static TraceHeader checked(const std::filesystem::path& path, TraceHeader h) {
  if (h.expert_bytes.empty()) h.expert_bytes.assign(size_t(std::max(h.n_layers, 0)), 0);
  if (auto p = header_problem(h); !p.empty())
    throw std::invalid_argument(fmt::format("routing trace {}: bad header: {}", path.string(), p));
  return h;
}

// The model's files count as inputs too: a trace written over the model would destroy it.
static OutputFile create_trace(const std::filesystem::path& path, const TraceHeader& h,
                               std::span<const std::filesystem::path> inputs) {
  std::vector<std::filesystem::path> all(inputs.begin(), inputs.end());
  if (!h.model.empty())
    for (auto& f : input_files(h.model)) all.push_back(std::move(f));
  try {
    return OutputFile(path, all);
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(fmt::format("cannot create routing trace {}", e.what()));
  }
}

TraceWriter::TraceWriter(const std::filesystem::path& path, const TraceHeader& h,
                         std::span<const std::filesystem::path> inputs)
    : path_(path), header_(checked(path, h)), out_(create_trace(path_, header_, inputs)) {
  nlohmann::ordered_json j = {{"format", kFormat},
                              {"version", kVersion},
                              {"model", header_.model},
                              {"n_layers", header_.n_layers},
                              {"n_experts", header_.n_experts},
                              {"top_k", header_.top_k},
                              {"expert_bytes", header_.expert_bytes},
                              {"lookahead", header_.lookahead},
                              {"predictor", header_.predictor}};
  buf_ = j.dump() + '\n';
}

void TraceWriter::write(const TraceRecord& r) {
  if (auto p = record_problem(header_, r); !p.empty())
    throw std::invalid_argument(
        fmt::format("routing trace {}: record step {} layer {}: {}", path_.string(), r.step, r.layer, p));
  const size_t n = r.seq.size(), k = size_t(header_.top_k);
  std::string& s = buf_;
  fmt::format_to(std::back_inserter(s), "{{\"step\":{},\"layer\":{},\"seq\":", r.step, r.layer);
  append_ints(s, r.seq.data(), n);
  s += ",\"pos\":";
  append_ints(s, r.pos.data(), n);
  s += ",\"experts\":[";
  for (size_t t = 0; t < n; ++t) {
    if (t) s += ',';
    append_ints(s, r.experts.data() + t * k, k);
  }
  s += "],\"weights\":[";
  for (size_t t = 0; t < n; ++t) {
    s += t ? ",[" : "[";
    for (size_t i = 0; i < k; ++i)
      fmt::format_to(std::back_inserter(s), "{}{:.5g}", i ? "," : "", r.weights[t * k + i]);
    s += ']';
  }
  s += ']';
  if (!r.predicted.empty()) {
    s += ",\"pred\":[";
    for (size_t d = 0; d < r.predicted.size(); ++d) {
      if (d) s += ',';
      append_ints(s, r.predicted[d].data(), r.predicted[d].size());
    }
    s += ']';
  }
  s += "}\n";
  if (s.size() >= (size_t(1) << 20)) drain();
}

void TraceWriter::drain() {
  try {
    out_.write(buf_.data(), buf_.size());
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(fmt::format("cannot write routing trace {}; check free disk space", e.what()));
  }
  buf_.clear();
}

void TraceWriter::flush() {
  drain();
  out_.commit();  // the first flush publishes the file; later ones only write
}

TraceWriter::~TraceWriter() {
  try {
    flush();
  } catch (const std::exception&) {  // documented: call flush() to see errors
  }
}

// ---- reader ----

namespace {

using nlohmann::json;

struct BadLine : std::runtime_error {
  using std::runtime_error::runtime_error;
};

const json& field(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end()) throw BadLine(fmt::format("missing key \"{}\"", key));
  return *it;
}

int64_t int_of(const json& v, const std::string& what) {
  if (!v.is_number_integer()) throw BadLine(fmt::format("\"{}\" must be an integer, got {}", what, v.dump()));
  return v.get<int64_t>();
}

int32_t int32_of(const json& v, const std::string& what) {
  const int64_t x = int_of(v, what);
  if (x < INT32_MIN || x > INT32_MAX) throw BadLine(fmt::format("\"{}\" value {} is out of range", what, x));
  return int32_t(x);
}

const json& array_of(const json& v, const std::string& what) {
  if (!v.is_array()) throw BadLine(fmt::format("\"{}\" must be an array", what));
  return v;
}

std::vector<int32_t> ints_of(const json& v, const std::string& what) {
  std::vector<int32_t> out;
  out.reserve(array_of(v, what).size());
  for (const json& x : v) out.push_back(int32_of(x, what));
  return out;
}

TraceHeader parse_header(const json& j) {
  if (!j.is_object() || !j.contains("format"))
    throw BadLine(
        fmt::format("missing header: line 1 must be {{\"format\":\"{}\",\"version\":{},...}}", kFormat, kVersion));
  const json& f = j["format"];
  if (!f.is_string() || f.get<std::string>() != kFormat)
    throw BadLine(fmt::format("unknown format {}; expected \"{}\"", f.dump(), kFormat));
  const int64_t version = int_of(field(j, "version"), "version");
  if (version != kVersion)
    throw BadLine(fmt::format("trace version {} is not supported; this build reads version {}", version, kVersion));
  TraceHeader h;
  if (auto it = j.find("model"); it != j.end() && it->is_string()) h.model = it->get<std::string>();
  if (auto it = j.find("predictor"); it != j.end() && it->is_string()) h.predictor = it->get<std::string>();
  h.n_layers = int32_of(field(j, "n_layers"), "n_layers");
  for (int32_t n : ints_of(field(j, "n_experts"), "n_experts")) h.n_experts.push_back(n);
  h.top_k = int32_of(field(j, "top_k"), "top_k");
  if (auto it = j.find("expert_bytes"); it != j.end()) {
    for (const json& b : array_of(*it, "expert_bytes")) {
      if (!b.is_number_unsigned())  // nlohmann parses every non-negative integer as unsigned
        throw BadLine(fmt::format("\"expert_bytes\" entries must be non-negative integers, got {}", b.dump()));
      h.expert_bytes.push_back(b.get<uint64_t>());
    }
  } else {
    h.expert_bytes.assign(size_t(std::max(h.n_layers, 0)), 0);  // optional: sizes unknown
  }
  if (auto it = j.find("lookahead"); it != j.end()) h.lookahead = int32_of(*it, "lookahead");
  if (auto p = header_problem(h); !p.empty()) throw BadLine("bad header: " + p);
  return h;
}

TraceRecord parse_record(const json& j, const TraceHeader& h) {
  if (!j.is_object()) throw BadLine("expected a JSON object per line");
  TraceRecord r;
  r.step = int_of(field(j, "step"), "step");
  r.layer = int32_of(field(j, "layer"), "layer");
  r.seq = ints_of(field(j, "seq"), "seq");
  r.pos = ints_of(field(j, "pos"), "pos");
  const size_t k = size_t(h.top_k);
  const json& experts = array_of(field(j, "experts"), "experts");
  const json& weights = array_of(field(j, "weights"), "weights");
  if (experts.size() != r.seq.size() || weights.size() != r.seq.size() || r.pos.size() != r.seq.size())
    throw BadLine(fmt::format("token counts disagree: seq {}, pos {}, experts {} rows, weights {} rows", r.seq.size(),
                              r.pos.size(), experts.size(), weights.size()));
  r.experts.reserve(experts.size() * k);
  r.weights.reserve(weights.size() * k);
  for (size_t t = 0; t < experts.size(); ++t) {
    const json& row = array_of(experts[t], "experts");
    if (row.size() != k)
      throw BadLine(fmt::format("token {}: experts row has {} ids, expected top_k {}", t, row.size(), k));
    for (const json& x : row) r.experts.push_back(int32_of(x, "experts"));
    const json& wrow = array_of(weights[t], "weights");
    if (wrow.size() != k)
      throw BadLine(fmt::format("token {}: weights row has {} values, expected top_k {}", t, wrow.size(), k));
    for (const json& x : wrow) {
      if (!x.is_number()) throw BadLine(fmt::format("token {}: gate weight must be a number, got {}", t, x.dump()));
      const double w = x.get<double>();  // narrowed only when it fits: a too-large double to float is UB
      if (!(std::fabs(w) <= double(std::numeric_limits<float>::max())))
        throw BadLine(fmt::format("token {}: gate weight {} is out of range", t, x.dump()));
      r.weights.push_back(float(w));
    }
  }
  if (auto it = j.find("pred"); it != j.end() && !it->is_null())
    for (const json& d : array_of(*it, "pred")) r.predicted.push_back(ints_of(d, "pred"));
  if (auto p = record_problem(h, r); !p.empty()) throw BadLine(p);
  return r;
}

}  // namespace

Trace read_trace(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw std::runtime_error(fmt::format("cannot open routing trace {}: {}", path.string(), std::strerror(errno)));
  Trace t;
  bool have_header = false;
  std::string line;
  int64_t line_no = 0;
  try {
    while (std::getline(in, line)) {
      ++line_no;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.find_first_not_of(" \t") == std::string::npos) continue;  // blank lines (a trailing one) are fine
      json j;
      try {
        j = json::parse(line);
      } catch (const json::parse_error& e) {
        std::string what = e.what();  // drop nlohmann's "[json.exception.parse_error.101] " tag
        if (auto p = what.find("] "); p != std::string::npos) what.erase(0, p + 2);
        throw BadLine("bad JSON: " + what);
      }
      if (!have_header) {
        t.header = parse_header(j);
        have_header = true;
        continue;
      }
      TraceRecord r = parse_record(j, t.header);
      if (!t.records.empty()) {
        const TraceRecord& prev = t.records.back();
        if (r.step < prev.step)
          throw BadLine(fmt::format("step {} after step {}: steps must not decrease", r.step, prev.step));
        if (r.step == prev.step && r.layer <= prev.layer)
          throw BadLine(fmt::format("layer {} after layer {} in step {}: layers must ascend within a step", r.layer,
                                    prev.layer, r.step));
      }
      t.records.push_back(std::move(r));
    }
  } catch (const BadLine& e) {
    throw std::runtime_error(fmt::format("{}:{}: {}", path.string(), line_no, e.what()));
  }
  if (in.bad()) throw std::runtime_error(fmt::format("{}: read error: {}", path.string(), std::strerror(errno)));
  if (!have_header)
    throw std::runtime_error(
        fmt::format("{}:1: missing header: the file is empty; expected a moe-routing-trace", path.string()));
  return t;
}

}  // namespace moe
