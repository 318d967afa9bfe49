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
//
//   build-gpu/bench/bench_gpu            (scripts/gpu-check.sh runs it)
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <random>
#include <string>
#include <vector>

#include "kernels/cuda/check.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/device_buffer.h"
#include "kernels/cuda/device_weight.h"
#include "kernels/cuda/qgemv.h"
#include "quant/quantize.h"

using namespace moe;
using moe::cuda::DeviceBuffer;
using moe::cuda::DeviceMatrix;

namespace {

constexpr int64_t kRotateBytes = 512ll << 20;
constexpr int64_t kCopyBytes = 1ll << 30;
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
  if (dtype == DType::F8E4M3) {
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

struct Shape {
  const char* model;
  int64_t N, K;
};
struct Format {
  const char* name;
  DType dtype;
  int32_t group;
};

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
    std::printf("copy ceiling: %.0f GB/s (device-to-device memcpy of %lld MiB, read + write)\n\n", copy_gbs,
                (long long)(kCopyBytes >> 20));

    const Shape shapes[] = {{"qwen3-30b-a3b gate/up", 768, 2048},
                            {"qwen3-30b-a3b down", 2048, 768},
                            {"mixtral w1/w3", 14336, 4096},
                            {"mixtral w2", 4096, 14336}};
    const Format formats[] = {{"int4 g128", DType::Q4, 128}, {"fp8 row", DType::F8E4M3, 0}, {"fp8 blk128", DType::F8E4M3, 128}};
    const int batches[] = {1, 8};

    std::mt19937_64 rng(12345);
    std::printf("%-22s %-11s %-12s %3s %9s %10s %9s %7s\n", "shape", "format", "[N, K]", "M", "MB", "us/call", "GB/s",
                "% copy");
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
          auto call = [&](int i) { cuda::qgemv(x.get(), M, w[size_t(i % copies)].weight(), y.get(), nullptr); };
          const double s = time_per_call(call, calibrate(call));
          const double bytes = double(wbytes) + 4.0 * double(M) * double(sh.K + sh.N);
          const double gbs = bytes / s / 1e9;
          char nk[32];
          std::snprintf(nk, sizeof nk, "%lldx%lld", (long long)sh.N, (long long)sh.K);
          std::printf("%-22s %-11s %-12s %3d %9.2f %10.2f %9.0f %6.1f%%\n", sh.model, f.name, nk, M, double(wbytes) / 1e6,
                      s * 1e6, gbs, 100.0 * gbs / copy_gbs);
        }
      }
    std::printf("\n(one launch per call; Qwen3 shapes are ~1 MB, so launch latency, not bandwidth, bounds them)\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_gpu: %s\n", e.what());
    return 1;
  }
  return 0;
}
