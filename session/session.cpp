#include "session/session.h"

#include <fmt/format.h>

#include <algorithm>
#include <numeric>
#include <stdexcept>
#include <vector>

#include "prefetch/prefetch_controller.h"
#include "prefetch/vram_target.h"
#include "runtime/pack_model.h"
#include "session/engine_factory.h"
#include "storage/io/make_reader.h"
#include "storage/pack_file.h"
#include "storage/tier/budget.h"
#include "storage/tier/tiered_experts.h"

namespace moe {

struct Session::Parts {
  std::shared_ptr<const PackFile> pack;  // null for an HF directory
  TieredExperts* ram = nullptr;          // the pack's RAM tier, owned by model.experts
  BuiltEngine built;                     // built.engine moved to Session::engine_
  std::unique_ptr<VramPrefetchTarget> vram_target;
  std::unique_ptr<PrefetchController> prefetch;
  mutable std::unique_ptr<Tokenizer> tokenizer;
  double link_bytes_per_s = 0, link_latency_s = 0;
};

namespace {

// A pack: opened once; its experts behind a RAM tier whose reader reopens the same file.
std::unique_ptr<Model> open_pack(std::shared_ptr<const PackFile> pack, const StorageOptions& s, TieredExperts*& ram) {
  PackLoadOptions lo;
  lo.make_experts = [&](std::shared_ptr<const PackFile> p, const ModelConfig& cfg) -> std::unique_ptr<ExpertSource> {
    TierOptions t;
    t.budget_bytes = parse_budget(s.ram_budget, total_expert_bytes(*p));
    t.top_k = cfg.router.top_k;
    t.policy = make_policy(s.policy);
    t.prefetch_share = s.prefetch_share;
    t.split_per_layer = s.split_per_layer;
    auto reader = make_reader(s.io, p->source());
    auto tier = std::make_unique<TieredExperts>(p, std::move(reader), std::move(t));
    ram = tier.get();
    return tier;
  };
  return std::make_unique<Model>(load_pack_model(std::move(pack), lo));
}

PrefetchModelInfo model_info(const Model& m, TieredExperts* ram, const std::string& path) {
  PrefetchModelInfo info;
  info.model = path;
  info.rms_eps = float(m.cfg.rms_eps);
  info.top_k = m.cfg.router.top_k;
  info.n_experts = experts_per_layer(m);
  for (int l = 0; l < m.cfg.n_layers; ++l) {
    const LayerWeights& L = m.layers[size_t(l)];
    const bool moe = info.n_experts[size_t(l)] > 0;
    info.routers.push_back(moe ? LayerRouter{L.ffn_norm, L.router} : LayerRouter{});
    uint64_t b = 0;
    if (moe && ram) {
      b = ram->read_bytes(l, 0);
    } else if (moe) {
      b = uint64_t(HeldExpert(*m.experts, l, 0).weights().bytes());
    }
    info.expert_bytes.push_back(b);
  }
  return info;
}

}  // namespace

Session::Session(const std::filesystem::path& model, SessionOptions o)
    : path_(model), opts_(std::move(o)), p_(std::make_unique<Parts>()) {
  std::error_code ec;
  if (std::filesystem::is_regular_file(model, ec)) {
    p_->pack = std::make_shared<const PackFile>(model);
    model_ = open_pack(p_->pack, opts_.storage, p_->ram);
  } else {
    model_ = std::make_unique<Model>(load_model(model));  // a directory (or the message for a missing path)
  }
  if (!opts_.start_engine) return;
  EngineVariant v;
  v.verbose = opts_.verbose;
  restart_engine(std::move(v));
}

InferenceEngine& Session::engine() {
  if (!engine_) throw std::logic_error("Session::engine: no engine started (SessionOptions::start_engine was false)");
  return *engine_;
}

const InferenceEngine& Session::engine() const { return const_cast<Session*>(this)->engine(); }

Session::~Session() {
  // The controller's scheduler loads into the engine's slots and the engine reads the model's
  // tier: stop them in that order.
  p_->prefetch.reset();
  p_->vram_target.reset();
  engine_.reset();
}

namespace {

Tokenizer pack_tokenizer(const PackFile& pack) {
  const std::string tj = pack.embedded_file("tokenizer.json");
  if (tj.empty())
    throw std::runtime_error(fmt::format(
        "{}: the pack embeds no tokenizer.json; re-run moe convert from a directory that has one", pack.path().string()));
  return Tokenizer::from_json(tj, pack.embedded_file("tokenizer_config.json"));
}

Tokenizer dir_tokenizer(const std::filesystem::path& dir) {
  const auto tj = dir / "tokenizer.json";
  if (!std::filesystem::exists(tj))
    throw std::runtime_error(fmt::format("{}: missing; the model directory needs its tokenizer.json", tj.string()));
  const auto cfg = dir / "tokenizer_config.json";
  return Tokenizer::load(tj, std::filesystem::exists(cfg) ? cfg : std::filesystem::path{});
}

}  // namespace

Tokenizer open_tokenizer(const std::filesystem::path& model) {
  std::error_code ec;
  return std::filesystem::is_regular_file(model, ec) ? pack_tokenizer(PackFile(model)) : dir_tokenizer(model);
}

std::vector<int32_t> Session::stop_ids() const {
  std::vector<int32_t> ids = model().cfg.eos_ids;
  if (auto e = tokenizer().eos_id()) ids.push_back(*e);
  return ids;
}

const Tokenizer& Session::tokenizer() const {
  if (!p_->tokenizer)
    p_->tokenizer = std::make_unique<Tokenizer>(p_->pack ? pack_tokenizer(*p_->pack) : dir_tokenizer(path_));
  return *p_->tokenizer;
}

void Session::restart_engine(EngineVariant v) {
  p_->prefetch.reset();
  p_->vram_target.reset();
  engine_.reset();
  p_->built = {};
  const std::string budget = v.vram_budget.value_or(opts_.device.vram_budget);
  p_->built = build_engine(*model_, opts_.device, budget, opts_.storage.policy, p_->ram, v.verbose);
  engine_ = std::move(p_->built.engine);
  // With a partial VRAM budget prefetches go to the expert slots (the RAM -> GPU hop).
  if (p_->built.partial_vram) p_->vram_target = std::make_unique<VramPrefetchTarget>(*p_->built.partial_vram);
  if (v.before_prefetch) v.before_prefetch(*engine_);

  const PrefetchSettings& f = opts_.prefetch;
  std::string mode = v.prefetch_mode.value_or(f.mode);
  const std::string trace = v.trace.value_or(f.trace);
  // auto: gate whenever experts must move (a partial RAM or VRAM budget) or a trace is asked for.
  const bool ram_partial = p_->ram && p_->ram->budget_bytes() < total_expert_bytes(p_->ram->catalog());
  if (mode == "auto") mode = p_->vram_target || !f.trace.empty() || ram_partial ? "gate" : "off";
  std::unique_ptr<Predictor> predictor = v.make_predictor ? v.make_predictor() : nullptr;
  if (mode == "oracle" && !predictor)
    throw std::invalid_argument("--prefetch oracle needs a predictor that knows the routing (moe bench --routing)");
  mode_ = mode;
  PrefetchOptions po;
  po.predictor = mode == "oracle" ? "off" : mode;
  po.lookahead = f.lookahead;
  po.prefetch_k = f.prefetch_k;
  po.max_inflight_bytes = f.inflight.empty() ? 0 : parse_size(f.inflight, "--prefetch-inflight");
  po.trace = trace;
  po.min_recall = f.min_recall;
  po.stream_layer = f.stream_layer;
  if (po.predictor == "off" && po.trace.empty() && !predictor) return;
  p_->prefetch = std::make_unique<PrefetchController>(model_info(*model_, p_->ram, path_.string()), p_->ram, po,
                                                      std::move(predictor), p_->vram_target.get());
  engine_->add_routing_hook(p_->prefetch->hook());
}

bool Session::has_ram_tier() const { return p_->ram != nullptr; }

void Session::clear_ram() {
  if (p_->ram) p_->ram->clear();
}

uint64_t Session::ram_expert_bytes() const { return p_->ram ? total_expert_bytes(p_->ram->catalog()) : 0; }

uint64_t Session::warm_ram(const std::function<void(uint64_t)>& progress) {
  TieredExperts* t = p_->ram;
  if (!t) return 0;
  const ExpertCatalog& cat = t->catalog();
  // top_k experts per reader batch: a budget always holds that many pinned at once, so a budget
  // below every expert evicts (and the caller reports it) instead of running out of room.
  const size_t chunk = size_t(std::max(1, model_->cfg.router.top_k));
  for (int l = 0; l < cat.n_layers(); ++l) {
    for (int e0 = 0; e0 < cat.n_experts(l); e0 += int(chunk)) {
      std::vector<int> ids(std::min(chunk, size_t(cat.n_experts(l) - e0)));
      std::iota(ids.begin(), ids.end(), e0);
      const HeldExperts held(*t, l, ids);
      for (int e : ids)
        if (progress) progress(expert_cache_bytes(cat.record(l, e)));
    }
  }
  return t->stats().evictions;
}

Session::StepBytes Session::step_bytes() const {
  const Model& m = *model_;
  StepBytes s;
  s.dense = double(m.lm_head.bytes());
  int moe_layers = 0;
  for (int l = 0; l < m.cfg.n_layers; ++l) {
    const LayerWeights& L = m.layers[size_t(l)];
    // Every matrix a token reads: standard or MLA attention (absorbed: all of kv_b), or a DeltaNet
    // layer's projections; the views a layer lacks are empty (0 bytes).
    const AttentionWeights& A = L.attn;
    s.dense += double(A.q.bytes() + A.k.bytes() + A.v.bytes() + A.o.bytes() + A.q_a.bytes() + A.q_b.bytes() +
                      A.kv_a.bytes() + A.kv_b.bytes());
    const LinearAttnWeights& D = L.linear;
    s.dense += double(D.qkv.bytes() + D.z.bytes() + D.b.bytes() + D.a.bytes() + D.conv.bytes() + D.out.bytes());
    if (L.kind == FfnKind::Dense) {
      s.dense += double(L.dense.gate.bytes() + L.dense.up.bytes() + L.dense.down.bytes());
    } else {
      s.dense += double(L.router.bytes() + L.shared.gate.bytes() + L.shared.up.bytes() + L.shared.down.bytes());
      s.experts_per_token += double(m.cfg.router.top_k) * double(HeldExpert(*m.experts, l, 0).weights().bytes());
      ++moe_layers;
    }
  }
  if (moe_layers > 0) s.expert = s.experts_per_token / (double(m.cfg.router.top_k) * moe_layers);
  return s;
}

double Session::decode_bytes_per_token() const {
  const StepBytes s = step_bytes();
  return s.dense + s.experts_per_token;
}

uint64_t Session::dense_bytes() const {
  uint64_t b = 0;
  for (const DenseTensor& t : dense_tensors(*model_)) b += uint64_t(t.view.bytes());
  return b;
}

void Session::measure_link() {
  if (!p_->built.measure_link || p_->link_bytes_per_s > 0) return;
  std::tie(p_->link_bytes_per_s, p_->link_latency_s) = p_->built.measure_link();
}

void Session::reset_stats() {
  if (p_->prefetch) {
    p_->prefetch->drain();
    p_->prefetch->reset_stats();
  }
  if (p_->ram) p_->ram->reset_stats();
  if (p_->built.reset_stats) p_->built.reset_stats();
}

void Session::flush_trace() {
  if (p_->prefetch) p_->prefetch->flush_trace();
}

SessionStats Session::stats() const {
  SessionStats s;
  s.backend = engine_ ? engine_->backend() : opts_.device.device;
  if (p_->ram) s.ram = p_->ram->stats();
  PrefetchReport& r = s.prefetch;
  r.mode = mode_;
  if (const PrefetchController* c = p_->prefetch.get()) {
    r.controller = true;
    r.prefetching = c->prefetching();
    r.lookahead = c->options().lookahead;
    for (const RecallCounter& x : c->recall())
      r.recall.push_back({x.distance, x.at_k(), x.at_2k(), x.predicted ? double(x.gated) / double(x.predicted) : 0.0,
                          x.samples});
    const SchedulerStats st = c->scheduler_stats();
    r.issued = st.issued, r.cancelled = st.cancelled, r.skipped_present = st.skipped, r.batches = st.batches;
    r.max_inflight_bytes = st.max_inflight_bytes, r.deferred_for_demand = st.deferred_for_demand;
    r.hook_s = c->hook_seconds();
    r.router_entropy = c->router_entropy();
    r.expert_tokens = c->expert_tokens();
  }
  if (p_->built.report) {
    s.gpu = p_->built.report();
    s.gpu->link_bytes_per_s = p_->link_bytes_per_s;
    s.gpu->link_latency_s = p_->link_latency_s;
  }
  return s;
}

}  // namespace moe
