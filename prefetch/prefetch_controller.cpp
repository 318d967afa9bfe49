#include "prefetch/prefetch_controller.h"

#include <algorithm>
#include <chrono>
#include <stdexcept>

#include <fmt/format.h>

#include "prefetch/history_predictor.h"

namespace moe {

class PrefetchController::TierTarget final : public PrefetchTarget {
 public:
  explicit TierTarget(TieredExperts& t) : t_(t) {}
  bool present(ExpertKey k) const override { return t_.present(k.layer, k.expert); }
  uint64_t bytes(ExpertKey k) const override { return t_.read_bytes(k.layer, k.expert); }
  size_t load(std::span<const ExpertKey> keys) override { return t_.prefetch_many(keys); }

 private:
  TieredExperts& t_;
};

namespace {

std::unique_ptr<Predictor> make_predictor(const PrefetchModelInfo& m, const PrefetchOptions& o) {
  const int E = *std::max_element(m.n_experts.begin(), m.n_experts.end());
  auto hist = [&] { return std::make_unique<HistoryPredictor>(m.n_experts, std::max(1, o.lookahead)); };
  auto gate = [&] { return std::make_unique<GatePredictor>(m.routers, m.rms_eps); };
  if (o.predictor == "gate") return gate();
  if (o.predictor == "history") return hist();
  if (o.predictor == "blend") return make_blend_predictor(gate(), hist(), o.blend_alpha, E);
  if (o.predictor == "off") return nullptr;
  throw std::invalid_argument(fmt::format("unknown predictor '{}'; choose off, gate, history or blend", o.predictor));
}

}  // namespace

PrefetchController::PrefetchController(PrefetchModelInfo info, TieredExperts* tier, PrefetchOptions o,
                                       std::unique_ptr<Predictor> predictor, PrefetchTarget* target)
    : info_(std::move(info)), tier_(tier), opts_(std::move(o)), layers_(info_.n_experts) {
  if (opts_.lookahead < 1 || opts_.lookahead > 8)
    throw std::invalid_argument(fmt::format("--lookahead {} must be between 1 and 8", opts_.lookahead));
  if (opts_.prefetch_k < 0) throw std::invalid_argument("--prefetch-k must be >= 0");
  if (info_.routers.size() != info_.n_experts.size())
    throw std::invalid_argument("prefetch: routers and expert counts disagree on the number of layers");
  predictor_ = predictor ? std::move(predictor) : make_predictor(info_, opts_);
  if (predictor_) opts_.predictor = predictor_->name();
  // Into the RAM tier, half the top-k per token: a guess of an absent expert is right less often
  // than the predictor's recall says (absent experts are the cold ones), and the wrong ones
  // read the disk and push out experts that are needed. Measured on synthetic Qwen3-30B-A3B,
  // Mixtral and OLMoE packs at 10-40% budgets: faster decode and 17-50% fewer disk bytes
  // (docs/results/2026-12-06-nextuse.md). The VRAM target keeps top-k (not measured there).
  if (!opts_.prefetch_k) opts_.prefetch_k = target ? info_.top_k : std::max(1, info_.top_k / 2);
  const int max_e = *std::max_element(info_.n_experts.begin(), info_.n_experts.end());
  min_recall_ = opts_.min_recall >= 0 ? opts_.min_recall
                                      : std::max(0.2, 2.0 * double(info_.top_k) / double(std::max(1, max_e)));
  pending_.assign(info_.n_experts.size(), std::vector<std::vector<int32_t>>(size_t(opts_.lookahead)));
  counts_.resize(info_.n_experts.size());
  for (size_t l = 0; l < counts_.size(); ++l) counts_[l].assign(size_t(info_.n_experts[l]), 0);
  for (int d = 1; d <= opts_.lookahead; ++d) recall_.push_back({d, 0, 0, 0, 1.0, 0, 0});
  if ((tier_ || target) && predictor_) {
    SchedulerOptions so;
    uint64_t largest = 0;
    for (uint64_t b : info_.expert_bytes) largest = std::max(largest, b);
    so.max_inflight_bytes = opts_.max_inflight_bytes ? opts_.max_inflight_bytes : uint64_t(std::max(1, info_.top_k)) * largest;
    if (!target) target_ = std::make_unique<TierTarget>(*tier_);
    sched_ = std::make_unique<PrefetchScheduler>(target ? *target : *target_, so);
    // Demand reads of the RAM tier hold prefetches back (the disk is busy with what is needed),
    // when prefetches go to the RAM tier. Not with an external target (the VRAM tier): its demand
    // copies read the RAM tier while holding the VRAM tier's lock, and the scheduler asks the
    // VRAM tier (present) while holding its own: the listener would close a lock cycle.
    if (tier_ && !target) tier_->set_demand_listener([s = sched_.get()](bool active) { s->demand(active); });
  }
  if (!opts_.trace.empty()) {
    TraceHeader h;
    h.model = info_.model;
    h.n_layers = int(info_.n_experts.size());
    h.n_experts = info_.n_experts;
    h.top_k = info_.top_k;
    h.expert_bytes = info_.expert_bytes;
    h.lookahead = predictor_ ? opts_.lookahead : 0;
    h.predictor = predictor_ ? predictor_->name() : "none";
    trace_ = std::make_unique<TraceWriter>(opts_.trace, h);
  }
}

PrefetchController::~PrefetchController() {
  if (tier_ && sched_ && target_) tier_->set_demand_listener(nullptr);  // target_: the RAM tier's own
  sched_.reset();
}

RoutingHook PrefetchController::hook() {
  return [this](const RoutingEvent& ev) { on_event(ev); };
}

void PrefetchController::on_event(const RoutingEvent& ev) {
  const auto t0 = std::chrono::steady_clock::now();
  handle(ev);
  hook_ns_ += uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count());
}

void PrefetchController::handle(const RoutingEvent& ev) {
  const int L = ev.layer, K = ev.top_k, T = ev.n_tokens;
  if (L <= last_layer_) ++step_;  // layers run in order within a forward pass
  last_layer_ = L;

  // What this step of L actually needs (each expert once).
  used_.assign(ev.experts, ev.experts + T * K);
  std::sort(used_.begin(), used_.end());
  used_.erase(std::unique(used_.begin(), used_.end()), used_.end());
  if (sched_) {
    sched_->cancel_layer(L);
    if (tier_) tier_->set_wanted(L, used_);
    if (streamed_layer_ >= 0 && streamed_layer_ != L) sched_->cancel_layer(streamed_layer_);  // that layer ran
    streamed_layer_ = -1;
    if (opts_.stream_layer && target_) stream_missing(L);
  }
  std::vector<int64_t>& cnt = counts_[size_t(L)];
  for (int i = 0; i < T * K; ++i) ++cnt[size_t(ev.experts[i])];

  // Score the guesses earlier layers made for this layer-step.
  auto& pend = pending_[size_t(L)];
  for (size_t d = 0; d < pend.size(); ++d) {
    const std::vector<int32_t>& g = pend[d];
    if (g.empty()) continue;
    auto hits = [&](size_t k) {
      size_t h = 0;
      for (size_t i = 0; i < std::min(k, g.size()); ++i) h += std::binary_search(used_.begin(), used_.end(), g[i]);
      return double(h) / double(used_.size());
    };
    const size_t k = std::max<size_t>(size_t(K), used_.size());
    const double r = hits(k);
    recall_[d].sum_at_k += r;
    recall_[d].recent += (r - recall_[d].recent) / 32.0;
    recall_[d].sum_at_2k += hits(2 * k);
    ++recall_[d].samples;
  }
  if (trace_) {
    TraceRecord r;
    r.step = step_;
    r.layer = L;
    r.seq.assign(ev.seq_ids, ev.seq_ids + T);
    r.pos.assign(ev.positions, ev.positions + T);
    r.experts.assign(ev.experts, ev.experts + T * K);
    r.weights.assign(ev.weights, ev.weights + T * K);
    r.predicted = pend;
    for (auto& g : r.predicted)  // a ranked prefix is enough to score recall and replay prefetch
      if (g.size() > size_t(2 * K)) g.resize(size_t(2 * K));
    trace_->write(r);
  }
  for (auto& g : pend) g.clear();

  if (!predictor_) return;
  preds_.clear();
  predictor_->predict(ev, opts_.lookahead, preds_);
  predictor_->observe(ev);
  reqs_.clear();
  const size_t want = size_t(opts_.prefetch_k) * size_t(T);
  for (LayerPrediction& p : preds_) {
    pending_[size_t(p.layer)][size_t(p.distance - 1)] = p.experts;
    RecallCounter& rc = recall_[size_t(p.distance - 1)];
    ++rc.predicted;
    if (rc.recent < min_recall_) {  // keep guessing (and scoring), but do not read
      ++rc.gated;
      continue;
    }
    for (size_t i = 0; i < std::min(want, p.experts.size()); ++i)
      reqs_.push_back({{p.layer, p.experts[i]}, p.distance, p.scores[i]});
  }
  if (sched_) sched_->submit(reqs_);
}

// The engine runs resident experts first, then the others in ascending id: queue those in
// that order (distance 0 comes before every guess), so the disk reads what is needed soonest.
void PrefetchController::stream_missing(int L) {
  reqs_.clear();
  for (int32_t e : used_)
    if (!tier_->present(L, e)) reqs_.push_back({{L, e}, 0, -float(reqs_.size())});
  if (reqs_.empty()) return;
  streamed_layer_ = L;
  sched_->submit(reqs_);
}

std::vector<double> PrefetchController::router_entropy() const { return usage_entropy(counts_); }

SchedulerStats PrefetchController::scheduler_stats() const { return sched_ ? sched_->stats() : SchedulerStats{}; }

void PrefetchController::drain() {
  if (sched_) sched_->drain();
}

void PrefetchController::reset_stats() {
  for (auto& r : recall_) r = {r.distance, 0, 0, 0, r.recent, 0, 0};
  for (auto& row : counts_) std::fill(row.begin(), row.end(), 0);
  hook_ns_ = 0;
  if (sched_) sched_->reset_stats();
}

void PrefetchController::flush_trace() {
  if (trace_) trace_->flush();
}

}  // namespace moe
