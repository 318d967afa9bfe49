// A gated DeltaNet layer (Qwen3-Next, Qwen3.5-MoE) for all tokens of a batch: projections, the
// causal depthwise conv over each sequence's last inputs, the gated delta rule (token by token,
// prompts included; kernels/cpu/deltanet.h), the gated RMSNorm, the output
// projection. Each sequence's conv window and delta-rule state live in its KvCache; a snapshot
// of them is kept whenever a sequence reaches a multiple of EngineOptions::state_snapshot_every.
#include <algorithm>
#include <cmath>

#include "kernels/cpu/deltanet.h"
#include "kernels/cpu/ops.h"
#include "runtime/engine.h"

namespace moe {
namespace {

float softplus(float x) { return x > 20.0f ? x : std::log1p(std::exp(x)); }  // torch's threshold
float silu(float x) { return x / (1.0f + std::exp(-x)); }

}  // namespace

void Engine::linear_attention(int layer, const std::vector<Tok>& toks, std::vector<float>& x) {
  const ModelConfig& c = model_.cfg;
  const LinearAttnConfig& l = c.linear;
  const LayerWeights& L = model_.layers[size_t(layer)];
  const LinearAttnWeights& W = L.linear;
  const int64_t T = int64_t(toks.size()), H = c.hidden, nv = l.n_v_heads, nk = l.n_k_heads, dk = l.k_dim, dv = l.v_dim;
  const int64_t C = l.conv_dim(), K = l.conv_kernel, kd = nk * dk, vd = nv * dv;
  const float eps = float(c.rms_eps);

  Scratch::Frame tmp(scratch_);  // every buffer below is written before it is read
  const std::span<float> h = tmp.take(size_t(T * H));
  norm_rows(x.data(), L.attn_norm, T, H, h.data());
  const std::span<float> qkv = tmp.take(size_t(T * C)), z = tmp.take(size_t(T * vd)), b = tmp.take(size_t(T * nv)),
                         a = tmp.take(size_t(T * nv));
  cpu::matmul(pool_, h.data(), T, W.qkv, qkv.data());
  cpu::matmul(pool_, h.data(), T, W.z, z.data());
  cpu::matmul(pool_, h.data(), T, W.b, b.data());
  cpu::matmul(pool_, h.data(), T, W.a, a.data());
  std::vector<float> conv(static_cast<size_t>(C * K)), dt(static_cast<size_t>(nv)), alog(static_cast<size_t>(nv)),
      nw(static_cast<size_t>(dv));
  cpu::to_f32(W.conv, 0, C * K, conv.data());
  std::vector<float> convT(static_cast<size_t>(K * C));  // [K, C]
  for (int64_t ch = 0; ch < C; ++ch)
    for (int64_t j = 0; j < K; ++j) convT[size_t(j * C + ch)] = conv[size_t(ch * K + j)];
  cpu::to_f32(W.dt_bias, 0, nv, dt.data());
  cpu::to_f32(W.a_log, 0, nv, alog.data());
  cpu::to_f32(W.norm, 0, dv, nw.data());
  // beta = sigmoid(b); g = -exp(A_log) * softplus(a + dt_bias), per token and value head.
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < nv; ++i) {
      float& bi = b[size_t(t * nv + i)];
      bi = 1.0f / (1.0f + std::exp(-bi));
      float& ai = a[size_t(t * nv + i)];
      ai = -std::exp(alog[size_t(i)]) * softplus(ai + dt[size_t(i)]);
    }

  const std::span<float> core = tmp.take(size_t(T * vd));  // each run's tokens written by the recurrence
  const cpu::DeltaNetShape shape{int(nk), int(nv), int(dk), int(dv)};
  // A batch holds each sequence's new tokens as one run, in order.
  for (int64_t r0 = 0; r0 < T;) {
    int64_t r1 = r0 + 1;
    while (r1 < T && toks[size_t(r1)].seq == toks[size_t(r0)].seq) ++r1;
    KvCache& kv = *toks[size_t(r0)].kv;
    float* window = kv.state(layer);  // [K - 1, C], oldest first
    float* S = window + (K - 1) * C;
    // Split where a snapshot is due, so the conv window and the delta-rule state saved there are
    // both those after that position.
    const int64_t every = opts_.state_snapshot_every;
    std::vector<float> mixed, q, k, v, next_window;
    for (int64_t s0 = r0; s0 < r1;) {
      const int64_t pos0 = toks[size_t(s0)].pos;
      const int64_t s1 = every > 0 ? std::min(r1, s0 + (every - pos0 % every)) : r1;
      const int64_t n = s1 - s0;
      // Conv: out_t[c] = silu(sum_j w[c, j] * in_{t - K + 1 + j}[c]), the window supplying the
      // rows before the run's first input. By rows of channels (the weights transposed), so the
      // loops vectorise, and the window is moved once per run, not once per token.
      const auto in_row = [&](int64_t r) -> const float* {  // r < K - 1: window; then the inputs
        return r < K - 1 ? window + r * C : &qkv[size_t((s0 + r - (K - 1)) * C)];
      };
      mixed.resize(size_t(n * C));
      for (int64_t t = 0; t < n; ++t) {
        float* o = &mixed[size_t(t * C)];
        const float* in = in_row(t + K - 1);
        const float* wl = &convT[size_t((K - 1) * C)];
        for (int64_t ch = 0; ch < C; ++ch) o[ch] = wl[ch] * in[ch];
        for (int64_t j = 0; j < K - 1; ++j) {
          const float* src = in_row(t + j);
          const float* wj = &convT[size_t(j * C)];
          for (int64_t ch = 0; ch < C; ++ch) o[ch] += wj[ch] * src[ch];
        }
        for (int64_t ch = 0; ch < C; ++ch) o[ch] = silu(o[ch]);
      }
      if (K > 1) {  // the window becomes the last K - 1 rows (some may be the old window's)
        next_window.resize(size_t((K - 1) * C));
        for (int64_t j = 0; j < K - 1; ++j) std::copy_n(in_row(n + j), C, &next_window[size_t(j * C)]);
        std::copy(next_window.begin(), next_window.end(), window);
      }
      q.resize(size_t(n * kd));
      k.resize(size_t(n * kd));
      v.resize(size_t(n * vd));
      for (int64_t t = 0; t < n; ++t) {
        const float* m = &mixed[size_t(t * C)];
        std::copy_n(m, kd, &q[size_t(t * kd)]);
        std::copy_n(m + kd, kd, &k[size_t(t * kd)]);
        std::copy_n(m + 2 * kd, vd, &v[size_t(t * vd)]);
      }
      float* out = &core[size_t(s0 * vd)];
      // The recurrent form for prompts too: on a CPU it is ~4x faster than the chunked one
      // (kernels/cpu/deltanet.h says why); the two agree within 1e-5 (test_deltanet).
      cpu::gated_delta_recurrent(pool_, q.data(), k.data(), v.data(), &a[size_t(s0 * nv)], &b[size_t(s0 * nv)], n, shape, S, out);
      const int64_t pos_end = toks[size_t(s1 - 1)].pos + 1;
      if (every > 0 && pos_end % every == 0) kv.snapshot(layer, pos_end);
      s0 = s1;
    }
    r0 = r1;
  }
  // Gated RMSNorm per (token, value head): norm(o) * w * silu(z).
  for (int64_t i = 0; i < T * nv; ++i) {
    float* o = &core[size_t(i * dv)];
    const float* g = &z[size_t(i * dv)];
    float ss = 0.0f;
    for (int64_t d = 0; d < dv; ++d) ss += o[d] * o[d];
    const float inv = 1.0f / std::sqrt(ss / float(dv) + eps);
    for (int64_t d = 0; d < dv; ++d) o[d] = o[d] * inv * nw[size_t(d)] * silu(g[d]);
  }
  const std::span<float> o = tmp.take(size_t(T * H));
  cpu::matmul(pool_, core.data(), T, W.out, o.data());
  for (size_t i = 0; i < x.size(); ++i) x[i] += o[i];
}

}  // namespace moe
