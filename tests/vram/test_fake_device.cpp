// FakeDevice: the copy model the tier tests rely on (FIFO, virtual time, bytes applied at
// completion, waits recorded only when the host would have blocked).
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "storage/vram/fake_device.h"

namespace moe {
namespace {

TEST(FakeDevice, CopiesRunInOrderAndCompleteOnlyWhenTheClockPasses) {
  FakeDevice d({1 << 20, 1000.0, 0.5});  // 1000 B/s, 0.5 s per copy
  const DeviceAddr a = d.allocate(4096);
  std::vector<uint8_t> src(1000, 7);
  const CopyTicket t1 = d.copy_to_device(a, src.data(), 1000);  // [0, 1.5]
  const CopyTicket t2 = d.copy_to_device(a, src.data(), 500);   // [1.5, 2.5]
  EXPECT_LT(t1, t2);
  EXPECT_EQ(d.bytes_in_flight(), 1500u);
  EXPECT_FALSE(d.done(t1));
  d.advance(1.4);
  EXPECT_FALSE(d.done(t1));
  d.advance(0.1);
  EXPECT_TRUE(d.done(t1));
  EXPECT_FALSE(d.done(t2));
  EXPECT_EQ(d.bytes_in_flight(), 500u);
  EXPECT_DOUBLE_EQ(d.copies()[1].start, 1.5);
  EXPECT_DOUBLE_EQ(d.copies()[1].end, 2.5);
  EXPECT_DOUBLE_EQ(d.elapsed_s(t1), 1.5);
  EXPECT_THROW(d.elapsed_s(t2), std::logic_error);
}

TEST(FakeDevice, BytesAreReadFromTheHostWhenTheCopyCompletes) {
  FakeDevice d({1 << 20, 1000.0, 0.0});
  const DeviceAddr a = d.allocate(16);
  uint8_t src[16];
  std::memset(src, 1, sizeof src);
  const CopyTicket t = d.copy_to_device(a, src, 16);
  std::memset(src, 2, sizeof src);  // overwritten before the copy ran: the device sees 2s
  d.wait(t);
  EXPECT_EQ(d.read(a, 16), std::vector<uint8_t>(16, 2));
}

TEST(FakeDevice, WaitMovesTheClockAndIsRecordedOnlyWhenItBlocks) {
  FakeDevice d({1 << 20, 1000.0, 0.0});
  const DeviceAddr a = d.allocate(2000);
  std::vector<uint8_t> src(2000);
  const CopyTicket t1 = d.copy_to_device(a, src.data(), 1000);
  const CopyTicket t2 = d.copy_to_device(a + 1000, src.data(), 1000);
  d.wait(t1);
  EXPECT_DOUBLE_EQ(d.now(), 1.0);
  EXPECT_FALSE(d.done(t2));
  d.wait(t1);  // already done: not a block
  EXPECT_EQ(d.waits(), std::vector<CopyTicket>{t1});
}

TEST(FakeDevice, StreamWaitBlocksTheHostLikeWait) {
  // No device streams here: CopyEngine's default stream_wait is wait, recorded the same way.
  FakeDevice d({1 << 20, 1000.0, 0.0});
  const DeviceAddr a = d.allocate(1000);
  std::vector<uint8_t> src(1000);
  const CopyTicket t = d.copy_to_device(a, src.data(), 1000);
  CopyEngine& engine = d;
  engine.stream_wait(t, nullptr);
  EXPECT_TRUE(d.done(t));
  EXPECT_DOUBLE_EQ(d.now(), 1.0);
  EXPECT_EQ(d.waits(), std::vector<CopyTicket>{t});
}

TEST(FakeDevice, AllocationIsBoundedAndOverrunsAreCaught) {
  FakeDevice d({4096, 1e9, 0.0});
  const DeviceAddr a = d.allocate(4000);
  EXPECT_THROW(d.allocate(512), std::runtime_error);
  std::vector<uint8_t> src(8192);
  EXPECT_THROW(d.copy_to_device(a, src.data(), 8192), std::out_of_range);
  d.free(a);
  EXPECT_EQ(d.allocated_bytes(), 0u);
  EXPECT_EQ(d.peak_allocated_bytes(), 4096u);
}

}  // namespace
}  // namespace moe
