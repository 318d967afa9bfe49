// CUDA expert GEMV bandwidth against the device's copy bandwidth, measured in the same run.
//
// Decode GEMV is memory-bound: its figure of merit is bytes moved / time (weights + scales +
// zero points + activations + outputs) as a fraction of the ceiling, a device-to-device
// cudaMemcpy counted as read + write (2 * size / time), the DRAM traffic a copy makes.
// Shapes are real experts' [N, K]: Qwen3-30B-A3B gate/up [768, 2048] and down [2048, 768],
// Mixtral-8x7B w1/w3 [14336, 4096] and w2 [4096, 14336]; batch 1 and 8 (one launch reads the
// weights once for all tokens).
// Weights are random valid codes (never zeros) and rotate over enough copies (> kRotateBytes)
// that L2 (50 MB on an H100) holds none between uses; each figure is the median of kReps
// timed runs after a warm-up. Plain main, no dependencies: prints a table.
// Every GEMV row (qgemv and grouped) is timed once per kernel variant (kernels/cuda/qgemv_variant.h:
// v0, smem, fast, fast-r2), one line each, on the same weights and inputs; the last column is the
// variant's max |y - y_v0| / max |y_v0| (summation order only: ~1e-6 expected).
// Then decode attention (kernels/cuda/attention.h) at Qwen3-30B-A3B's heads (32 query, 4 kv,
// head_dim 128): one sequence at 4k and 32k keys, 8 sequences at 4k; the figure is the K+V
// bytes read per call / time (not counted: the split-K partials written and re-read, ~6% more
// at group 8, and q and out),
// KV caches rotated like the weights so L2 holds none between calls.
// Then dense bf16 GEMM through cuBLAS (kernels/cuda/dense_gemm.h, activations narrowed to bf16
// first, included in the time) at Qwen3-30B-A3B's attention projections, q_proj [4096, 2048]
// and o_proj [2048, 4096], for M = 1, 8, 512 tokens: us/call and TFLOP/s (2 M N K / time), and
// for M = 1, where only the weights' bytes matter, their GB/s against the copy ceiling.
//
//   build-gpu/bench/bench_gpu            (scripts/gpu-check.sh runs it)
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <random>
#include <string>
#include <vector>

#include "kernels/cuda/attention.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/dense_gemm.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/device_buffer.h"
#include "kernels/cuda/device_weight.h"
#include "kernels/cuda/qgemv.h"
#include "kernels/cuda/qgemv_grouped.h"
#include "kernels/cuda/qgemv_variant.h"
#include "quant/quantize.h"

using namespace moe;
using moe::cuda::DeviceBuffer;
using moe::cuda::DeviceMatrix;
using moe::cuda::detail::QgemvVariant;
using moe::cuda::detail::ScopedQgemvVariant;

namespace {

constexpr int64_t kRotateBytes = 512ll << 20;
constexpr int64_t kCopyBytes = 1ll << 30;
constexpr int64_t kH2DBytes = 256ll << 20;  // pinned host->device (the PCIe link)
constexpr int kReps = 7;
constexpr double kMinRepSeconds = 2e-3;  // launches per timed run are chosen to last at least this

// Median seconds per call of fn(i) over kReps runs of `iters` calls (fn(0..iters-1) is one run).
template <class Fn>
double time_per_call(Fn&& fn, int iters) {
  cudaEvent_t a, b;
  MOE_CUDA_CHECK(cudaEventCreate(&a));
  MOE_CUDA_CHECK(cudaEventCreate(&b));
  for (int i = 0; i < iters; ++i) fn(i);  // warm-up
  std::vector<double> t;
  for (int rep = 0; rep < kReps; ++rep) {
    MOE_CUDA_CHECK(cudaEventRecord(a));
    for (int i = 0; i < iters; ++i) fn(i);
    MOE_CUDA_CHECK(cudaEventRecord(b));
    MOE_CUDA_CHECK(cudaEventSynchronize(b));
    float ms = 0;
    MOE_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
    t.push_back(double(ms) * 1e-3 / iters);
  }
  MOE_CUDA_CHECK(cudaEventDestroy(a));
  MOE_CUDA_CHECK(cudaEventDestroy(b));
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// Enough calls that one timed run lasts kMinRepSeconds (estimated from a few calls).
template <class Fn>
int calibrate(Fn&& fn) {
  const double one = time_per_call(fn, 4);
  return int(std::clamp(kMinRepSeconds / std::max(one, 1e-7), 4.0, 20000.0));
}

// Random valid codes and scales around real magnitudes; NaN FP8 codes replaced.
QuantizedMatrix random_matrix(DType dtype, int32_t group, int64_t N, int64_t K, std::mt19937_64& rng) {
  QuantizedMatrix q;
  q.dtype = dtype, q.rows = N, q.cols = K, q.group = group;
  WeightView v;
  v.dtype = dtype, v.rows = N, v.cols = K, v.group = group;
  q.data.resize(size_t(v.data_bytes()));
  for (size_t i = 0; i < q.data.size(); i += 8) {
    const uint64_t r = rng();
    for (size_t k = 0; k < 8 && i + k < q.data.size(); ++k) q.data[i + k] = uint8_t(r >> (8 * k));
  }
  q.scales.resize(size_t(v.scale_bytes()));
  if (dtype == DType::MXFP4) {
    for (uint8_t& s : q.scales) s = uint8_t(120 + rng() % 8);  // e8m0: 2^-7 .. 2^0
  } else if (dtype == DType::F8E4M3 || dtype == DType::I8) {
    if (dtype == DType::F8E4M3)
      for (uint8_t& b : q.data)
        if ((b & 0x7f) == 0x7f) b ^= 1;
    std::vector<float> s(q.scales.size() / 4);
    for (float& x : s) x = 1e-3f * float(1 + rng() % 7);
    std::memcpy(q.scales.data(), s.data(), q.scales.size());
  } else {
    std::vector<uint16_t> s(q.scales.size() / 2);
    for (uint16_t& x : s) x = uint16_t(0x2000 + rng() % 0x400);  // fp16 ~0.008..0.016
    std::memcpy(q.scales.data(), s.data(), q.scales.size());
  }
  return q;
}

// y downloaded, and max |y - ref| / max |ref| (0 when ref is empty: the first variant, v0, is the
// reference of the others; a variant differs from v0 only in summation order, ~1e-6).
double download_rel_diff(const DeviceBuffer<float>& y, std::vector<float>& got, const std::vector<float>& ref) {
  MOE_CUDA_CHECK(cudaDeviceSynchronize());
  got.resize(y.size());
  y.download(got.data(), got.size());
  if (ref.empty()) return 0;
  double max_ref = 0, max_err = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    max_ref = std::max(max_ref, double(std::abs(ref[i])));
    max_err = std::max(max_err, std::isnan(got[i]) ? INFINITY : double(std::abs(got[i] - ref[i])));
  }
  return max_ref > 0 ? max_err / max_ref : max_err;
}

struct Shape {
  const char* model;
  int64_t N, K;
};
struct Format {
  const char* name;
  DType dtype;
  int32_t group;
};

// Decode attention over n_seq sequences of `length` keys each, Qwen3-30B-A3B heads.
void bench_attention_decode(const char* name, int n_seq, int length, double copy_gbs, std::mt19937_64& rng) {
  const cuda::AttentionShape sh{32, 4, 128, 4 * 128};
  const size_t kv_floats = size_t(length) * size_t(sh.kv_stride);  // one sequence's K (or V)
  const double kv_bytes = 2.0 * 4.0 * double(kv_floats) * n_seq;    // K + V read per call
  const int copies = int(std::max<int64_t>(2, (kRotateBytes + int64_t(kv_bytes) - 1) / int64_t(kv_bytes)));
  std::vector<float> host(kv_floats);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (float& x : host) x = nd(rng);
  // copies x n_seq caches, K and V separate buffers (the same random rows: timing does not depend
  // on values, but V must not be read from where K just was, or L2 would serve it).
  std::vector<DeviceBuffer<float>> kv;
  std::vector<DeviceBuffer<const float*>> kptrs, vptrs;  // per copy: [n_seq] device pointers
  for (int c = 0; c < copies; ++c) {
    std::vector<const float*> kp, vp;
    for (int i = 0; i < 2 * n_seq; ++i) {
      kv.emplace_back(kv_floats);
      kv.back().upload(host.data(), host.size());
      (i % 2 ? vp : kp).push_back(kv.back().get());
    }
    kptrs.emplace_back(kp.size());
    kptrs.back().upload(kp.data(), kp.size());
    vptrs.emplace_back(vp.size());
    vptrs.back().upload(vp.data(), vp.size());
  }
  const std::vector<int32_t> lengths(size_t(n_seq), length);
  DeviceBuffer<int32_t> dlen(lengths.size());
  dlen.upload(lengths.data(), lengths.size());
  std::vector<float> hq(size_t(n_seq * sh.n_heads * sh.head_dim));
  for (float& x : hq) x = nd(rng);
  DeviceBuffer<float> q(hq.size()), out(hq.size()), ws(size_t(cuda::attention_decode_workspace(sh, n_seq, length)));
  q.upload(hq.data(), hq.size());
  cuda::DecodeBatch b;
  b.n_seq = n_seq, b.max_length = length, b.q = q.get(), b.lengths = dlen.get(), b.out = out.get(), b.workspace = ws.get();
  auto call = [&](int i) {
    b.k = kptrs[size_t(i % copies)].get();
    b.v = vptrs[size_t(i % copies)].get();
    cuda::attention_decode(sh, b, nullptr);
  };
  const double s = time_per_call(call, calibrate(call));
  const double gbs = kv_bytes / s / 1e9;
  std::printf("%-26s %4d %7d %9.1f %10.2f %9.0f %6.1f%%\n", name, n_seq, length, kv_bytes / 1e6, s * 1e6, gbs,
              100.0 * gbs / copy_gbs);
}

// n activations uniform in [-1, 1), on the device.
DeviceBuffer<float> uniform_x(int64_t n, std::mt19937_64& rng) {
  std::vector<float> h(static_cast<size_t>(n));
  std::uniform_real_distribution<float> ud(-1.0f, 1.0f);
  for (float& v : h) v = ud(rng);
  DeviceBuffer<float> x(h.size());
  x.upload(h.data(), h.size());
  return x;
}

// T tokens, each routed to top_k distinct random experts of work: pair (t, j) reads x row t and
// writes y row t * top_k + j.
void route_random(std::vector<cuda::GroupedExpert>& work, int T, int top_k, std::mt19937_64& rng) {
  std::vector<int> ids(work.size());
  for (int t = 0; t < T; ++t) {
    for (size_t e = 0; e < ids.size(); ++e) ids[e] = int(e);
    std::shuffle(ids.begin(), ids.end(), rng);
    for (int j = 0; j < top_k; ++j) {
      work[size_t(ids[size_t(j)])].x_rows.push_back(t);
      work[size_t(ids[size_t(j)])].y_rows.push_back(t * top_k + j);
    }
  }
}

// One grouped launch (kernels/cuda/qgemv_grouped.h) over a Qwen3-30B-A3B layer's gate (or up)
// projections: 128 experts of [768, 2048], T tokens each routed to 8 distinct random experts.
// The figure is the weight bytes of the distinct active experts / time (x and y not counted);
// whole layers rotate, each copy with its own routing, so L2 holds none between calls.
void bench_grouped(const Format& f, int T, double copy_gbs, std::mt19937_64& rng) {
  constexpr int kExperts = 128, kTopK = 8;
  constexpr int64_t N = 768, K = 2048;
  const QuantizedMatrix host = random_matrix(f.dtype, f.group, N, K, rng);
  const int64_t layer_bytes = kExperts * host.view().bytes();
  const int copies = int(std::max<int64_t>(2, (kRotateBytes + layer_bytes - 1) / layer_bytes));
  std::vector<DeviceMatrix> w;
  std::vector<cuda::QgemvGrouped> plans;
  w.reserve(size_t(copies * kExperts));
  plans.reserve(size_t(copies));
  double bytes = 0, active = 0;
  for (int c = 0; c < copies; ++c) {
    std::vector<cuda::GroupedExpert> work(kExperts);
    for (int e = 0; e < kExperts; ++e) {
      w.emplace_back(host.view());
      work[size_t(e)].w = w.back().weight();
    }
    route_random(work, T, kTopK, rng);
    for (const auto& g : work) active += g.x_rows.empty() ? 0 : 1;
    plans.emplace_back(work, T, int64_t(T) * kTopK);
    bytes += double(plans.back().weight_bytes());
  }
  bytes /= copies, active /= copies;  // per call, averaged over the routings
  const DeviceBuffer<float> x = uniform_x(int64_t(T) * K, rng);
  DeviceBuffer<float> y(size_t(T * kTopK * N));
  std::vector<float> y_v0, y_got;
  for (const QgemvVariant v : cuda::detail::kQgemvVariants) {
    const ScopedQgemvVariant use(v);
    auto call = [&](int i) { plans[size_t(i % copies)].run(x.get(), y.get(), nullptr); };
    const double s = time_per_call(call, calibrate(call));
    const double gbs = bytes / s / 1e9;
    plans[0].run(x.get(), y.get(), nullptr);
    const double diff = download_rel_diff(y, y_got, y_v0);
    if (v == QgemvVariant::V0) y_v0 = y_got;
    std::printf("%-22s %-11s %3d %-8s %7.1f %9.2f %10.2f %9.0f %6.1f%% %8.1e\n", "grouped qwen3 gate/up", f.name, T,
                cuda::detail::variant_name(v), active, bytes / 1e6, s * 1e6, gbs, 100.0 * gbs / copy_gbs, diff);
  }
}

// A prompt of T tokens through one Qwen3-30B-A3B gate (or up) projection, 128 experts of
// [768, 2048], top-8: the fp32 grouped GEMV (passes of 8 tokens) against its tensor-core form
// (GroupedMath::TensorCoreBf16). TFLOP/s = 2 x T x 8 x N x K / time (against the dense bf16
// peak); `vs gemv`: max |y_tc - y_gemv| / max |y_gemv|, the bf16 rounding.
void bench_grouped_prompt(const Format& f, int T, std::mt19937_64& rng) {
  constexpr int kExperts = 128, kTopK = 8;
  constexpr int64_t N = 768, K = 2048;
  const QuantizedMatrix host = random_matrix(f.dtype, f.group, N, K, rng);
  std::vector<DeviceMatrix> w;
  w.reserve(kExperts);
  std::vector<cuda::GroupedExpert> work(kExperts);
  for (int e = 0; e < kExperts; ++e) {
    w.emplace_back(host.view());
    work[size_t(e)].w = w.back().weight();
  }
  route_random(work, T, kTopK, rng);
  const DeviceBuffer<float> x = uniform_x(int64_t(T) * K, rng);
  DeviceBuffer<float> y(size_t(T * kTopK * N));
  std::vector<float> y_gemv, y_got;
  for (const cuda::GroupedMath math : {cuda::GroupedMath::Fp32, cuda::GroupedMath::TensorCoreBf16}) {
    const bool tc = math == cuda::GroupedMath::TensorCoreBf16;
    if (tc && !cuda::tensor_core_gemm_supported(0)) continue;
    cuda::QgemvGrouped plan;
    plan.set(work, T, int64_t(T) * kTopK, nullptr, math);
    MOE_CUDA_CHECK(cudaStreamSynchronize(nullptr));
    auto call = [&](int) { plan.run(x.get(), y.get(), nullptr); };
    const double s = time_per_call(call, calibrate(call));
    const double tflops = 2.0 * T * kTopK * double(N) * double(K) / s / 1e12;
    plan.run(x.get(), y.get(), nullptr);
    const double diff = download_rel_diff(y, y_got, y_gemv);
    if (!tc) y_gemv = y_got;
    std::printf("%-22s %-11s %5d %-12s %10.2f %9.2f %8.1e\n", "prompt qwen3 gate/up", f.name, T,
                tc ? "tensor-core" : "fp32 gemv", s * 1e6, tflops, diff);
  }
}

// bf16 dense GEMM y[M, N] = x[M, K] . W[N, K]^T for each M; weights rotated past L2 as above.
void bench_dense_bf16(const char* name, int64_t N, int64_t K, double copy_gbs, std::mt19937_64& rng) {
  std::vector<uint16_t> hw(size_t(N * K));
  std::normal_distribution<float> nd(0.0f, 0.02f);
  for (uint16_t& v : hw) v = f32_to_bf16(nd(rng));
  WeightView view;
  view.dtype = DType::BF16, view.data = hw.data(), view.rows = N, view.cols = K;
  const int64_t wbytes = view.bytes();
  const int copies = int(std::max<int64_t>(2, (kRotateBytes + wbytes - 1) / wbytes));
  std::vector<DeviceMatrix> w;
  for (int i = 0; i < copies; ++i) w.emplace_back(view);
  cuda::DenseGemm gemm;
  for (const int M : {1, 8, 512}) {
    std::vector<float> hx(size_t(M * K));
    for (float& v : hx) v = nd(rng);
    DeviceBuffer<float> x(hx.size()), y(size_t(M * N));
    x.upload(hx.data(), hx.size());
    auto call = [&](int i) { cuda::dense_gemm(gemm, x.get(), M, w[size_t(i % copies)].weight(), y.get(), nullptr); };
    const double s = time_per_call(call, calibrate(call));
    const double tflops = 2.0 * double(M) * double(N) * double(K) / s / 1e12;
    char nk[32], gbs[32] = "-", pct[32] = "-";
    std::snprintf(nk, sizeof nk, "%lldx%lld", (long long)N, (long long)K);
    if (M == 1) {
      std::snprintf(gbs, sizeof gbs, "%.0f", double(wbytes) / s / 1e9);
      std::snprintf(pct, sizeof pct, "%.1f%%", 100.0 * double(wbytes) / s / 1e9 / copy_gbs);
    }
    std::printf("%-22s %-11s %4d %9.2f %10.2f %9.1f %9s %7s\n", name, nk, M, double(wbytes) / 1e6, s * 1e6, tflops, gbs, pct);
  }
}

}  // namespace

int main() {
  int ndev = 0;
  const cudaError_t err = cudaGetDeviceCount(&ndev);
  if (err != cudaSuccess || ndev == 0) {
    std::fprintf(stderr, "bench_gpu: no CUDA device: %s\n", err != cudaSuccess ? cudaGetErrorString(err) : "0 devices");
    return 2;
  }
  try {
    std::printf("device: %s\n", cuda::describe_devices().c_str());

    // The ceiling: device-to-device copy, read + write.
    DeviceBuffer<uint8_t> src{size_t(kCopyBytes)}, dst{size_t(kCopyBytes)};
    MOE_CUDA_CHECK(cudaMemset(src.get(), 0x5a, src.bytes()));
    const double copy_s = time_per_call(
        [&](int) { MOE_CUDA_CHECK(cudaMemcpyAsync(dst.get(), src.get(), src.bytes(), cudaMemcpyDeviceToDevice)); }, 5);
    const double copy_gbs = 2.0 * double(kCopyBytes) / copy_s / 1e9;
    std::printf("copy ceiling: %.0f GB/s (device-to-device memcpy of %lld MiB, read + write)\n", copy_gbs,
                (long long)(kCopyBytes >> 20));

    // The link the VRAM tier's expert copies cross: host->device from pinned memory.
    {
      void* pinned = nullptr;
      MOE_CUDA_CHECK(cudaMallocHost(&pinned, size_t(kH2DBytes)));
      std::memset(pinned, 0x5a, size_t(kH2DBytes));
      const double h2d_s = time_per_call(
          [&](int) { MOE_CUDA_CHECK(cudaMemcpyAsync(dst.get(), pinned, size_t(kH2DBytes), cudaMemcpyHostToDevice)); }, 1);
      MOE_CUDA_CHECK(cudaFreeHost(pinned));
      std::printf("pcie h2d: %.1f GB/s (pinned host->device memcpy of %lld MiB)\n\n", double(kH2DBytes) / h2d_s / 1e9,
                  (long long)(kH2DBytes >> 20));
    }

    const Shape shapes[] = {{"qwen3-30b-a3b gate/up", 768, 2048},
                            {"qwen3-30b-a3b down", 2048, 768},
                            {"mixtral w1/w3", 14336, 4096},
                            {"mixtral w2", 4096, 14336}};
    // int8 row and mxfp4 have one kernel form (every variant runs it): timed once, as v0.
    const Format formats[] = {{"int4 g128", DType::Q4, 128}, {"fp8 row", DType::F8E4M3, 0},
                              {"fp8 blk128", DType::F8E4M3, 128}, {"int8 row", DType::I8, 0},
                              {"mxfp4", DType::MXFP4, 32}};
    const int batches[] = {1, 8};

    std::mt19937_64 rng(12345);
    std::printf("%-22s %-11s %-12s %3s %-8s %9s %10s %9s %7s %8s\n", "shape", "format", "[N, K]", "M", "variant", "MB",
                "us/call", "GB/s", "% copy", "vs v0");
    for (const Shape& sh : shapes)
      for (const Format& f : formats) {
        const QuantizedMatrix host = random_matrix(f.dtype, f.group, sh.N, sh.K, rng);
        const int64_t wbytes = host.view().bytes();
        const int copies = int(std::max<int64_t>(2, (kRotateBytes + wbytes - 1) / wbytes));
        std::vector<DeviceMatrix> w;
        for (int i = 0; i < copies; ++i) w.emplace_back(host.view());
        for (const int M : batches) {
          std::vector<float> hx(size_t(M * sh.K));
          std::uniform_real_distribution<float> ud(-1.0f, 1.0f);
          for (float& v : hx) v = ud(rng);
          DeviceBuffer<float> x(hx.size()), y(size_t(M * sh.N));
          x.upload(hx.data(), hx.size());
          std::vector<float> y_v0, y_got;
          for (const QgemvVariant v : cuda::detail::kQgemvVariants) {  // side by side, same inputs
            if ((f.dtype == DType::I8 || f.dtype == DType::MXFP4) && v != QgemvVariant::V0) continue;
            const ScopedQgemvVariant use(v);
            auto call = [&](int i) { cuda::qgemv(x.get(), M, w[size_t(i % copies)].weight(), y.get(), nullptr); };
            const double s = time_per_call(call, calibrate(call));
            const double bytes = double(wbytes) + 4.0 * double(M) * double(sh.K + sh.N);
            const double gbs = bytes / s / 1e9;
            cuda::qgemv(x.get(), M, w[0].weight(), y.get(), nullptr);
            const double diff = download_rel_diff(y, y_got, y_v0);
            if (v == QgemvVariant::V0) y_v0 = y_got;
            char nk[32];
            std::snprintf(nk, sizeof nk, "%lldx%lld", (long long)sh.N, (long long)sh.K);
            std::printf("%-22s %-11s %-12s %3d %-8s %9.2f %10.2f %9.0f %6.1f%% %8.1e\n", sh.model, f.name, nk, M,
                        cuda::detail::variant_name(v), double(wbytes) / 1e6, s * 1e6, gbs, 100.0 * gbs / copy_gbs, diff);
          }
        }
      }
    std::printf("\n(one launch per call; Qwen3 shapes are ~1 MB, so launch latency, not bandwidth, bounds them;\n"
                " variants: kernels/cuda/qgemv_variant.h; vs v0 = max |y - y_v0| / max |y_v0| on the same inputs)\n");

    std::printf("\n%-26s %4s %7s %9s %10s %9s %7s\n", "attention (32q/4kv x 128)", "seqs", "keys", "KV MB", "us/call",
                "GB/s", "% copy");
    bench_attention_decode("attention decode 4k", 1, 4096, copy_gbs, rng);
    bench_attention_decode("attention decode 32k", 1, 32768, copy_gbs, rng);
    bench_attention_decode("attention decode 4k x8", 8, 4096, copy_gbs, rng);
    std::printf("(two launches per call: split-K chunks of 64 keys, then the combine; KV-read GB/s vs the copy ceiling)\n");

    std::printf("\n%-22s %-11s %4s %9s %10s %9s %9s %7s\n", "dense bf16 (cuBLAS)", "[N, K]", "M", "MB", "us/call",
                "TFLOP/s", "GB/s", "% copy");
    bench_dense_bf16("dense bf16 q_proj", 4096, 2048, copy_gbs, rng);
    bench_dense_bf16("dense bf16 o_proj", 2048, 4096, copy_gbs, rng);
    std::printf("(qwen3-30b-a3b attention projections; x narrowed to bf16 in the call; GB/s = weight bytes / time, M = 1)\n");

    std::printf("\n%-22s %-11s %3s %-8s %7s %9s %10s %9s %7s %8s\n", "grouped MoE layer", "format", "T", "variant",
                "experts", "MB", "us/call", "GB/s", "% copy", "vs v0");
    for (const Format& f : {formats[0], formats[1]})
      for (const int T : batches) bench_grouped(f, T, copy_gbs, rng);
    std::printf("(one launch per call: 128 experts [768, 2048], top-8; weight bytes of the active experts)\n");

    std::printf("\n%-22s %-11s %5s %-12s %10s %9s %8s\n", "grouped MoE prompt", "format", "T", "math", "us/call",
                "TFLOP/s", "vs gemv");
    for (const Format& f : {formats[0], formats[1]})
      if (f.dtype == DType::Q4 || f.dtype == DType::Q4Z)
        for (const int T : {512, 4096}) bench_grouped_prompt(f, T, rng);
    std::printf("(one launch per call: T tokens x top-8 over 128 experts [768, 2048]; the tensor-core form rounds x and\n"
                " the weights to bf16; an H200's dense bf16 peak is ~990 TFLOP/s)\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_gpu: %s\n", e.what());
    return 1;
  }
  return 0;
}
