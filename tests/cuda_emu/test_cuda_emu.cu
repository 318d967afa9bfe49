// The CUDA emulator's own tests: what it promises to compute (shuffles, barriers, conversions,
// graphs) and what it promises to refuse or expose (a missing barrier, a deadlock, launch limits,
// calls during capture, copies in the wrong direction, unwritten memory). Built only with
// -DMOE_CUDA_EMU=ON, as a .cu file, so translate.py's launches are tested too.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "quant/dtype.h"

namespace {

// Device buffer of n T, freed at scope exit.
template <class T>
struct Dev {
  T* p = nullptr;
  explicit Dev(size_t n) { EXPECT_EQ(cudaMalloc(&p, n * sizeof(T)), cudaSuccess); }
  ~Dev() { cudaFree(p); }
};

// Clears a sticky error a test provoked on purpose, so the next test starts clean.
struct ResetAfter {
  ~ResetAfter() { cudaDeviceReset(); }
};

__global__ void xor_sum(const float* x, float* out) {
  float v = x[threadIdx.x];
  for (int off = 16; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
  out[threadIdx.x] = v;
}

__global__ void broadcast_and_down(const int* x, int* from_lane3, int* down2) {
  const int v = x[threadIdx.x];
  from_lane3[threadIdx.x] = __shfl_sync(0xffffffffu, v, 3);
  down2[threadIdx.x] = __shfl_down_sync(0xffffffffu, v, 2);
}

// Each block reverses its n values through shared memory; with `barrier` false the read does not
// wait for the other threads' writes.
template <bool barrier>
__global__ void reverse(const float* x, float* out, int n) {
  __shared__ float buf[256];
  const float* xb = x + blockIdx.x * n;
  buf[threadIdx.x] = xb[threadIdx.x];
  if (barrier) __syncthreads();
  out[blockIdx.x * n + threadIdx.x] = buf[n - 1 - threadIdx.x];
}

// Lanes 0-15 of each warp wait at a shuffle that names lanes 16-31, which wait at __syncthreads.
__global__ void deadlock(float* out) {
  if (threadIdx.x % 32 < 16) out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 1);
  else __syncthreads();
}

__global__ void fill_dynamic(float* out, int n) {
  extern __shared__ float dyn[];
  for (int i = threadIdx.x; i < n; i += blockDim.x) dyn[i] = float(i % 7);
  __syncthreads();
  float s = 0;
  for (int i = 0; i < n; ++i) s += dyn[i];
  if (threadIdx.x == 0) out[blockIdx.x] = s;
}

__global__ void add_one(float* x, int n) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) x[i] += 1.0f;
}

__global__ void coords(int* out) {
  const int t = (blockIdx.y * gridDim.x + blockIdx.x) * blockDim.x * blockDim.y + threadIdx.y * blockDim.x + threadIdx.x;
  out[t] = int(blockIdx.x) * 1000 + int(blockIdx.y) * 100 + int(threadIdx.y) * 10 + int(threadIdx.x);
}

}  // namespace

TEST(CudaEmu, XorShuffleSumsEachWarp) {
  std::vector<float> x(64);
  for (int i = 0; i < 64; ++i) x[size_t(i)] = float(i);
  Dev<float> dx(64), dy(64);
  cudaMemcpy(dx.p, x.data(), 64 * 4, cudaMemcpyHostToDevice);
  xor_sum<<<1, 64>>>(dx.p, dy.p);
  ASSERT_EQ(cudaGetLastError(), cudaSuccess);
  std::vector<float> y(64);
  cudaMemcpy(y.data(), dy.p, 64 * 4, cudaMemcpyDeviceToHost);
  for (int i = 0; i < 64; ++i) EXPECT_EQ(y[size_t(i)], i < 32 ? 496.0f : 1520.0f) << i;  // 0..31, 32..63
}

TEST(CudaEmu, BroadcastAndDownShuffles) {
  std::vector<int> x(32);
  for (int i = 0; i < 32; ++i) x[size_t(i)] = 100 + i;
  Dev<int> dx(32), da(32), db(32);
  cudaMemcpy(dx.p, x.data(), 32 * 4, cudaMemcpyHostToDevice);
  broadcast_and_down<<<1, 32>>>(dx.p, da.p, db.p);
  std::vector<int> a(32), b(32);
  cudaMemcpy(a.data(), da.p, 32 * 4, cudaMemcpyDeviceToHost);
  cudaMemcpy(b.data(), db.p, 32 * 4, cudaMemcpyDeviceToHost);
  for (int i = 0; i < 32; ++i) {
    EXPECT_EQ(a[size_t(i)], 103);
    EXPECT_EQ(b[size_t(i)], i + 2 < 32 ? 102 + i : 100 + i) << i;  // past the warp: its own value
  }
}

TEST(CudaEmu, GridAndBlockCoordinates) {
  Dev<int> d(2 * 3 * 4 * 5);
  coords<<<dim3(2, 3), dim3(4, 5)>>>(d.p);
  std::vector<int> h(120);
  cudaMemcpy(h.data(), d.p, 120 * 4, cudaMemcpyDeviceToHost);
  EXPECT_EQ(h[0], 0);
  EXPECT_EQ(h[119], 1 * 1000 + 2 * 100 + 4 * 10 + 3);
  EXPECT_EQ(h[20 + 6], 1000 + 10 + 2);  // block (1, 0), thread (2, 1)
}

// A missing barrier shows: the first threads read shared memory the later ones have not written
// yet (here the previous block's values).
TEST(CudaEmu, MissingBarrierReadsStaleSharedMemory) {
  constexpr int n = 128;
  std::vector<float> x(2 * n);
  for (int i = 0; i < 2 * n; ++i) x[size_t(i)] = float(i + 1);
  Dev<float> dx(2 * n), dy(2 * n);
  cudaMemcpy(dx.p, x.data(), 2 * n * 4, cudaMemcpyHostToDevice);
  const auto wrong = [&] {
    std::vector<float> y(2 * n);
    cudaMemcpy(y.data(), dy.p, 2 * n * 4, cudaMemcpyDeviceToHost);
    int bad = 0;
    for (int b = 0; b < 2; ++b)
      for (int i = 0; i < n; ++i) bad += y[size_t(b * n + i)] != x[size_t(b * n + n - 1 - i)] ? 1 : 0;
    return bad;
  };
  reverse<true><<<2, n>>>(dx.p, dy.p, n);
  EXPECT_EQ(wrong(), 0);
  reverse<false><<<2, n>>>(dx.p, dy.p, n);
  EXPECT_GE(wrong(), n);  // at least the first half of each block
}

TEST(CudaEmu, DeadlockIsReportedAndSticky) {
  ResetAfter reset;
  Dev<float> d(64);
  deadlock<<<1, 64>>>(d.p);
  EXPECT_EQ(cudaGetLastError(), cudaErrorLaunchFailure);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaErrorLaunchFailure);  // as after a fault on a GPU
  std::vector<float> h(4);
  EXPECT_EQ(cudaMemcpy(h.data(), d.p, 16, cudaMemcpyDeviceToHost), cudaErrorLaunchFailure);
  cudaDeviceReset();
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
}

TEST(CudaEmu, LaunchLimitsAreChecked) {
  Dev<float> d(8);
  add_one<<<1, 1025>>>(d.p, 8);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration);
  add_one<<<dim3(1, 65536), 32>>>(d.p, 8);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration);
  // Over 48 KiB of dynamic shared memory needs the kernel's attribute raised first.
  constexpr int n = 16384;  // 64 KiB of floats
  fill_dynamic<<<1, 256, n * sizeof(float)>>>(d.p, n);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidValue);
  ASSERT_EQ(cudaFuncSetAttribute(fill_dynamic, cudaFuncAttributeMaxDynamicSharedMemorySize, n * 4), cudaSuccess);
  fill_dynamic<<<2, 256, n * sizeof(float)>>>(d.p, n);
  ASSERT_EQ(cudaGetLastError(), cudaSuccess);
  float h[2];
  cudaMemcpy(h, d.p, 8, cudaMemcpyDeviceToHost);
  float want = 0;
  for (int i = 0; i < n; ++i) want += float(i % 7);  // the kernel's order
  EXPECT_EQ(h[0], want);
  EXPECT_EQ(h[1], h[0]);
  EXPECT_EQ(cudaFuncSetAttribute(fill_dynamic, cudaFuncAttributeMaxDynamicSharedMemorySize, 228 * 1024),
            cudaErrorInvalidValue);
}

TEST(CudaEmu, GraphsRecordAndReplay) {
  cudaStream_t s;
  ASSERT_EQ(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
  Dev<float> d(100);
  ASSERT_EQ(cudaMemsetAsync(d.p, 0, 400, s), cudaSuccess);
  ASSERT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  add_one<<<2, 32, 0, s>>>(d.p, 100);
  add_one<<<2, 32, 0, s>>>(d.p, 100);
  float h = -1;
  cudaMemcpyAsync(&h, d.p + 7, 4, cudaMemcpyDeviceToHost, s);
  EXPECT_EQ(h, -1.0f);  // recorded, not run
  cudaGraph_t g;
  ASSERT_EQ(cudaStreamEndCapture(s, &g), cudaSuccess);
  cudaGraphExec_t e;
  ASSERT_EQ(cudaGraphInstantiate(&e, g, 0), cudaSuccess);
  ASSERT_EQ(cudaGraphLaunch(e, s), cudaSuccess);
  EXPECT_EQ(h, 2.0f);
  ASSERT_EQ(cudaGraphLaunch(e, s), cudaSuccess);
  EXPECT_EQ(h, 4.0f);
  cudaGraphExecDestroy(e);
  cudaGraphDestroy(g);
  cudaStreamDestroy(s);
}

TEST(CudaEmu, CallsRefusedDuringCaptureInvalidateIt) {
  cudaStream_t s;
  ASSERT_EQ(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
  for (int what = 0; what < 3; ++what) {
    ASSERT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal), cudaSuccess);
    void* p = nullptr;
    const cudaError_t e = what == 0 ? cudaMalloc(&p, 64) : what == 1 ? cudaStreamSynchronize(s) : cudaDeviceSynchronize();
    EXPECT_EQ(e, cudaErrorStreamCaptureUnsupported) << what;
    cudaGraph_t g;
    EXPECT_EQ(cudaStreamEndCapture(s, &g), cudaErrorStreamCaptureInvalidated) << what;
    EXPECT_EQ(g, nullptr);
  }
  cudaGetLastError();
  cudaStreamDestroy(s);
}

TEST(CudaEmu, CopiesMustMatchWherePointersLie) {
  Dev<float> d(16);
  std::vector<float> a(16), b(16);
  EXPECT_EQ(cudaMemcpy(a.data(), b.data(), 64, cudaMemcpyHostToDevice), cudaErrorInvalidValue);  // host as device
  EXPECT_EQ(cudaMemcpy(d.p, a.data(), 64, cudaMemcpyDeviceToHost), cudaErrorInvalidValue);       // reversed
  EXPECT_EQ(cudaMemcpy(d.p, a.data(), 68, cudaMemcpyHostToDevice), cudaErrorInvalidValue);       // past the end
  EXPECT_EQ(cudaMemcpy(d.p, a.data(), 64, cudaMemcpyHostToDevice), cudaSuccess);
  EXPECT_EQ(cudaFree(a.data()), cudaErrorInvalidValue);
  cudaGetLastError();
}

TEST(CudaEmu, NewDeviceMemoryReadsAsNaN) {
  Dev<float> d(8);
  float h[8];
  cudaMemcpy(h, d.p, sizeof h, cudaMemcpyDeviceToHost);
  for (float v : h) EXPECT_TRUE(std::isnan(v));
}

// The conversions are quant/dtype.h's (tested there); here, that the intrinsics reach them.
TEST(CudaEmu, HalfAndBfloat16Intrinsics) {
  EXPECT_EQ(__half2float(__ushort_as_half(0x3c00)), 1.0f);
  EXPECT_EQ(__half2float(__ushort_as_half(0x0001)), 5.9604645e-08f);  // the smallest subnormal
  EXPECT_EQ(__half_as_ushort(__float2half_rn(65519.0f)), 0x7bffu);   // rounds down to the largest
  EXPECT_EQ(__half_as_ushort(__float2half_rn(65520.0f)), 0x7c00u);   // rounds up to infinity
  EXPECT_EQ(__half_as_ushort(__float2half_rn(1.0f + 0x1p-11f)), 0x3c00u);  // a tie: to even
  EXPECT_EQ(__bfloat162float(__float2bfloat16_rn(1.0f + 0x1p-8f)), 1.0f);  // a tie: to even
  EXPECT_EQ(__bfloat162float(__float2bfloat16_rn(-3.0f)), -3.0f);
}
