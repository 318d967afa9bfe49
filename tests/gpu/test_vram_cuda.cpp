// The VRAM tier on a real device through CudaDevice: the bytes in every slot are the host
// expert's bytes (copied back with cudaMemcpy), through acquire/release/evict cycles, prefetch
// then acquire, a demand copy behind queued prefetches, and the copy engine's tickets (wait,
// done, stream_wait, elapsed_s, event reuse). The same scenarios as tests/vram/test_vram_tier.cpp
// against FakeDevice; here only the bytes and the counters are checked, never timing.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <random>
#include <stdexcept>
#include <vector>

#include "gpu/gpu_test.h"
#include "kernels/cuda/check.h"
#include "runtime/gpu/cuda_device.h"
#include "storage/vram/vram_tier.h"
#include "vram/fake_host.h"

namespace moe {
namespace {

constexpr uint64_t kExpert = 1 << 20;  // bytes of every fake expert (a multiple of the slot alignment)

VramOptions slots(size_t n, int top_k = 1) {
  VramOptions o;
  o.budget_bytes = n * kExpert;
  o.top_k = top_k;
  return o;
}

std::vector<uint8_t> device_bytes(DeviceAddr addr, uint64_t n) {
  std::vector<uint8_t> v(n);
  MOE_CUDA_CHECK(cudaMemcpy(v.data(), reinterpret_cast<const void*>(addr), n, cudaMemcpyDeviceToHost));
  return v;
}

void expect_holds(const VramExpert& x, ExpertKey k) {
  ASSERT_EQ(x.bytes, kExpert);
  EXPECT_TRUE(device_bytes(x.addr, x.bytes) == FakeHost::pattern(k, x.bytes))
      << "slot " << x.slot << " of layer " << k.layer << " expert " << k.expert << " holds other bytes";
}

TEST(VramCuda, AcquireReleaseEvictKeepsTheHostBytes) {
  SKIP_WITHOUT_GPU();
  CudaDevice d;
  FakeHost h(2, 8, kExpert);
  VramOptions o = slots(3);
  o.staging_bytes = 2 * kExpert;  // staging buffers are reused many times below
  {
    VramTier t(h, d, d, std::move(o));
    EXPECT_EQ(t.slots(), 3u);
    EXPECT_EQ(t.device_bytes(), 3 * kExpert);
    EXPECT_FALSE(t.fully_resident());
    std::mt19937 rng(1);
    for (int i = 0; i < 100; ++i) {
      const ExpertKey k{int(rng() % 2), int(rng() % 8)};
      const VramExpert x = t.acquire(k.layer, k.expert);
      t.wait(x);
      EXPECT_TRUE(t.ready(x));
      expect_holds(x, k);
      t.release(k.layer, k.expert);
    }
    const VramStats s = t.stats();
    EXPECT_EQ(s.hits + s.misses + s.inflight_hits, 100u);
    EXPECT_GT(s.hits, 0u);
    EXPECT_GT(s.evictions, 0u);
    EXPECT_EQ(s.bytes_copied, s.demand_copies * kExpert);
  }
  EXPECT_EQ(h.outstanding(), 0);
}

TEST(VramCuda, EverythingFitsIsCopiedInAtConstruction) {
  SKIP_WITHOUT_GPU();
  CudaDevice d;
  FakeHost h(2, 3, kExpert);
  VramTier t(h, d, d, slots(6));
  ASSERT_TRUE(t.fully_resident());
  for (int l = 0; l < 2; ++l)
    for (int e = 0; e < 3; ++e) {
      const VramExpert x = t.acquire(l, e);
      t.wait(x);
      expect_holds(x, {l, e});
      t.release(l, e);
    }
}

TEST(VramCuda, PrefetchThenAcquire) {
  SKIP_WITHOUT_GPU();
  CudaDevice d;
  FakeHost h(1, 8, kExpert);
  VramOptions o = slots(6);
  o.prefetch_share = 1.0;
  o.max_prefetch_inflight_bytes = 2 * kExpert;
  VramTier t(h, d, d, std::move(o));
  const std::vector<ExpertKey> keys{{0, 1}, {0, 3}, {0, 5}, {0, 6}};
  EXPECT_EQ(t.prefetch(keys), keys.size());
  for (ExpertKey k : keys) EXPECT_TRUE(t.present(k));
  t.drain();
  for (ExpertKey k : keys) {
    EXPECT_TRUE(t.resident(k));
    const VramExpert x = t.acquire(k.layer, k.expert);
    t.wait(x);
    expect_holds(x, k);
    t.release(k.layer, k.expert);
  }
  const VramStats s = t.stats();
  EXPECT_EQ(s.prefetch_copies, 4u);
  EXPECT_EQ(s.prefetch_used, 4u);
  EXPECT_EQ(s.misses, 0u);
  EXPECT_LE(s.max_prefetch_inflight_bytes, 2 * kExpert);
  EXPECT_EQ(h.outstanding(), 0);
}

TEST(VramCuda, DemandCopyWhilePrefetchesAreQueued) {
  SKIP_WITHOUT_GPU();
  CudaDevice d;
  FakeHost h(1, 16, kExpert);
  VramOptions o = slots(8);
  o.prefetch_share = 1.0;
  o.max_prefetch_inflight_bytes = kExpert;  // one on the engine, the rest queued in the tier
  VramTier t(h, d, d, std::move(o));
  const std::vector<ExpertKey> keys{{0, 0}, {0, 1}, {0, 2}, {0, 3}, {0, 4}};
  EXPECT_EQ(t.prefetch(keys), keys.size());
  const VramExpert miss = t.acquire(0, 9);  // not prefetched: a demand copy ahead of the queue
  EXPECT_NE(miss.ticket, 0u);
  const VramExpert queued = t.acquire(0, 4);  // last in the queue: promoted to a demand copy
  t.wait(miss);
  t.wait(queued);
  expect_holds(miss, {0, 9});
  expect_holds(queued, {0, 4});
  t.release(0, 9);
  t.release(0, 4);
  t.drain();
  for (int e = 0; e < 4; ++e) {
    const VramExpert x = t.acquire(0, e);
    t.wait(x);
    expect_holds(x, {0, e});
    t.release(0, e);
  }
  const VramStats s = t.stats();
  EXPECT_EQ(s.misses, 1u);
  // (0, 4) is promoted to a demand copy unless the engine already took it as a prefetch.
  EXPECT_GE(s.demand_copies, 1u);
  EXPECT_EQ(s.demand_copies + s.prefetch_copies, 6u);
  EXPECT_EQ(s.bytes_copied, 6 * kExpert);  // every expert crossed once
  EXPECT_EQ(h.outstanding(), 0);
}

TEST(VramCuda, CopyEngineTickets) {
  SKIP_WITHOUT_GPU();
  CudaDevice d;
  EXPECT_TRUE(d.done(0));
  d.wait(0);
  EXPECT_THROW(d.done(1), std::out_of_range);

  const uint64_t n = 4 * kExpert;
  const std::vector<uint8_t> want = FakeHost::pattern({3, 5}, n);
  uint8_t* pinned = static_cast<uint8_t*>(d.allocate_pinned(n));
  std::copy(want.begin(), want.end(), pinned);
  const DeviceAddr dev = d.allocate(n);
  const CopyTicket t = d.copy_to_device(dev, pinned, n);
  EXPECT_EQ(t, 1u);
  d.wait(t);
  EXPECT_TRUE(d.done(t));
  EXPECT_GT(d.elapsed_s(t), 0.0);
  EXPECT_LT(d.elapsed_s(t), 1.0);
  EXPECT_TRUE(device_bytes(dev, n) == want);

  // The compute stream waits on the ticket, the host does not: a device->device copy enqueued
  // on another stream after stream_wait sees the host->device copy's bytes.
  const DeviceAddr dev2 = d.allocate(n);
  MOE_CUDA_CHECK(cudaMemset(reinterpret_cast<void*>(dev2), 0, n));
  cudaStream_t compute = nullptr;
  MOE_CUDA_CHECK(cudaStreamCreateWithFlags(&compute, cudaStreamNonBlocking));
  std::fill(pinned, pinned + n, uint8_t(0x3c));
  const CopyTicket t2 = d.copy_to_device(dev, pinned, n);
  d.stream_wait(t2, compute);
  MOE_CUDA_CHECK(cudaMemcpyAsync(reinterpret_cast<void*>(dev2), reinterpret_cast<const void*>(dev), n,
                                 cudaMemcpyDeviceToDevice, compute));
  MOE_CUDA_CHECK(cudaStreamSynchronize(compute));
  EXPECT_TRUE(device_bytes(dev2, n) == std::vector<uint8_t>(n, 0x3c));
  MOE_CUDA_CHECK(cudaStreamDestroy(compute));

  // More copies than the event ring: pairs are reused, old tickets read as done.
  const size_t many = CudaDevice::kEventRing + 10;
  CopyTicket last = 0;
  for (size_t i = 0; i < many; ++i) last = d.copy_to_device(dev + (i % 4) * kExpert, pinned, 4096);
  EXPECT_EQ(last, t2 + many);
  d.wait(last);
  EXPECT_TRUE(d.done(t));  // older than the ring
  EXPECT_THROW(d.elapsed_s(t), std::out_of_range);
  EXPECT_GE(d.elapsed_s(last), 0.0);
  d.stream_wait(t, nullptr);

  d.free(dev);
  d.free(dev2);
  d.free_pinned(pinned);
  EXPECT_GT(d.total_bytes(), 0u);
  EXPECT_LE(d.free_bytes(), d.total_bytes());
}

}  // namespace
}  // namespace moe
