// Internal to the GPU engine: its device scratch, sized for the largest batch seen and kept
// (a cudaMalloc synchronises the device, so the hot path never allocates once warm), and the
// small host -> device uploads of per-step index arrays.
#pragma once
#include <algorithm>
#include <vector>

#include "kernels/cuda/attention.h"
#include "kernels/cuda/device_buffer.h"
#include "kernels/cuda/deltanet.h"
#include "runtime/gpu/gpu_engine.h"
#include "runtime/gpu/pinned_buffer.h"

namespace moe::gpu {

// Decode steps of at most this many tokens run their experts per (token, expert) pair
// (gpu_moe.cpp); larger steps group by expert, reading each expert's weights once.
inline constexpr int64_t kPairMaxTokens = 8;

inline cuda::AttentionShape attention_shape(const ModelConfig& c) {
  return {c.n_heads, c.n_kv_heads, c.head_dim, int64_t(c.n_kv_heads) * c.head_dim};
}

// Grows b to at least n elements (contents not kept). Call only while the stream is idle.
template <class T>
void ensure(cuda::DeviceBuffer<T>& b, int64_t n) {
  if (int64_t(b.size()) < n) b = cuda::DeviceBuffer<T>(size_t(n));
}

// b[0, v.size()) = v on `stream` (b grown first when needed: only at a step's start, when the
// stream is idle). v may be freed on return: cudaMemcpyAsync stages pageable memory first.
template <class T>
void upload(cuda::DeviceBuffer<T>& b, const std::vector<T>& v, cudaStream_t stream) {
  ensure(b, int64_t(v.size()));
  if (!v.empty())
    MOE_CUDA_CHECK(cudaMemcpyAsync(b.get(), v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice, stream));
}

struct GpuEngine::Scratch {
  cuda::DeviceBuffer<float> x, h, f;         // [T, H]: residual, normed, FFN output
  cuda::DeviceBuffer<float> q, k, v, att, o;  // [T, qd], [T, kvd] x2, [T, qd], [T, H]
  cuda::DeviceBuffer<float> g, u;             // [T * k, I] (or the dense / shared FFN's [T, I'])
  cuda::DeviceBuffer<float> xg, y, sh;        // [T * k, H] gathered rows, expert outputs; [T, H] shared
  cuda::DeviceBuffer<float> router, sgate;    // [T, E], [T]
  // Per MoE layer, one upload of [idx | yrow | wts], each [T * k]: the token of each gathered row,
  // the gathered row of each (token, slot), the gate weights (float bits). Staged in host_route.
  cuda::DeviceBuffer<int32_t> route;
  PinnedBuffer host_route, host_probs;        // [3 * T * k] int32, [T, E] router logits read back
  // Decode steps routed on the device: ids and gate weights [layers, T * k] (kept for the step's
  // routing observers, read back once in host_obs [2, layers, T * k]); the identity row map
  // [T * k] (pair i's output is row i of y); read-backs of h and x [T, H] and uploads of the rows
  // of y the CPU computed [T * k, H].
  cuda::DeviceBuffer<int32_t> dids, iota;
  cuda::DeviceBuffer<float> dwts;
  PinnedBuffer host_h, host_x, host_y, host_obs;
  cuda::DeviceBuffer<int32_t> pos, ids, rows, lengths;
  cuda::DeviceBuffer<int32_t> prompt_rows;  // the step's rows of prompt chunks (tensor_core_prompts)
  cuda::DeviceBuffer<float*> kp, vp;          // [layers * seqs] decode K/V tables
  cuda::DeviceBuffer<float> work;             // attention_decode workspace
  cuda::DeviceBuffer<float> xr, logits;       // [R, H], [R, V]
  // MLA: [T, q_lora] low-rank queries, [T, nh, R] queries in the latent space, then the weighted
  // latents, [T, R] latents being normed; a prefill's cache of each token [T].
  cuda::DeviceBuffer<float> qa, ql, lat;
  cuda::DeviceBuffer<const float*> mla_cache;
  // Gated attention: q_proj's [T, 2 * qd] and the gates [T, qd]. Gated DeltaNet: projections
  // [T, C], [T, vd], [T, nv] x2; the conv's output [T, C]; the rule's output [T, vd]; a conv
  // window being moved [K - 1, C].
  cuda::DeviceBuffer<float> qg, gate, lqkv, lz, lb, la, lmixed, lcore, lwin;
  cuda::DeviceBuffer<float> lwork;  // the chunked delta rule's scratch (GpuEngineOptions::deltanet_chunk)

  // Sizes everything for T tokens and R logit rows (`chunk`: GpuEngineOptions::deltanet_chunk).
  void fit(const Model& m, int64_t T, int64_t R, int chunk = 0) {
    const ModelConfig& c = m.cfg;
    const int64_t H = c.hidden, qd = int64_t(c.n_heads) * c.head_dim, kvd = int64_t(c.n_kv_heads) * c.head_dim;
    const int64_t K = std::max(1, c.router.top_k);
    const int64_t inter = std::max({K * c.moe_intermediate, c.dense_intermediate, c.shared_intermediate, int64_t(1)});
    for (auto* b : {&x, &h, &f, &o, &sh}) ensure(*b, T * H);
    for (auto* b : {&q, &att}) ensure(*b, T * qd);
    for (auto* b : {&k, &v}) ensure(*b, T * kvd);
    for (auto* b : {&g, &u}) ensure(*b, T * inter);
    for (auto* b : {&xg, &y}) ensure(*b, T * K * H);
    ensure(router, T * std::max(1, c.router.n_experts));
    ensure(sgate, T);
    ensure(route, 3 * T * K);
    ensure(dids, c.n_layers * T * K);
    ensure(dwts, c.n_layers * T * K);
    if (int64_t(iota.size()) < T * K) {
      std::vector<int32_t> v(size_t(T * K));
      for (size_t i = 0; i < v.size(); ++i) v[i] = int32_t(i);
      iota = cuda::DeviceBuffer<int32_t>(v.size());
      iota.upload(v.data(), v.size());
    }
    const int64_t Tp = std::min(T, kPairMaxTokens);  // only decode steps read back h
    host_h.ensure(size_t(Tp * H) * sizeof(float));
    host_x.ensure(size_t(Tp * H) * sizeof(float));
    host_y.ensure(size_t(Tp * K * H) * sizeof(float));
    host_obs.ensure(size_t(2 * c.n_layers * Tp * K) * sizeof(int32_t));
    host_route.ensure(size_t(3 * T * K) * sizeof(int32_t));
    host_probs.ensure(size_t(T * std::max(1, c.router.n_experts)) * sizeof(float));
    for (auto* b : {&pos, &ids, &rows, &lengths}) ensure(*b, T);
    ensure(xr, R * H);
    ensure(logits, R * c.vocab_size);
    if (c.attn_output_gate) {
      ensure(qg, 2 * T * qd);
      ensure(gate, T * qd);
    }
    if (c.n_linear_layers() > 0) {
      const LinearAttnConfig& l = c.linear;
      const int64_t C = l.conv_dim(), vd = int64_t(l.n_v_heads) * l.v_dim;
      for (auto* b : {&lqkv, &lmixed}) ensure(*b, T * C);
      for (auto* b : {&lz, &lcore}) ensure(*b, T * vd);
      for (auto* b : {&lb, &la}) ensure(*b, T * l.n_v_heads);
      ensure(lwin, std::max<int64_t>(1, int64_t(l.conv_kernel - 1) * C));
      if (chunk > 0) ensure(lwork, cuda::deltanet_chunk_work({l.n_k_heads, l.n_v_heads, l.k_dim, l.v_dim}, chunk));
    }
    if (c.is_mla()) {
      const int64_t lat_heads = int64_t(c.n_heads) * c.mla.kv_lora_rank;
      ensure(qa, T * std::max(1, c.mla.q_lora_rank));
      ensure(ql, T * lat_heads);  // the attention writes its weighted latents over the queries
      ensure(lat, T * c.mla.kv_lora_rank);
      ensure(k, T * c.kv_floats_per_layer());  // k holds the new [latent | rotary key] rows
      ensure(att, T * int64_t(c.n_heads) * c.mla.v_head_dim);  // W_UV's output, o_proj's input
      ensure(mla_cache, T);
    }
  }
};

}  // namespace moe::gpu
