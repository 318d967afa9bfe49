#include "prefetch/gate_predictor.h"

#include <stdexcept>

#include "kernels/cpu/ops.h"

namespace moe {

namespace {

std::vector<int> experts_per_layer(const std::vector<LayerRouter>& r) {
  std::vector<int> n;
  for (const LayerRouter& l : r) n.push_back(l.router.empty() ? 0 : int(l.router.rows));
  return n;
}

}  // namespace

GatePredictor::GatePredictor(std::vector<LayerRouter> routers, float rms_eps)
    : routers_(std::move(routers)), layers_(experts_per_layer(routers_)), eps_(rms_eps) {
  compact_.resize(routers_.size());
  norms_.resize(routers_.size());
  std::vector<float> w;
  for (size_t l = 0; l < routers_.size(); ++l) {
    LayerRouter& r = routers_[l];
    if (r.router.empty()) continue;
    norms_[l].resize(size_t(r.norm.cols * r.norm.rows));
    cpu::to_f32(r.norm, 0, int64_t(norms_[l].size()), norms_[l].data());
    r.norm = {DType::F32, norms_[l].data(), 1, int64_t(norms_[l].size())};
    // Already compact, or a width the int8 kernels do not take (K % 32): keep as is.
    if (is_quantized(r.router.dtype) || r.router.cols % 32 != 0) continue;
    w = dequantize(r.router);
    QuantOptions q;
    q.dtype = DType::I8;
    compact_[l] = quantize(w.data(), r.router.rows, r.router.cols, q);
    r.router = compact_[l].view();
  }
}

void GatePredictor::predict(const RoutingEvent& ev, int lookahead, std::vector<LayerPrediction>& out) {
  if (!ev.residual) throw std::invalid_argument("gate predictor: the routing event carries no residual stream");
  for (int d = 1; d <= lookahead; ++d) {
    const int t = layers_.next(ev.layer, d);
    if (t < 0) break;
    const LayerRouter& r = routers_[size_t(t)];
    const int64_t H = r.router.cols, E = r.router.rows, T = ev.n_tokens;
    normed_.resize(size_t(T * H));
    probs_.resize(size_t(T * E));  // [T, E]
    for (int64_t i = 0; i < T; ++i) cpu::rmsnorm(ev.residual + i * H, r.norm, eps_, H, &normed_[size_t(i * H)]);
    cpu::matmul(pool_, normed_.data(), T, r.router, probs_.data());
    // Score = the expert's mean softmax probability over the step's tokens: for one token the
    // router's own ranking; for a batch, the experts most of its tokens lean towards.
    scores_.assign(size_t(E), 0.0f);
    for (int64_t i = 0; i < T; ++i) {
      float* p = &probs_[size_t(i * E)];
      cpu::softmax(p, E);
      for (int64_t e = 0; e < E; ++e) scores_[size_t(e)] += p[e] / float(T);
    }
    out.push_back(rank_scores(t, d, scores_));
  }
}

}  // namespace moe
