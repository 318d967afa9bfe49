// Quantized matmul benchmarks against this machine's DRAM read bandwidth, measured in the same
// run. GEMV (decode) is memory-bound, so its figure of merit is weight bytes / s as a fraction
// of the streaming-read ceiling; GEMM (prefill / batched decode) reports GFLOP/s too, and at the
// end as a fraction of the int8 dot-product peak (Int8Peak, same threads; run it in the same
// filter). GEMM_hot_M* runs one matrix over and over (in cache): the kernel's compute ceiling.
// Where the CPU has AMX, Q4 GEMMs of more than 16 rows of x run on the tile unit (also reported
// against AmxPeak) and "/noamx" runs the AVX-512 kernel beside them.
//
// "GB/s achieved / DRAM GB/s" pairs each GEMV with a DRAM pass run right after it (same
// threads), since on a shared machine the ceiling drifts during the run.
// Weights rotate over enough distinct matrices (> kRotateBytes) that no cache holds them; the
// data is random bytes (valid codes, sane scales), never zeros. The variant is the process's
// active one: MOE_CPU_ISA=scalar|avx2|avx512 picks another.
//
//   build-q/bench/bench_kernels --benchmark_filter='DramRead|GEMV'
//   build-q/bench/bench_kernels --benchmark_filter='Int8Peak|GEMM_(hot_)?M(16|128)/'
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/cpu/attention.h"
#include "kernels/cpu/deltanet.h"
#include "kernels/cpu/amx.h"
#include "kernels/cpu/int8_peak.h"
#include "kernels/cpu/membw.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/qmatmul.h"
#include "quant/quantize.h"

using namespace moe;

namespace {

constexpr int64_t kRotateBytes = 320ll << 20;
constexpr int64_t kDramBytes = 1ll << 30;

ThreadPool& pool(int threads) {
  static std::map<int, std::unique_ptr<ThreadPool>> pools;
  auto& p = pools[threads];
  if (!p) p = std::make_unique<ThreadPool>(threads);
  return *p;
}

// xorshift64*: fast enough to fill hundreds of MB.
struct Rng {
  uint64_t s;
  uint64_t next() {
    s ^= s >> 12, s ^= s << 25, s ^= s >> 27;
    return s * 0x2545f4914f6cdd1dull;
  }
  void fill(std::vector<uint8_t>& v) {
    size_t i = 0;
    for (; i + 8 <= v.size(); i += 8) {
      const uint64_t r = next();
      std::memcpy(&v[i], &r, 8);
    }
    for (; i < v.size(); ++i) v[i] = uint8_t(next());
  }
};

// ---- DRAM read ceiling ----------------------------------------------------------------------
std::map<int, double> g_dram_gbs;  // threads -> GB/s of the DramRead benchmark

const cpu::DramProbe& dram_probe() {
  static const cpu::DramProbe probe{size_t(kDramBytes)};
  return probe;
}

// One multi-threaded streaming pass over the 1 GiB buffer; returns seconds.
double dram_pass(int threads) { return dram_probe().pass_seconds(pool(threads)); }

void BM_DramRead(benchmark::State& state) {
  const int threads = int(state.range(0));
  double secs = 0;
  for (auto _ : state) secs += dram_pass(threads);
  const double bytes = double(kDramBytes) * double(state.iterations());
  state.counters["bytes/s"] = benchmark::Counter(bytes, benchmark::Counter::kIsRate);
  g_dram_gbs[threads] = bytes / secs / 1e9;
}

// ---- int8 dot-product peak ------------------------------------------------------------------
std::map<int, double> g_int8_peak;  // threads -> int8 ops/s (2 per multiply-add)
std::map<int, double> g_amx_peak;   // the same for the AMX tile unit, where there is one

// peak: int8_peak_ops or amx_int8_peak_ops; 0 means the unit is missing (`missing` says which).
void BM_Peak(benchmark::State& state, double (*peak)(ThreadPool&, double), std::map<int, double>* out,
             const char* missing) {
  const int threads = int(state.range(0));
  double ops = 0;
  for (auto _ : state) ops = peak(pool(threads), 0.2);
  if (ops == 0) {
    state.SkipWithError(missing);
    return;
  }
  state.counters["OP/s"] = ops;
  (*out)[threads] = ops;
}

// ---- quantized weights ----------------------------------------------------------------------
struct Format {
  DType dtype;
  int32_t group;
};

// Random quantized matrices of one shape, rotating past the caches.
struct WeightSet {
  std::vector<QuantizedMatrix> mats;
  int64_t bytes_each = 0;
};

QuantizedMatrix random_matrix(Format f, int64_t N, int64_t K, Rng& rng) {
  QuantizedMatrix m;
  m.dtype = f.dtype, m.rows = N, m.cols = K, m.group = f.group;
  if (f.dtype == DType::MXFP4) {  // e2m1 codes, e8m0 scales 2^-9 .. 2^-6
    m.data.resize(size_t(N * K / 2));
    rng.fill(m.data);
    m.scales.resize(size_t(N * (K / 32)));
    for (auto& s : m.scales) s = uint8_t(118 + rng.next() % 4);
    return m;
  }
  const bool q4 = f.dtype == DType::Q4 || f.dtype == DType::Q4Z;
  m.data.resize(size_t(q4 ? N * K / 2 : N * K));
  rng.fill(m.data);
  if (f.dtype == DType::F8E4M3)
    for (auto& b : m.data)
      if ((b & 0x7f) == 0x7f) b ^= 1;  // no NaN codes
  const int64_t ns = q4 ? N * (K / f.group) : f.group ? ((N + 127) / 128) * ((K + 127) / 128) : N;
  m.scales.resize(size_t(ns * (q4 ? 2 : 4)));
  for (int64_t i = 0; i < ns; ++i) {
    const float s = 0.001f * float(1 + rng.next() % 64);
    if (q4) {
      const uint16_t h = f32_to_f16(s);
      std::memcpy(&m.scales[size_t(i * 2)], &h, 2);
    } else {
      std::memcpy(&m.scales[size_t(i * 4)], &s, 4);
    }
  }
  if (f.dtype == DType::Q4Z) {
    m.zeros.resize(size_t(ns));
    for (auto& z : m.zeros) z = uint8_t(rng.next() % 16);
  }
  return m;
}

const WeightSet& weights(Format f, int64_t N, int64_t K) {
  // One live set at a time keeps the footprint near kRotateBytes.
  static std::string key;
  static WeightSet set;
  const std::string k = std::string(dtype_name(f.dtype)) + std::to_string(f.group) + "/" + std::to_string(N) +
                        "x" + std::to_string(K);
  if (k != key) {
    set = {};
    Rng rng{0x9e3779b97f4a7c15ull ^ uint64_t(N * 131 + K)};
    set.mats.push_back(random_matrix(f, N, K, rng));
    set.bytes_each = set.mats[0].view().bytes();
    const int64_t count = std::max<int64_t>(2, (kRotateBytes + set.bytes_each - 1) / set.bytes_each);
    while (int64_t(set.mats.size()) < count) set.mats.push_back(random_matrix(f, N, K, rng));
    key = k;
  }
  return set;
}

struct Result {
  std::string name;
  int threads;
  double gbs, dram_gbs;  // kernel, and the DRAM read pass right after it
};
std::vector<Result> g_gemv;
struct GemmResult {
  std::string name;  // GEMM_M<M>[_hot]/<label>
  int threads;
  double flops;
  bool tiles;  // ran on the AMX tile unit
};
std::vector<GemmResult> g_gemm;

// hot: one matrix over and over (cache-resident): the kernel's compute ceiling, to tell a
// memory-bound kernel from a compute-bound one.
// amx: false runs the AVX-512 kernels where AMX would be used (a side-by-side variant, "/noamx").
void BM_Matmul(benchmark::State& state, Format f, int64_t M, int64_t N, int64_t K, std::string label, bool hot,
               bool amx) {
  const int threads = int(state.range(0));
  struct AmxScope {
    bool was;
    explicit AmxScope(bool on) : was(cpu::set_amx_enabled(on)) {}
    ~AmxScope() { cpu::set_amx_enabled(was); }
  } amx_scope(amx);
  const WeightSet& ws = weights(f, N, K);
  const size_t rotate = hot ? 1 : ws.mats.size();
  std::vector<float> x(size_t(M * K)), y(size_t(M * N));
  Rng rng{7};
  for (auto& v : x) v = float(int(rng.next() % 2001) - 1000) * 1e-3f;
  ThreadPool& p = pool(threads);
  size_t i = 0;
  double secs = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    cpu::matmul(p, x.data(), M, ws.mats[i].view(), y.data());
    secs += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    i = (i + 1) % rotate;
  }
  benchmark::DoNotOptimize(y.data());
  const double it = double(state.iterations()), bytes = double(ws.bytes_each) * it;
  state.counters["bytes/s"] = benchmark::Counter(bytes, benchmark::Counter::kIsRate);
  state.counters["FLOP/s"] = benchmark::Counter(2.0 * double(M * N * K) * it, benchmark::Counter::kIsRate);
  const double gbs = bytes / secs / 1e9;
  state.SetLabel(label + " " + cpu::isa_name(cpu::active_isa()) + (cpu::amx_enabled() ? "+amx" : ""));
  if (M > 1) {
    const std::string name = "GEMM_" + std::string(hot ? "hot_" : "") + "M" + std::to_string(M) + "/" + label +
                             (cpu::amx_supported() && !amx ? "/noamx" : "");
    std::erase_if(g_gemm, [&](const GemmResult& r) { return r.name == name && r.threads == threads; });
    g_gemm.push_back({name, threads, 2.0 * double(M * N * K) * it / secs, cpu::amx_gemm(f.dtype, M)});
  }
  if (M == 1 && !hot) {
    // The ceiling drifts on a shared machine: measure it again right after this kernel, with
    // the same threads, and report the kernel against that paired figure.
    const double dram = double(kDramBytes) / dram_pass(threads) / 1e9;
    state.counters["dram_bytes/s"] = dram * 1e9;
    state.counters["pct_dram"] = 100.0 * gbs / dram;
    // Google Benchmark calls this several times while it sizes the run; keep the last.
    std::erase_if(g_gemv, [&](const Result& r) { return r.name == label && r.threads == threads; });
    g_gemv.push_back({label, threads, gbs, dram});
  }
}

// One parallel section with (almost) no work: what each projection of a decode step pays to
// start and join the pool's threads (about 1,500 sections per token on a 48-layer MoE).
void BM_ParallelFor(benchmark::State& state) {
  ThreadPool& p = pool(int(state.range(0)));
  std::vector<int64_t> sink(64);
  for (auto _ : state) p.parallel_for(p.size(), 1, [&](int64_t b, int64_t e) { sink[size_t(b) * 8] += e - b; });
  benchmark::DoNotOptimize(sink.data());
}

// Decode attention of one layer, one thread: one query token against `depth` cached positions of
// an f16 cache (rows of n_kv heads x 128, as the engine stores them), every kv head's group of
// query heads in turn. Layers rotate over more than kRotateBytes of cache, so the rows come from
// DRAM as at decode; the figure is cache bytes read per second. hot: one layer over and over (in
// cache), the kernel's compute ceiling. paged: the rows in pages of 16 (the CPU engine's
// KvCache) at shuffled places, read through a page table, against one contiguous buffer.
void BM_AttendDecode(benchmark::State& state, int n_kv, int group, bool hot, bool paged) {
  constexpr int hd = 128, page_shift = 4;
  const int64_t depth = state.range(0), stride = int64_t(n_kv) * hd, layer = depth * stride;
  const int64_t layers = hot ? 1 : std::max<int64_t>(2, kRotateBytes / (2 * layer * 2) + 1);
  std::vector<uint16_t> k(size_t(layers * layer)), v(size_t(layers * layer));
  Rng rng{11};
  for (auto* kv : {&k, &v})
    for (auto& e : *kv) e = uint16_t(0x3000 + rng.next() % 0x0c00) | uint16_t(rng.next() & 1) << 15;  // |x| in [0.125, 1)
  std::vector<float> q(size_t(n_kv * group * hd)), out(q.size()), scratch(size_t(group * depth));
  for (auto& e : q) e = float(int(rng.next() % 2001) - 1000) * 1e-3f;
  // Page tables: layer l's page i at slot perm[i] of the layer's buffer (or the buffer itself).
  const int64_t np = paged ? depth >> page_shift : 1;
  std::vector<int64_t> perm(static_cast<size_t>(np));
  for (int64_t i = 0; i < np; ++i) perm[size_t(i)] = i;
  for (int64_t i = np - 1; i > 0; --i) std::swap(perm[size_t(i)], perm[rng.next() % uint64_t(i + 1)]);
  std::vector<const void*> kp(size_t(layers * np)), vp(kp.size());
  for (int64_t l = 0; l < layers; ++l)
    for (int64_t i = 0; i < np; ++i) {
      const size_t at = size_t(l * layer + (perm[size_t(i)] << page_shift) * stride);
      kp[size_t(l * np + i)] = &k[at];
      vp[size_t(l * np + i)] = &v[at];
    }
  const int shift = paged ? page_shift : 62;
  int64_t l = 0;
  for (auto _ : state) {
    for (int h = 0; h < n_kv; ++h) {
      const cpu::KvRows kr{&kp[size_t(l * np)], shift, stride, h * hd}, vr{&vp[size_t(l * np)], shift, stride, h * hd};
      if (!cpu::attend_group(&q[size_t(h * group * hd)], group, kr, vr, DType::F16, 0, depth - 1, hd, 0.088f, nullptr,
                             &out[size_t(h * group * hd)], scratch.data())) {
        state.SkipWithError("attend_group declined f16 rows (no AVX-512)");
        return;
      }
    }
    l = (l + 1) % layers;
  }
  benchmark::DoNotOptimize(out.data());
  state.counters["bytes/s"] = benchmark::Counter(double(state.iterations()) * double(2 * layer * 2),
                                                 benchmark::Counter::kIsRate);
}

// The gated delta rule of one Qwen3.5-MoE DeltaNet layer (16 key heads, 32 value heads, 128 x
// 128 state per value head: 2 MB), T tokens of one sequence on 2 threads. T = 1 is decode's
// recurrent step: states rotate over more than kRotateBytes, as a batch of sequences' states do,
// and the figure is state bytes read and written per second. T > 1 is a prompt, in the chunked
// form (second argument 0) or the recurrent one (1). FLOP/s counts the chunked form's work
// (three C x 128 x 128 state products per chunk and the in-chunk ones) for both, so the figures
// compare as times.
void BM_DeltaNet(benchmark::State& state) {
  const cpu::DeltaNetShape s{16, 32, 128, 128};
  const int64_t T = state.range(0), sf = s.state_floats();
  const int64_t states = T == 1 ? kRotateBytes / (sf * 4) + 1 : 1;
  std::vector<float> S(size_t(states * sf), 0.0f);
  Rng rng{7};
  auto uni = [&] { return float(int(rng.next() % 2001) - 1000) * 1e-3f; };
  for (auto& e : S) e = uni() * 0.1f;
  const int64_t nq = T * s.n_k_heads * s.k_dim, nvv = T * s.n_v_heads * s.v_dim, ng = T * s.n_v_heads;
  std::vector<float> q0(static_cast<size_t>(nq)), k0(q0), v(static_cast<size_t>(nvv)), g(static_cast<size_t>(ng)), beta(g),
      out(v);
  for (auto& e : q0) e = uni();
  for (auto& e : k0) e = uni();
  for (auto& e : v) e = uni();
  for (auto& e : g) e = -0.05f - 0.05f * std::abs(uni());
  for (auto& e : beta) e = 0.5f + 0.4f * uni();
  std::vector<float> q(q0), k(k0);
  int64_t l = 0;
  for (auto _ : state) {
    q = q0, k = k0;  // normalised in place
    if (T == 1 || state.range(1) == 1)
      cpu::gated_delta_recurrent(pool(2), q.data(), k.data(), v.data(), g.data(), beta.data(), T, s, &S[size_t(l * sf)], out.data());
    else
      cpu::gated_delta_chunked(pool(2), q.data(), k.data(), v.data(), g.data(), beta.data(), T, s, &S[size_t(l * sf)], out.data());
    l = (l + 1) % states;
  }
  benchmark::DoNotOptimize(out.data());
  if (T == 1)
    state.counters["state bytes/s"] =
        benchmark::Counter(double(state.iterations()) * double(2 * sf * 4), benchmark::Counter::kIsRate);
  const double kk = double(s.k_dim), vv = double(s.v_dim), C = double(std::min<int64_t>(T, 64));
  const double flop = double(T) * s.n_v_heads * (T == 1 ? 6.0 * kk * vv : 2.0 * (3.0 * kk * vv + C * (kk + vv)));
  state.SetLabel(T == 1 ? "decode step" : state.range(1) == 1 ? "prompt, recurrent" : "prompt, chunked");
  state.counters["FLOP/s"] = benchmark::Counter(double(state.iterations()) * flop, benchmark::Counter::kIsRate);
}

struct ShapeDef {
  const char* name;
  int64_t N, K;
};
const ShapeDef kShapes[] = {{"qwen3_gate_up", 768, 2048}, {"qwen3_down", 2048, 768}, {"mixtral_w1", 14336, 4096}, {"mixtral_w2", 4096, 14336}};
struct FormatDef {
  const char* name;
  Format f;
};
const FormatDef kGemvFormats[] = {{"Q4g32", {DType::Q4, 32}}, {"Q4g128", {DType::Q4, 128}}, {"I8row", {DType::I8, 0}}, {"F8row", {DType::F8E4M3, 0}}};
const FormatDef kGemmFormats[] = {{"Q4g32", {DType::Q4, 32}}, {"I8row", {DType::I8, 0}}, {"F8row", {DType::F8E4M3, 0}}};

void register_all() {
  benchmark::RegisterBenchmark("DramRead", BM_DramRead)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("Int8Peak", BM_Peak, &cpu::int8_peak_ops, &g_int8_peak, "no AVX-512 VNNI")
      ->Arg(1)->Arg(2)->Iterations(3)->UseRealTime()->Unit(benchmark::kMillisecond);
  if (cpu::amx_supported())
    benchmark::RegisterBenchmark("AmxPeak", BM_Peak, &cpu::amx_int8_peak_ops, &g_amx_peak, "no AMX")
        ->Arg(1)->Arg(2)->Iterations(3)->UseRealTime()->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("ParallelFor", BM_ParallelFor)->Arg(2)->UseRealTime()->Unit(benchmark::kMicrosecond);
  // kv heads x query heads per kv head: OLMoE (no grouping), Mixtral, Qwen3-30B-A3B
  for (const auto& [name, n_kv, group] : {std::tuple{"olmoe_16x1", 16, 1}, {"mixtral_8x4", 8, 4}, {"qwen3_4x8", 4, 8}})
    for (bool hot : {false, true})
      for (bool paged : {false, true})
        benchmark::RegisterBenchmark((std::string(hot ? "AttendDecode_hot/" : "AttendDecode/") + name + (paged ? "/paged" : "")).c_str(),
                                     BM_AttendDecode, n_kv, group, hot, paged)
            ->Arg(hot ? 256 : 1024)->UseRealTime()->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("DeltaNet", BM_DeltaNet)->Args({1, 1})->Args({512, 0})->Args({512, 1})->UseRealTime()->Unit(benchmark::kMicrosecond);
  for (const FormatDef& fd : kGemvFormats)
    for (const ShapeDef& s : kShapes) {
      const std::string label = std::string(fd.name) + "/" + s.name;
      benchmark::RegisterBenchmark(("GEMV/" + label).c_str(), BM_Matmul, fd.f, int64_t(1), s.N, s.K, label, false, true)
          ->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMicrosecond);
      if (s.N * s.K <= 2048 * 2048)  // fits in L2 at these formats
        benchmark::RegisterBenchmark(("GEMV_hot/" + label).c_str(), BM_Matmul, fd.f, int64_t(1), s.N, s.K, label, true, true)
            ->Arg(1)->UseRealTime()->Unit(benchmark::kMicrosecond);
    }
  // gpt-oss's experts (hidden 2880 = expert width) as shipped, in MXFP4
  for (const ShapeDef& s : {ShapeDef{"gptoss_gate", 2880, 2880}, ShapeDef{"mixtral_w1", 14336, 4096}}) {
    const std::string label = std::string("MXFP4/") + s.name;
    benchmark::RegisterBenchmark(("GEMV/" + label).c_str(), BM_Matmul, Format{DType::MXFP4, 32}, int64_t(1), s.N, s.K,
                                 label, false, true)
        ->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMicrosecond);
    if (s.N * s.K <= 2880 * 2880)
      benchmark::RegisterBenchmark(("GEMV_hot/" + label).c_str(), BM_Matmul, Format{DType::MXFP4, 32}, int64_t(1), s.N,
                                   s.K, label, true, true)
          ->Arg(1)->UseRealTime()->Unit(benchmark::kMicrosecond);
  }
  for (int64_t M : {2, 8, 16, 32, 64, 128})
    for (const FormatDef& fd : kGemmFormats)
      for (const ShapeDef& s : kShapes)
        // Where AMX runs this GEMM, the AVX-512 kernel beside it ("/noamx").
        for (bool amx : {true, false}) {
          if (!amx && !cpu::amx_gemm(fd.f.dtype, M)) continue;
          const std::string label = std::string(fd.name) + "/" + s.name, tail = amx ? "" : "/noamx";
          benchmark::RegisterBenchmark(("GEMM_M" + std::to_string(M) + "/" + label + tail).c_str(), BM_Matmul, fd.f, M,
                                       s.N, s.K, label, false, amx)
              ->Arg(2)->UseRealTime()->Unit(benchmark::kMicrosecond);
          if (s.N * s.K <= 2048 * 2048)  // in L2: the kernel's compute ceiling at this M
            benchmark::RegisterBenchmark(("GEMM_hot_M" + std::to_string(M) + "/" + label + tail).c_str(), BM_Matmul,
                                         fd.f, M, s.N, s.K, label, true, amx)
                ->Arg(1)->UseRealTime()->Unit(benchmark::kMicrosecond);
        }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  register_all();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  for (const auto& [threads, gbs] : g_dram_gbs) std::printf("DRAM read, %d thread(s): %.1f GB/s\n", threads, gbs);
  for (const Result& r : g_gemv)
    std::printf("GEMV %-22s %-6s %d thread(s): %.1f GB/s achieved / DRAM %.1f GB/s = %.0f%%\n", r.name.c_str(),
                cpu::isa_name(cpu::active_isa()), r.threads, r.gbs, r.dram_gbs, 100.0 * r.gbs / r.dram_gbs);
  for (const auto& [threads, ops] : g_int8_peak)
    std::printf("int8 peak (vpdpbusd), %d thread(s): %.0f GOP/s\n", threads, ops / 1e9);
  for (const auto& [threads, ops] : g_amx_peak)
    std::printf("int8 peak (AMX tdpbssd), %d thread(s): %.0f GOP/s\n", threads, ops / 1e9);
  for (const GemmResult& r : g_gemm) {
    const auto peak = g_int8_peak.find(r.threads);
    if (peak == g_int8_peak.end()) continue;
    std::printf("%-40s %d thread(s): %.0f GFLOP/s / int8 peak %.0f = %.0f%%", r.name.c_str(), r.threads, r.flops / 1e9,
                peak->second / 1e9, 100.0 * r.flops / peak->second);
    if (const auto amx = g_amx_peak.find(r.threads); r.tiles && amx != g_amx_peak.end())
      std::printf(" (AMX peak %.0f: %.0f%%)", amx->second / 1e9, 100.0 * r.flops / amx->second);
    std::printf("\n");
  }
  return 0;
}
