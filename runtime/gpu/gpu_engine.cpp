#include "runtime/gpu/gpu_engine.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <stdexcept>
#include <utility>

#include "kernels/cuda/attention.h"
#include "kernels/cuda/deltanet.h"
#include "kernels/cuda/mla.h"
#include "kernels/cuda/moe_ops.h"
#include "kernels/cuda/ops.h"
#include "runtime/gpu/gpu_scratch.h"
#include "runtime/router_spec.h"

namespace moe::gpu {

std::string unsupported_reason(const Model& model) {
  const ModelConfig& c = model.cfg;
  if (const std::string what = c.gpu_unsupported(); !what.empty())
    return fmt::format("the GPU engine has no {} yet ({}); run on the CPU (--device cpu)", what, c.architecture);
  if (c.is_mla()) {
    if (c.mla.kv_lora_rank > cuda::kMlaMaxLatent)
      return fmt::format("the GPU MLA kernels take kv_lora_rank up to {}, not {}; run on the CPU", cuda::kMlaMaxLatent,
                         c.mla.kv_lora_rank);
    if (c.mla.qk_nope_head_dim % 2 != 0 || c.mla.kv_lora_rank % 2 != 0)  // RoPE's rows start after them
      return fmt::format("the GPU MLA kernels take an even qk_nope_head_dim and kv_lora_rank, not {} and {}; run on "
                         "the CPU",
                         c.mla.qk_nope_head_dim, c.mla.kv_lora_rank);
  } else if (c.head_dim != 16 && c.head_dim != 32 && c.head_dim != 64 && c.head_dim != 128 && c.head_dim != 256) {
    return fmt::format("the GPU attention kernels take head_dim 16, 32, 64, 128 or 256, not {}; run on the CPU",
                       c.head_dim);
  }
  if (c.n_heads % c.n_kv_heads != 0 || c.n_heads / c.n_kv_heads > cuda::kAttentionMaxGroup)
    return fmt::format("the GPU attention kernels take at most {} query heads per kv head", cuda::kAttentionMaxGroup);
  if (c.n_linear_layers() > 0 && (c.linear.k_dim > 1024 || c.linear.v_dim > 1024))  // one thread per column
    return fmt::format("the GPU DeltaNet kernels take key and value heads of up to 1024, not {} and {}; run on the CPU",
                       c.linear.k_dim, c.linear.v_dim);
  if (c.router.n_experts > cuda::kRouterMaxExperts)
    return fmt::format("{} experts per layer: the GPU engine takes at most {}", c.router.n_experts,
                       cuda::kRouterMaxExperts);
  return "";
}

GpuEngine::GpuEngine(const Model& model, GpuEngineOptions opts) : model_(model), opts_(std::move(opts)) {
  const ModelConfig& c = model_.cfg;
  if (const std::string why = unsupported_reason(model_); !why.empty()) throw std::invalid_argument(why);
  if (opts_.max_seq_len <= 0) opts_.max_seq_len = c.max_position;
  if (opts_.deltanet_chunk < 0 || opts_.deltanet_chunk > cuda::kDeltaMaxChunk)
    throw std::invalid_argument(fmt::format("GpuEngineOptions::deltanet_chunk {} must be in 0..{}", opts_.deltanet_chunk,
                                            cuda::kDeltaMaxChunk));
  if (opts_.tensor_core_prompts && (opts_.wide16 || !opts_.grouped_experts))
    throw std::invalid_argument(
        "tensor-core prompts (--prompt-tc) need grouped experts and bf16 products: not with --exact or --no-grouped");
  if (opts_.ram_tier && opts_.ram_tier != model_.experts.get())
    throw std::invalid_argument("GpuEngineOptions::ram_tier must be the model's expert source (model.experts)");
  dev_ = std::make_unique<CudaDevice>(opts_.device);
  if (opts_.tensor_core_prompts && !cuda::tensor_core_gemm_supported(opts_.device))
    throw std::invalid_argument("tensor-core prompts (--prompt-tc) need a GPU of compute capability 8.0 or newer");
  MOE_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  try {
    gemm_ = std::make_unique<cuda::DenseGemm>(stream_);
    graphs_ = std::make_unique<GraphCache>(stream_);
    weights_ = upload_weights(model_, opts_.wide16);
    // Each MoE layer's rule as cpu::route_ex runs it (router_spec.h), for the device router, with
    // the device's copy of the correction bias.
    router_rules_.resize(size_t(c.n_layers));
    for (int l = 0; l < c.n_layers; ++l) {
      if (model_.layers[size_t(l)].kind != FfnKind::Moe) continue;
      std::vector<float> host_bias;
      const cpu::RouterSpec spec = router_spec(c, model_.layers[size_t(l)], host_bias);
      router_rules_[size_t(l)] = {.sigmoid = spec.sigmoid,
                                  .softmax_after_topk = spec.softmax_after_topk,
                                  .bias = spec.bias ? weights_.layers[size_t(l)].router_corr.get() : nullptr,
                                  .n_groups = spec.n_groups,
                                  .topk_groups = spec.topk_groups,
                                  .group_top2_sum = spec.group_top2_sum,
                                  .renorm = spec.renorm,
                                  .scale = spec.scale};
    }
    // The device router takes every MoE layer when cuda::router_route takes its rule and the
    // layer has no expert biases (the device-planned pairs add none: gpt-oss's experts run
    // grouped by expert); otherwise every MoE layer routes on the host.
    device_router_ = true;
    for (int l = 0; l < c.n_layers; ++l) {
      const LayerWeights& L = model_.layers[size_t(l)];
      if (L.kind != FfnKind::Moe) continue;
      const bool biases = !L.expert_gate_bias.empty() || !L.expert_up_bias.empty() || !L.expert_down_bias.empty();
      if (biases || !cuda::router_unsupported(c.router.n_experts, c.router.top_k, router_rules_[size_t(l)]).empty())
        device_router_ = false;
    }
    const std::vector<float> inv = rope_inv_freq(c.rope, c.rotary_dim);
    inv_freq_ = cuda::DeviceBuffer<float>(inv.size());
    inv_freq_.upload(inv.data(), inv.size());
    s_ = std::make_unique<Scratch>();

    if (first_moe_layer(model_) >= 0) {
      if (!model_.experts) throw std::invalid_argument("the model has MoE layers but no expert source");
      dispatch_ = std::make_unique<ExpertDispatch>(model_, opts_, *dev_, stream_, times_);
    }
  } catch (...) {
    // Members free their device memory themselves; the stream is the one raw handle.
    dispatch_.reset();
    gemm_.reset();
    cudaStreamDestroy(stream_);
    stream_ = nullptr;
    throw;
  }
}

std::vector<const void*> GpuEngine::graph_key(int64_t T, int64_t R) const {
  // The shape and every device address the step bakes into its kernels' arguments.
  const Scratch& s = *s_;
  std::vector<const void*> k = {reinterpret_cast<const void*>(T), reinterpret_cast<const void*>(R),
                                reinterpret_cast<const void*>(intptr_t(decode_max_len_))};
  const auto add = [&k](const auto&... b) { (k.push_back(b.get()), ...); };
  add(s.x, s.h, s.f, s.q, s.k, s.v, s.att, s.o, s.g, s.u, s.y, s.sh, s.router, s.sgate, s.dids, s.dwts, s.iota, s.pos,
      s.rows, s.lengths, s.kp, s.vp, s.work, s.xr, s.logits, s.qa, s.ql, s.lat, s.mla_cache, s.qg, s.gate);
  k.push_back(dispatch_ ? dispatch_->step_table_address() : nullptr);
  for (const auto& g : grouped_) k.push_back(g.plan_address());
  k.push_back(gemm_->scratch_address());
  return k;
}

GpuEngine::~GpuEngine() {
  if (stream_) {
    cudaStreamSynchronize(stream_);  // no throw from a destructor; no graph launch in flight after it
    graphs_.reset();
    try {
      if (dispatch_) dispatch_->release_pending();
    } catch (...) {
      // A tier error at shutdown has nobody to report to; the tier is freed below anyway.
    }
  }
  dispatch_.reset();  // its tier before the device it copies on
  seqs_.clear();
  s_.reset();
  gemm_.reset();
  if (stream_) cudaStreamDestroy(stream_);
}

SeqId GpuEngine::create_sequence() {
  const ModelConfig& c = model_.cfg;
  if (c.is_mla()) return seqs_.add(std::make_unique<GpuKv>(c.n_layers, c.kv_floats_per_layer(), /*values=*/false));
  if (c.n_linear_layers() > 0)
    return seqs_.add(std::make_unique<GpuKv>(c.n_layers, int64_t(c.n_kv_heads) * c.head_dim, true, c.linear_layers,
                                             c.linear.state_floats()));
  return seqs_.add(std::make_unique<GpuKv>(c.n_layers, int64_t(c.n_kv_heads) * c.head_dim));
}

SeqId GpuEngine::fork_sequence(SeqId src, int64_t n) {
  const GpuKv& from = seqs_.prefix_of(src, n);
  auto kv = std::make_unique<GpuKv>(from.prefix(n, stream_));
  if (!from.has_state()) return seqs_.add(std::move(kv));
  // The recurrent state exists at the source's length only (and at its snapshots).
  kv->copy_states_from(from, n, stream_);
  const bool at_end = n == from.length();
  const SeqId id = seqs_.add(std::move(kv));
  if (!at_end) rewind(id, n);
  return id;
}

void GpuEngine::rewind(SeqId seq, int64_t n) {
  GpuKv& kv = seqs_.at(seq);
  const int64_t from = kv.restore_at_or_before(n, stream_);
  const std::vector<int32_t> redo(kv.tokens().begin() + from, kv.tokens().begin() + n);
  kv.set_length(from);
  if (redo.empty()) return;
  const BatchItem item{seq, redo, false};
  forward({&item, 1});
}

void GpuEngine::truncate(SeqId seq, int64_t n) {
  GpuKv& kv = seqs_.prefix_of(seq, n);
  if (!kv.has_state() || n == kv.length()) return seqs_.truncate(seq, n);
  rewind(seq, n);
}

void GpuEngine::free_sequence(SeqId seq) {
  seqs_.at(seq);
  MOE_CUDA_CHECK(cudaStreamSynchronize(stream_));  // its cache may still be read by queued work
  seqs_.erase(seq);
}

int64_t GpuEngine::length(SeqId seq) const { return seqs_.at(seq).length(); }
int64_t GpuEngine::kv_bytes() const { return seqs_.bytes(); }

void GpuEngine::sync() {
  const Clock::time_point t0 = Clock::now();
  MOE_CUDA_CHECK(cudaStreamSynchronize(stream_));
  times_.sync_s += seconds_since(t0);
  if (dispatch_) dispatch_->release_pending();
}

StepInputs GpuEngine::step_inputs(bool decode, int64_t T) const {
  StepInputs in;
  in.decode = decode;
  in.tokens = T;
  in.pair_max_tokens = kPairMaxTokens;
  in.grouped = dispatch_ && dispatch_->grouped();
  in.device_tables = device_routed();
  in.device_router = device_router_;
  in.has_tier = dispatch_ != nullptr;
  in.hooks = !hooks_.empty();
  in.override_ = bool(override_);
  in.observers = !observers_.empty();
  // A hybrid model's linear layers launch per sequence, on its own state: never captured.
  in.cuda_graphs = opts_.cuda_graphs && !opts_.phase_profile && model_.cfg.n_linear_layers() == 0;
  for (const LayerWeights& l : model_.layers) in.moe_layer.push_back(l.kind == FfnKind::Moe);
  return in;
}

void GpuEngine::plan_prompt_rows(const BatchPlan& plan) {
  step_tokens_ = plan.tokens();
  prompt_token_.clear();
  prompt_rows_ = 0;
  other_runs_.clear();
  if (!opts_.tensor_core_prompts) return;
  std::vector<int32_t> rows;
  for (const BatchPlan::Item& it : plan.items) {
    if (it.n > 1) {
      for (int64_t r = it.row; r < it.row + it.n; ++r) rows.push_back(int32_t(r));
    } else if (!other_runs_.empty() && other_runs_.back().first + other_runs_.back().second == it.row) {
      other_runs_.back().second += it.n;
    } else {
      other_runs_.push_back({it.row, it.n});
    }
  }
  if (rows.empty()) {
    other_runs_.clear();
    return;
  }
  prompt_token_.assign(size_t(step_tokens_), 0);
  for (const int32_t r : rows) prompt_token_[size_t(r)] = 1;
  upload(s_->prompt_rows, rows, stream_);
  prompt_rows_ = int64_t(rows.size());
}

void GpuEngine::apply_rows(const Linear& l, const float* x, int64_t M, float* y) {
  const cuda::DeviceWeight w = l.m->weight();
  // The GEMV's runs start at row r0 of y: 16-byte aligned only when N % 4 == 0.
  if (prompt_rows_ == 0 || M != step_tokens_ || !is_quantized(w.dtype) || !cuda::tensor_core_format(w) ||
      w.rows % 4 != 0)
    return apply(l, x, M, y, *gemm_, stream_);
  for (const auto& [r0, n] : other_runs_) apply(w, x + r0 * w.cols, n, y + r0 * w.rows, *gemm_, stream_);
  cuda::tc_gemm_rows(w, x, y, s_->prompt_rows.get(), prompt_rows_, stream_);
  if (l.bias.size()) cuda::add_bias(y, l.bias.get(), M, w.rows, stream_);
}

std::vector<float> GpuEngine::forward(std::span<const BatchItem> batch) {
  const Clock::time_point t0 = Clock::now();
  const ModelConfig& c = model_.cfg;
  const int64_t H = c.hidden, V = c.vocab_size;
  const BatchPlan plan = plan_batch(batch, [&](SeqId s) { return seqs_.at(s).length(); }, opts_.max_seq_len, V);
  const int64_t T = plan.tokens();
  if (T == 0) return {};  // an empty batch
  for (auto& [id, n] : plan.added) seqs_.at(id).reserve(seqs_.at(id).length() + n, stream_);

  Scratch& s = *s_;
  s.fit(model_, T, int64_t(plan.logit_rows.size()), opts_.deltanet_chunk);
  if (c.n_linear_layers() > 0)  // a run that starts a sequence starts from the zero state
    for (const BatchPlan::Item& it : plan.items)
      if (it.start == 0) seqs_.at(it.seq).zero_states(stream_);
  upload(s.pos, plan.pos, stream_);
  plan_prompt_rows(plan);
  cuda::embed(weights_.embed->weight(), plan.ids.data(), T, s.ids.get(), s.x.get(), stream_);

  // Pure decode (one token per item, each its own sequence): one attention launch pair per
  // layer over all sequences; the per-layer K/V tables are uploaded once for the step.
  bool decode = true;
  for (const auto& it : plan.items) decode = decode && it.n == 1 && plan.added.at(it.seq) == 1;
  // The step's mode, decided once: where each layer routes, whether experts need the host,
  // which graphs replay, when observers hear of the routing.
  const StepPlan step = plan_step(step_inputs(decode, T));
  if (step.decode) {
    const int n = int(plan.items.size()), L = c.n_layers;
    std::vector<float*> kp(size_t(L * n)), vp(size_t(L * n));
    std::vector<int32_t> len(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
      const GpuKv& kv = seqs_.at(plan.items[size_t(i)].seq);
      len[size_t(i)] = int32_t(plan.items[size_t(i)].start + 1);
      for (int l = 0; l < L; ++l) {
        kp[size_t(l * n + i)] = kv.k(l);
        vp[size_t(l * n + i)] = kv.v(l);
      }
    }
    upload(s.kp, kp, stream_);
    upload(s.vp, vp, stream_);
    upload(s.lengths, len, stream_);
    // The attention grid's bound, rounded up: a captured step serves the next 256 positions (the
    // result does not depend on it: each sequence combines only its own chunks).
    decode_max_len_ = (*std::max_element(len.begin(), len.end()) + 255) / 256 * 256;
    if (!c.is_mla()) ensure(s.work, cuda::attention_decode_workspace(attention_shape(c), n, decode_max_len_));
  }

  // Final norm and LM head only for the rows the caller wants.
  const int64_t R = int64_t(plan.logit_rows.size());
  std::vector<int32_t> rows(plan.logit_rows.begin(), plan.logit_rows.end());
  upload(s.rows, rows, stream_);
  // A decode step that needs the host between layers (a partial budget, hooks) still replays
  // each layer's attention-and-routing segment as a graph; one that does not, the whole step.
  step_rows_ = R;
  const std::vector<const void*> key = step.graphs == GraphMode::WholeStep ? graph_key(T, R) : std::vector<const void*>{};
  const bool profiled = opts_.phase_profile && step.decode;  // step.graphs is None then
  phases_.cancel();  // a step that threw left its profile open: no event may reach a capture
  if (profiled) phases_.begin(stream_);
  const auto body = [&] {
    // Each residual add is fused with the norm after it: x += o, h = ffn_norm(x); x += f,
    // h = the next layer's attn_norm(x).
    const float eps = float(c.rms_eps);
    const auto& Ls = weights_.layers;
    cuda::rmsnorm(s.x.get(), Ls[0].attn_norm.get(), eps, T, H, s.h.get(), stream_);
    mark("norm");
    for (int l = 0; l < c.n_layers; ++l) {
      const auto segment = [&] {
        attention(l, plan, step.decode);  // h -> o
        cuda::add_rmsnorm(s.x.get(), s.o.get(), Ls[size_t(l)].ffn_norm.get(), eps, T, H, s.h.get(), stream_);
        mark("norm");
        if (step.route[size_t(l)] == RouteSite::Device) route_on_device(l, T);
      };
      // Keyed at each replay: a layer's host work may regrow a buffer the segments read (the
      // cuBLAS activation scratch for a large expert group, the grouped plan).
      if (step.graphs == GraphMode::Segments)
        times_.graph_segments += graphs_->run(1 + size_t(l), graph_key(T, R), segment);
      else
        segment();
      ffn(l, plan, step);  // h -> f
      if (l + 1 < c.n_layers)
        cuda::add_rmsnorm(s.x.get(), s.f.get(), Ls[size_t(l) + 1].attn_norm.get(), eps, T, H, s.h.get(), stream_);
      else
        cuda::add_inplace(s.x.get(), s.f.get(), T * H, stream_);
      mark("norm");
    }
    cuda::gather_rows(s.x.get(), s.rows.get(), R, H, s.xr.get(), stream_);
    cuda::rmsnorm(s.xr.get(), weights_.final_norm.get(), float(c.rms_eps), R, H, s.xr.get(), stream_);
    mark("norm");
    apply(weights_.lm_head, s.xr.get(), R, s.logits.get(), *gemm_, stream_);
    mark("lm_head");
  };
  if (step.graphs == GraphMode::WholeStep)
    times_.graph_steps += graphs_->run(0, key, body);
  else
    body();
  for (auto& [id, n] : plan.added) seqs_.at(id).set_length(seqs_.at(id).length() + n);
  for (const BatchItem& item : batch) seqs_.at(item.seq).append_tokens(item.tokens);  // for rewinds
  // Observers of a step whose routing stayed on the device: every layer's, read back once.
  const int64_t P = T * std::max(1, c.router.top_k), LP = int64_t(c.n_layers) * P;
  if (step.deferred_observers) {
    MOE_CUDA_CHECK(cudaMemcpyAsync(s.host_obs.as<int32_t>(), s.dids.get(), size_t(LP) * sizeof(int32_t),
                                   cudaMemcpyDeviceToHost, stream_));
    MOE_CUDA_CHECK(cudaMemcpyAsync(s.host_obs.as<int32_t>() + LP, s.dwts.get(), size_t(LP) * sizeof(float),
                                   cudaMemcpyDeviceToHost, stream_));
  }

  std::vector<float> logits(size_t(R * V));
  MOE_CUDA_CHECK(cudaMemcpyAsync(logits.data(), s.logits.get(), logits.size() * sizeof(float), cudaMemcpyDeviceToHost,
                                 stream_));
  sync();
  if (profiled) {
    phases_.end(times_.phase_s);
    ++times_.phase_steps;
  }
  if (step.deferred_observers) {
    const int32_t* ids = s.host_obs.as<int32_t>();
    const float* wts = reinterpret_cast<const float*>(ids + LP);
    for (int l = 0; l < c.n_layers; ++l) {
      if (step.route[size_t(l)] == RouteSite::None) continue;
      const RoutingEvent ev{l, int(T), c.router.top_k, ids + l * P, wts + l * P, plan.seq.data(), plan.pos.data(),
                            nullptr, nullptr};
      for (const auto& observer : observers_) observer(ev);
    }
  }
  times_.forward_s += seconds_since(t0);
  ++times_.forwards;
  return logits;
}

}  // namespace moe::gpu
