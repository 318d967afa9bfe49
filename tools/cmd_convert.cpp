// moe convert: an HF checkpoint -> a .moepack, streamed tensor by tensor with bounded memory.
#include <zstd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <map>
#include <thread>

#include <fmt/format.h>

#include "kernels/cpu/qmatmul.h"
#include "runtime/pack_model.h"
#include "storage/pack_quantize.h"
#include "storage/pack_writer.h"
#include "tools/commands.h"
#include "tools/ordered_pipeline.h"
#include "tools/progress.h"

namespace moe::cli {
namespace {

struct Opts {
  std::string hf_dir, out, experts = "int4", dense = "bf16", compress = "none";
  int group = 0, threads = 0, zstd_level = 3;
  bool clip = false, fp8_block = false;
  double disk_gbps = 1.2;
};

std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw std::runtime_error(fmt::format("{}: cannot open", p.string()));
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

QuantOptions expert_target(const Opts& o) {
  if (o.experts == "int4") return {DType::Q4, o.group ? o.group : 128, o.clip};
  if (o.experts == "fp8") return {DType::F8E4M3, o.fp8_block ? 128 : 0, false};
  if (o.experts == "mxfp4") return {DType::MXFP4, 32, false};
  return {DType::BF16, 0, false};
}

// Norms and biases stay exact (F32, or BF16 when the checkpoint is BF16); routers and the
// shared-expert gate too, since routing is a discrete choice and they are tiny; embeddings
// are BF16 (a row gather, never bandwidth-bound); the other matrices take --dense.
QuantOptions dense_target(const DenseTensor& d, const Opts& o) {
  const DType exact = d.view.dtype == DType::BF16 ? DType::BF16 : DType::F32;
  switch (d.cls) {
    case TensorClass::Norm:
    case TensorClass::Bias:
    case TensorClass::Router:
    case TensorClass::SharedExpertGate: return {exact, 0, false};
    case TensorClass::Embedding: return {DType::BF16, 0, false};
    default: break;
  }
  if (o.dense == "int8") return {DType::I8, 0, false};
  // A block-scaled FP8 source (DeepSeek-V3) stays as shipped rather than re-quantized per row.
  if (o.dense == "fp8") return {DType::F8E4M3, d.view.dtype == DType::F8E4M3 && d.view.group == 128 ? 128 : 0, false};
  return {DType::BF16, 0, false};
}

// Refuses, before any byte is written, a matrix the quantizer or the matmul kernels cannot take:
// the quantizer's own shape check on one row, and K (cols) a multiple of 32, which every
// quantized CPU kernel needs (kernels/cpu/qmatmul.h) and `moe run` would otherwise reject.
void check_fits(const QuantOptions& t, int64_t cols, const std::string& what, const char* instead) {
  if (is_quantized(t.dtype) && cols % cpu::kQuantizedKMultiple != 0)
    throw std::invalid_argument(fmt::format("{}: K ({}) is not a multiple of {}, which {} needs; use {}", what, cols,
                                            cpu::kQuantizedKMultiple, dtype_name(t.dtype), instead));
  std::vector<float> row(size_t(cols), 0.0f);
  try {
    (void)quantize(row.data(), 1, cols, t);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(fmt::format("{}: {}", what, e.what()));
  }
}

struct ExpertItem {
  pack::EncodedRecord rec;
  double nmse[3] = {0, 0, 0};
  uint64_t src_bytes = 0;
  double decode_seconds = 0;  // zstd decode of this record (sampled)
  uint64_t decoded_bytes = 0;
};

struct ZstdStats {
  uint64_t raw = 0, stored = 0, compressed_records = 0, records = 0, sampled_bytes = 0;
  double compress_s = 0, decode_s = 0;
};

void print_zstd_verdict(const ZstdStats& z, double disk_gbps) {
  const double saved = z.raw ? 1.0 - double(z.stored) / double(z.raw) : 0;
  const double dec_rate = z.decode_s > 0 ? double(z.sampled_bytes) / z.decode_s : 0;  // decoded bytes/s, one core
  const double comp_rate = z.compress_s > 0 ? double(z.raw) / z.compress_s : 0;
  const double per = z.records ? double(z.raw) / double(z.records) : 0;  // bytes of one expert
  const double disk = disk_gbps * 1e9;
  const double t_raw = per / disk * 1e3;
  const double t_zstd = per * (1 - saved) / disk * 1e3;
  const double t_dec = dec_rate > 0 ? per / dec_rate * 1e3 : 0;
  const bool pays = z.compressed_records > 0 && t_zstd + t_dec < t_raw;
  std::fprintf(stderr, "%s\n",
               fmt::format("zstd: experts {} -> {} (saved {:.1f}%, {} of {} records compressed); compress {}/s, decode {}/s "
                           "per core\nzstd: one expert at {:.1f} GB/s disk: {:.3f} ms raw vs {:.3f} ms read + {:.3f} ms "
                           "decode -> {}",
                           human_bytes(double(z.raw)), human_bytes(double(z.stored)), saved * 100, z.compressed_records,
                           z.records, human_bytes(comp_rate), human_bytes(dec_rate), disk_gbps, t_raw, t_zstd, t_dec,
                           pays ? "pays (fewer milliseconds per miss)"
                                : "does not pay: read the raw record (decode costs more than the bytes it saves)")
                   .c_str());
}

// What the pack will hold, planned before any byte is written: the dense tensors, one record
// layout per MoE layer, every (layer, expert) record in write order, the source bytes to read.
struct ConvertPlan {
  std::vector<DenseTensor> dense;
  std::vector<pack::LayerLayout> layers;
  std::vector<std::pair<int, int>> items;
  uint64_t total = 0;
};

ConvertPlan plan_outputs(const Model& m, const QuantOptions& et) {
  const ModelConfig& c = m.cfg;
  ConvertPlan p;
  p.dense = dense_tensors(m);
  for (const auto& d : p.dense) p.total += uint64_t(d.view.bytes());
  for (int l = 0; l < c.n_layers; ++l) {
    if (c.ffn[size_t(l)] != FfnKind::Moe) continue;
    p.layers.push_back(pack::plan_expert_layer(uint32_t(l), uint32_t(c.router.n_experts), c.moe_intermediate, c.hidden, et));
    for (int e = 0; e < c.router.n_experts; ++e) p.items.push_back({l, e});
    p.total += uint64_t(HeldExpert(*m.experts, l, 0).weights().bytes()) * uint64_t(c.router.n_experts);
  }
  return p;
}

// The HF files the pack embeds (the tokenizer is required: a pack runs without its source dir).
nlohmann::json embedded_files(const std::filesystem::path& dir) {
  nlohmann::json files = nlohmann::json::object();
  for (const char* f : {"config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json"})
    if (std::filesystem::exists(dir / f)) files[f] = read_text(dir / f);
  if (!files.contains("tokenizer.json"))
    throw std::runtime_error(fmt::format("{}: missing; the pack embeds the tokenizer, so the directory needs it",
                                         (dir / "tokenizer.json").string()));
  return files;
}

using ErrorTable = std::map<std::string, pack::ErrorStats>;  // tensor class -> NMSE

void write_dense(pack::PackWriter& w, const std::vector<DenseTensor>& dense, const Opts& o, ErrorTable& stats,
                 Progress& prog) {
  for (const auto& d : dense) {
    const QuantOptions t = dense_target(d, o);
    const pack::MatrixLayout local = pack::place_alone(t, d.view.rows, d.view.cols);
    std::vector<uint8_t> buf(local.end(), 0);
    stats[std::string(tensor_class_name(d.cls))].add(pack::convert_matrix(d.view, t, local, buf.data()));
    w.add_dense(d.name, local, buf.data());
    prog.add(uint64_t(d.view.bytes()));
  }
}

// One expert record, converted and encoded on a worker thread.
ExpertItem convert_expert(const Model& m, const pack::LayerLayout& L, int l, int e, const QuantOptions& et,
                          const pack::RecordEncoding& enc, bool sample_decode) {
  ExpertItem it;
  std::vector<uint8_t> raw(L.raw_bytes, 0);
  {
    const HeldExpert held(*m.experts, l, e);
    const ExpertWeights& src = held.weights();
    it.nmse[0] = pack::convert_matrix(src.gate, et, L.gate, raw.data());
    it.nmse[1] = pack::convert_matrix(src.up, et, L.up, raw.data());
    it.nmse[2] = pack::convert_matrix(src.down, et, L.down, raw.data());
    it.src_bytes = uint64_t(src.bytes());
  }
  it.rec = pack::encode_record(std::move(raw), enc);
  if (it.rec.compressed && sample_decode) {
    std::vector<uint8_t> back(it.rec.raw_bytes);
    const auto t0 = std::chrono::steady_clock::now();
    ZSTD_decompress(back.data(), back.size(), it.rec.stored.data(), it.rec.stored.size());
    it.decode_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    it.decoded_bytes = back.size();
  }
  return it;
}

// Expert records, converted in parallel and written in plan order; adds their NMSE to stats.
ZstdStats write_experts(pack::PackWriter& w, const Model& m, const ConvertPlan& p, const QuantOptions& et,
                        const pack::RecordEncoding& enc, int threads, ErrorTable& stats, Progress& prog) {
  for (const auto& l : p.layers) w.add_expert_layer(l);
  std::map<int, const pack::LayerLayout*> layout_of;
  for (const auto& l : p.layers) layout_of[int(l.layer)] = &l;
  ZstdStats z;
  pack::ErrorStats es[3];
  run_ordered<ExpertItem>(
      p.items.size(), threads, size_t(threads) * 2,
      [&](size_t i) {
        const auto [l, e] = p.items[i];
        // Sample the decode cost on every 4th record.
        return convert_expert(m, *layout_of.at(l), l, e, et, enc, i % 4 == 0);
      },
      [&](size_t i, ExpertItem& it) {
        w.add_record(uint32_t(p.items[i].first), uint32_t(p.items[i].second), it.rec);
        for (int k = 0; k < 3; ++k) es[k].add(it.nmse[k]);
        z.raw += it.rec.raw_bytes;
        z.stored += it.rec.stored.size();
        z.records += 1;
        z.compressed_records += it.rec.compressed ? 1 : 0;
        z.compress_s += it.rec.compress_seconds;
        z.decode_s += it.decode_seconds;
        z.sampled_bytes += it.decoded_bytes;
        prog.add(it.src_bytes);
      });
  if (!p.items.empty()) {
    stats["experts.gate"] = es[0];
    stats["experts.up"] = es[1];
    stats["experts.down"] = es[2];
  }
  return z;
}

nlohmann::json convert_manifest(const ModelConfig& c, const Opts& o, const QuantOptions& et, nlohmann::json files,
                                const ErrorTable& stats, const ZstdStats& z) {
  const bool zstd = o.compress == "zstd";
  nlohmann::json nm = nlohmann::json::object();
  for (const auto& [k, s] : stats) nm[k] = {{"tensors", s.tensors}, {"mean", s.mean()}, {"max", s.worst}};
  return {{"format", "moepack"},
          {"format_version", pack::kVersion},
          {"architecture", c.architecture},
          {"files", std::move(files)},
          {"quantization",
           {{"experts", {{"dtype", dtype_name(et.dtype)}, {"group", et.group}, {"clip_search", et.clip_search}}},
            {"dense", {{"dtype", dtype_name(dense_target({"", TensorClass::Attention, {}}, o).dtype)}}},
            {"embedding", "BF16"},
            {"norms_biases_routers", "exact: F32, or BF16 when the checkpoint is BF16"}}},
          {"compression", {{"experts", zstd ? "zstd" : "none"}, {"zstd_level", zstd ? o.zstd_level : 0},
                           {"compressed_records", z.compressed_records}, {"raw_bytes", z.raw}, {"stored_bytes", z.stored}}},
          {"nmse", nm},
          {"source", {{"kind", "hf"}, {"dir", std::filesystem::absolute(o.hf_dir).string()}}},
          {"writer", "moe convert"}};
}

void report(const Opts& o, const ErrorTable& stats, const ZstdStats& z, const ConvertPlan& p, uint64_t bytes_written) {
  std::fprintf(stderr, "%-20s %8s %12s %12s\n", "tensor class", "tensors", "mean NMSE", "max NMSE");
  for (const auto& [k, s] : stats)
    std::fprintf(stderr, "%-20s %8lld %12.3g %12.3g\n", k.c_str(), (long long)s.tensors, s.mean(), s.worst);
  if (o.compress == "zstd") print_zstd_verdict(z, o.disk_gbps);
  std::printf("%s\n", fmt::format("wrote {}: {} ({} dense tensors, {} expert records; experts {}, dense {})", o.out,
                                  human_bytes(double(bytes_written)), p.dense.size(), p.items.size(), o.experts, o.dense)
                          .c_str());
}

int run_convert(const Opts& o) {
  const std::filesystem::path dir = o.hf_dir;
  if (o.group && o.experts != "int4")
    throw std::invalid_argument(fmt::format("--group-size applies to --experts int4 only (got --experts {})", o.experts));
  if (o.zstd_level < 1 || o.zstd_level > ZSTD_maxCLevel())
    throw std::invalid_argument(
        fmt::format("--zstd-level {} is out of range: zstd levels are 1 to {}", o.zstd_level, ZSTD_maxCLevel()));
  const std::vector<std::filesystem::path> inputs = input_files(dir);
  check_output_target(o.out, inputs);  // before the work: a bad OUT fails at once
  QuantOptions et = expert_target(o);
  const Model m = load_hf_model(dir);
  const ModelConfig& c = m.cfg;
  // --experts fp8 on a block-scaled FP8 checkpoint (DeepSeek-V3) keeps its blocks as shipped.
  if (et.dtype == DType::F8E4M3 && c.n_moe_layers() > 0) {
    const HeldExpert first(*m.experts, first_moe_layer(m), 0);
    if (first.weights().gate.dtype == DType::F8E4M3 && first.weights().gate.group == 128) et.group = 128;
  }
  if (c.n_moe_layers() > 0) {
    const char* instead = "--experts bf16";
    check_fits(et, c.hidden, fmt::format("--experts {}: expert gate/up [{}, {}]", o.experts, c.moe_intermediate, c.hidden), instead);
    check_fits(et, c.moe_intermediate, fmt::format("--experts {}: expert down [{}, {}]", o.experts, c.hidden, c.moe_intermediate),
               instead);
  }
  nlohmann::json files = embedded_files(dir);
  const ConvertPlan plan = plan_outputs(m, et);
  // MLA's kv_b is widened to fp32 once at load (runtime/engine_mla.cpp), never multiplied by the
  // quantized kernels, so their K rule does not bind it.
  const auto widened = [](const DenseTensor& d) { return d.name.size() > 10 && d.name.ends_with(".attn.kv_b"); };
  for (const auto& d : plan.dense)
    if (is_quantized(dense_target(d, o).dtype) && !widened(d))
      check_fits(dense_target(d, o), d.view.cols,
                 fmt::format("--dense {}: tensor '{}' [{}, {}]", o.dense, d.name, d.view.rows, d.view.cols), "--dense bf16");

  pack::PackWriter w(o.out, uint32_t(c.n_layers), inputs);
  ErrorTable stats;
  Progress prog("convert", plan.total);
  write_dense(w, plan.dense, o, stats, prog);
  const pack::RecordEncoding enc{o.compress == "zstd", o.zstd_level};
  const int threads = o.threads > 0 ? o.threads : int(std::max(1u, std::thread::hardware_concurrency()));
  const ZstdStats z = write_experts(w, m, plan, et, enc, threads, stats, prog);
  prog.finish();
  w.finish(convert_manifest(c, o, et, std::move(files), stats, z));
  report(o, stats, z, plan, w.bytes_written());
  return 0;
}

}  // namespace

Runner add_convert(CLI::App& app) {
  auto o = std::make_shared<Opts>();
  CLI::App* c = app.add_subcommand("convert", "Convert a Hugging Face checkpoint into a quantized expert pack (.moepack)");
  c->add_option("HF_DIR", o->hf_dir, "Hugging Face model directory")->required();
  c->add_option("OUT", o->out, "Output .moepack file (written to a temporary beside it, renamed when complete)")->required();
  c->add_option("--experts", o->experts,
                "Routed expert format: int4 (Q4 group-wise), fp8 (e4m3, per-row scales; an FP8-block checkpoint keeps its "
                "blocks), mxfp4 (gpt-oss's own format, copied as shipped), bf16")
      ->check(CLI::IsMember({"int4", "fp8", "mxfp4", "bf16"}))->capture_default_str();
  c->add_option("--group-size", o->group, "INT4 group size: 32, 64 or 128 (default 128)");
  c->add_option("--dense", o->dense, "Attention, shared-expert, dense-FFN and LM-head format: bf16, int8, fp8")
      ->check(CLI::IsMember({"bf16", "int8", "fp8"}))->capture_default_str();
  c->add_option("--compress", o->compress, "Per-expert-record compression: none or zstd")
      ->check(CLI::IsMember({"none", "zstd"}))->capture_default_str();
  c->add_option("--zstd-level", o->zstd_level, fmt::format("zstd level, 1 to {}", ZSTD_maxCLevel()))->capture_default_str();
  c->add_flag("--clip-search", o->clip, "INT4: search a clipping ratio per group (slower, lower error)");
  c->add_flag("--fp8-block", o->fp8_block, "FP8: 128x128 block scales instead of per-row scales");
  c->add_option("--threads,-t", o->threads, "Worker threads (0 = all cores)");
  c->add_option("--disk-gbps", o->disk_gbps, "Disk read speed assumed by the zstd verdict")->capture_default_str();
  return [o] { return run_convert(*o); };
}

}  // namespace moe::cli
