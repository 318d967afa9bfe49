// A DeviceMemory + CopyEngine on the host, for tests and dry runs: device memory is host
// memory, and time is a virtual clock that only the caller moves. Copies run one after
// another in enqueue order (like one copy stream): each takes latency_s + bytes / bytes_per_s
// of virtual time from when the previous one ended (or from its enqueue, if later). A copy's
// bytes are read from the host pointer when it completes, not when it is enqueued, so a
// caller that reuses a staging buffer too early gets wrong device bytes, as on a real GPU.
//
// wait(t) is the host blocking: it moves the clock to t's end and records t (only when t was
// not done yet). Tests check order, bytes in flight and who waited for what, never wall time.
// Thread safe (one mutex), so a prefetch thread and the test thread may both use it.
#pragma once
#include <cstdint>
#include <map>
#include <mutex>
#include <vector>

#include "storage/vram/device_api.h"

namespace moe {

struct FakeDeviceOptions {
  uint64_t total_bytes = 1ull << 30;  // device memory
  double bytes_per_s = 10e9;          // the link, host->device
  double latency_s = 10e-6;           // per copy
};

class FakeDevice final : public DeviceMemory, public CopyEngine {
 public:
  struct CopyRecord {
    CopyTicket ticket = 0;
    DeviceAddr dst = 0;
    uint64_t bytes = 0;
    double enqueued = 0, start = 0, end = 0;  // virtual seconds
  };

  explicit FakeDevice(FakeDeviceOptions o = {});
  ~FakeDevice() override;

  // DeviceMemory
  uint64_t total_bytes() const override { return opts_.total_bytes; }
  uint64_t free_bytes() const override;
  DeviceAddr allocate(uint64_t bytes) override;
  void free(DeviceAddr addr) override;
  void* allocate_pinned(uint64_t bytes) override;
  void free_pinned(void* p) override;

  // CopyEngine
  CopyTicket copy_to_device(DeviceAddr dst, const void* src, uint64_t bytes) override;
  bool done(CopyTicket t) override;
  void wait(CopyTicket t) override;
  double elapsed_s(CopyTicket t) override;

  // The clock: copies whose end is <= now are complete (their bytes land on the device).
  double now() const;
  void advance(double seconds);
  void advance_to(double t);
  // Moves the clock to the end of every enqueued copy.
  void finish_all();

  std::vector<CopyRecord> copies() const;  // every copy, in enqueue order
  std::vector<CopyTicket> waits() const;   // tickets the host blocked on, in order
  uint64_t bytes_in_flight() const;        // enqueued, not complete
  uint64_t max_bytes_in_flight() const;    // the most ever, sampled at each enqueue
  uint64_t allocated_bytes() const;
  uint64_t peak_allocated_bytes() const;
  uint64_t pinned_bytes() const;
  // Device bytes at addr (inside one allocation), after completing what the clock allows.
  std::vector<uint8_t> read(DeviceAddr addr, uint64_t bytes) const;

 private:
  struct Pending {
    CopyTicket ticket;
    const void* src;
  };
  void settle() const;  // under mu_: applies completed copies' bytes
  uint8_t* device_ptr(DeviceAddr addr, uint64_t bytes) const;  // under mu_; throws when out of bounds
  const CopyRecord& record(CopyTicket t) const;                 // under mu_; throws for an unknown ticket

  FakeDeviceOptions opts_;
  mutable std::mutex mu_;
  double now_ = 0;
  std::map<DeviceAddr, std::vector<uint8_t>> allocs_;
  DeviceAddr next_addr_ = 0x10000000;
  uint64_t allocated_ = 0, peak_allocated_ = 0;
  std::map<void*, uint64_t> pinned_;
  uint64_t pinned_bytes_ = 0;
  std::vector<CopyRecord> copies_;        // [ticket - 1]
  mutable std::vector<Pending> pending_;  // enqueued, bytes not yet applied, in order
  std::vector<CopyTicket> waits_;
  uint64_t max_in_flight_ = 0;
};

}  // namespace moe
