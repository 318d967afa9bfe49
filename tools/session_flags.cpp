#include "tools/session_flags.h"

#include <charconv>

#include "storage/tier/eviction_policy.h"

namespace moe::cli {

CLI::Option* add_threads_flag(CLI::App* cmd, int& threads) {
  return cmd->add_option("--threads,-t", threads,
                         "CPU threads (0 = physical cores; at most " + std::to_string(kMaxThreads) + ")")
      ->check(CLI::Range(0, kMaxThreads));
}

CLI::Option* add_seed_flag(CLI::App* cmd, uint64_t& seed, const std::string& help) {
  const CLI::Validator u64(
      [](std::string& v) -> std::string {
        uint64_t x = 0;
        const auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
        if (v.empty() || ec != std::errc() || p != v.data() + v.size())
          return "'" + v + "' is not an integer in [0, 18446744073709551615]";
        return "";
      },
      "UINT64");
  return cmd->add_option("--seed", seed, help)->check(u64)->capture_default_str();
}

void add_storage_flags(CLI::App* cmd, StorageOptions& s) {
  cmd->add_option("--io", s.io, "How a pack's experts are read: uring (O_DIRECT), pread or mmap")
      ->check(CLI::IsMember({"uring", "io_uring", "pread", "mmap"}))
      ->capture_default_str();
  cmd->add_option("--ram-budget", s.ram_budget,
                  "RAM for a pack's experts: a size (6GiB, 512MiB) or a percentage of all expert bytes (50%)")
      ->capture_default_str();
  cmd->add_option("--policy", s.policy,
                  "RAM tier eviction policy: lru, lfu (frequency with decay) or nextuse (expected next use: the "
                  "layer order and each expert's use rate; keeps part of every layer when a large batch uses them all)")
      ->check(CLI::IsMember(policy_names()))
      ->capture_default_str();
  cmd->add_option("--prefetch-share", s.prefetch_share,
                  "Share of --ram-budget that prefetched, not yet used experts may hold")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  cmd->add_option_function<std::string>(
         "--cache-split", [&s](const std::string& v) { s.split_per_layer = v == "layer"; },
         "RAM budget split: layer (an equal share per MoE layer) or global (one pool)")
      ->check(CLI::IsMember({"layer", "global"}))
      ->default_str("global");
}

void add_device_flags(CLI::App* c, DeviceOptions& d) {
  c->add_option("--device", d.device, "cpu, or cuda (the whole forward pass on the GPU)")
      ->check(CLI::IsMember({"cpu", "cuda"}))
      ->capture_default_str();
  c->add_option("--vram-budget", d.vram_budget,
                "GPU bytes for expert slots: SIZE (e.g. 6GiB) or N% of all expert bytes (default: planned from free VRAM)");
  c->add_option("--vram-limit", d.vram_limit,
                "GPU: plan as if the card had only SIZE (e.g. 24GiB: an RTX 4090 on a bigger GPU): dense weights, KV, "
                "headroom and expert slots all fit under it");
  c->add_option("--gpu", d.gpu, "CUDA device index")->capture_default_str();
  c->add_option("--kv-dtype", d.kv_dtype,
                "How the KV cache stores keys and values: f32, or bf16 / f16 (half the memory) / fp8 e4m3 (a quarter), "
                "rounded as stored (CPU engine; `moe compare --kv-dtype` reports the KL against f32)")
      ->check(CLI::IsMember({"f32", "bf16", "f16", "fp8"}))
      ->capture_default_str();
  c->add_flag("--exact", d.exact, "GPU: widen BF16/F16 weights to F32 so products see fp32 activations (as the CPU)");
  c->add_flag("--grouped,!--no-grouped", d.grouped,
              "GPU: a MoE layer's quantized experts as one grouped GEMV per projection, decode routed on the device "
              "(default; --no-grouped: one launch per expert and projection)");
  c->add_flag("--graphs,!--no-graphs", d.graphs,
              "GPU: replay decode steps as CUDA graphs, whole or (when the host must page experts in) layer by layer "
              "(default; --no-graphs: launch every kernel)");
  c->add_flag("--prompt-tc,!--no-prompt-tc", d.prompt_tc,
              "GPU: prompt chunks' quantized experts (INT4 / FP8 / MXFP4) and dense weights (INT8 / FP8) as a "
              "tensor-core GEMM (x and weights rounded to bf16, fp32 sums) instead of the fp32 GEMV per 8 tokens; sm_80 "
              "or newer, not with --exact (default off: not yet measured on a GPU)");
  c->add_flag("--gpu-phases", d.gpu_phases,
              "GPU: time each decode step's phases on the device (attention's parts, norms, router, experts, LM "
              "head) and report ms per step; such steps launch every kernel (no graphs), so they run slower");
  c->add_flag("--cpu-misses{auto}", d.cpu_misses,
              "GPU, partial --vram-budget: run a decode step's missed expert on the CPU when a start-up-calibrated cost "
              "model says that is sooner than copying it (the CPU rounds INT4 activations to int8: tokens may then "
              "depend on the budget). --cpu-misses=always sends every miss to the CPU (to measure that path)")
      ->check(CLI::IsMember({"off", "auto", "always"}));
}

void add_prefetch_flags(CLI::App* cmd, PrefetchSettings& p, bool list) {
  auto* opt = cmd->add_option("--prefetch", p.mode,
                              std::string("Expert prefetch: auto (gate when the experts do not all fit in RAM), off, gate "
                                          "(early routing), history (learned layer-to-layer transitions) or blend") +
                                  (list ? "; oracle (the forced routing's future: the bound a perfect "
                                          "predictor reaches); a comma-separated list (off,gate) measures each, "
                                          "alternating"
                                        : ""))
                  ->capture_default_str();
  if (!list) opt->check(CLI::IsMember({"auto", "off", "gate", "history", "blend"}));
  cmd->add_option("--lookahead", p.lookahead, "MoE layers ahead to predict and prefetch (1-8)")
      ->check(CLI::Range(1, 8))
      ->capture_default_str();
  cmd->add_option("--prefetch-k", p.prefetch_k, "Experts prefetched per predicted layer and token (0 = half the model's top-k, at least 1; the GPU's VRAM slots: top-k)");
  cmd->add_option("--prefetch-inflight", p.inflight, "Most prefetch bytes being read at once (default: top-k experts)");
  cmd->add_option("--prefetch-min-recall", p.min_recall,
                  "Hold back guesses at a lookahead whose recent recall@k is below this (default: max(0.2, 2 x "
                  "top-k / experts); 0 = never)");
  cmd->add_flag("!--no-stream-misses", p.stream_layer,
                "Do not read a layer's missing experts in the background while its resident ones compute (the "
                "compute thread then reads them itself, in top-k chunks)");
  cmd->add_option("--trace", p.trace, "Write a routing trace (JSONL: chosen experts, gate weights, predictions)");
}

void add_stats_flag(CLI::App* cmd, bool& stats) {
  cmd->add_flag("--stats", stats, "Print expert-cache hits, misses, disk bytes and stall time per token");
}

}  // namespace moe::cli
