#include "storage/vram/fake_device.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

#include "storage/tier/budget.h"

namespace moe {

namespace {
constexpr uint64_t kAlign = 256;  // cudaMalloc returns at least 256-byte aligned pointers
uint64_t round_up(uint64_t v) { return (v + kAlign - 1) / kAlign * kAlign; }
}  // namespace

FakeDevice::FakeDevice(FakeDeviceOptions o) : opts_(o) {
  if (!(o.bytes_per_s > 0) || !(o.latency_s >= 0))
    throw std::invalid_argument("fake device: bytes_per_s must be > 0 and latency_s >= 0");
}

FakeDevice::~FakeDevice() {
  for (auto& [p, n] : pinned_) delete[] static_cast<uint8_t*>(p);
}

uint64_t FakeDevice::free_bytes() const {
  std::lock_guard lk(mu_);
  return opts_.total_bytes - allocated_;
}

DeviceAddr FakeDevice::allocate(uint64_t bytes) {
  std::lock_guard lk(mu_);
  const uint64_t n = round_up(std::max<uint64_t>(bytes, 1));
  if (n > opts_.total_bytes - allocated_)
    throw std::runtime_error(fmt::format("fake device: cannot allocate {}: {} free of {}", format_bytes(n),
                                         format_bytes(opts_.total_bytes - allocated_), format_bytes(opts_.total_bytes)));
  const DeviceAddr a = next_addr_;
  next_addr_ += n + kAlign;  // a gap, so an overrun never lands in the next allocation
  allocs_[a].assign(n, 0);
  allocated_ += n;
  peak_allocated_ = std::max(peak_allocated_, allocated_);
  return a;
}

void FakeDevice::free(DeviceAddr addr) {
  std::lock_guard lk(mu_);
  settle();
  auto it = allocs_.find(addr);
  if (it == allocs_.end()) throw std::logic_error(fmt::format("fake device: free of unknown address {:#x}", addr));
  allocated_ -= it->second.size();
  allocs_.erase(it);
}

void* FakeDevice::allocate_pinned(uint64_t bytes) {
  std::lock_guard lk(mu_);
  void* p = new uint8_t[std::max<uint64_t>(bytes, 1)]();
  pinned_[p] = bytes;
  pinned_bytes_ += bytes;
  return p;
}

void FakeDevice::free_pinned(void* p) {
  std::lock_guard lk(mu_);
  auto it = pinned_.find(p);
  if (it == pinned_.end()) throw std::logic_error("fake device: free_pinned of a pointer it did not allocate");
  pinned_bytes_ -= it->second;
  delete[] static_cast<uint8_t*>(p);
  pinned_.erase(it);
}

uint8_t* FakeDevice::device_ptr(DeviceAddr addr, uint64_t bytes) const {
  auto it = allocs_.upper_bound(addr);
  if (it == allocs_.begin()) throw std::out_of_range(fmt::format("fake device: address {:#x} is not allocated", addr));
  --it;
  const uint64_t off = addr - it->first;
  if (off + bytes > it->second.size())
    throw std::out_of_range(fmt::format("fake device: {} bytes at {:#x} overrun an allocation of {}", bytes, addr,
                                        it->second.size()));
  return const_cast<uint8_t*>(it->second.data()) + off;
}

const FakeDevice::CopyRecord& FakeDevice::record(CopyTicket t) const {
  if (t == 0 || t > copies_.size()) throw std::out_of_range(fmt::format("fake device: unknown copy ticket {}", t));
  return copies_[t - 1];
}

void FakeDevice::settle() const {
  size_t n = 0;
  for (; n < pending_.size(); ++n) {
    const CopyRecord& r = copies_[pending_[n].ticket - 1];
    if (r.end > now_) break;  // FIFO: later copies end later
    std::memcpy(device_ptr(r.dst, r.bytes), pending_[n].src, r.bytes);
  }
  pending_.erase(pending_.begin(), pending_.begin() + std::ptrdiff_t(n));
}

CopyTicket FakeDevice::copy_to_device(DeviceAddr dst, const void* src, uint64_t bytes) {
  std::lock_guard lk(mu_);
  settle();
  device_ptr(dst, bytes);  // bounds check now, where the caller's mistake is
  CopyRecord r;
  r.ticket = copies_.size() + 1;
  r.dst = dst;
  r.bytes = bytes;
  r.enqueued = now_;
  r.start = std::max(now_, copies_.empty() ? 0.0 : copies_.back().end);
  r.end = r.start + opts_.latency_s + double(bytes) / opts_.bytes_per_s;
  copies_.push_back(r);
  pending_.push_back({r.ticket, src});
  uint64_t in_flight = 0;
  for (const Pending& p : pending_) in_flight += copies_[p.ticket - 1].bytes;
  max_in_flight_ = std::max(max_in_flight_, in_flight);
  return r.ticket;
}

bool FakeDevice::done(CopyTicket t) {
  std::lock_guard lk(mu_);
  return record(t).end <= now_;
}

void FakeDevice::wait(CopyTicket t) {
  std::lock_guard lk(mu_);
  const double end = record(t).end;
  if (end <= now_) return;
  waits_.push_back(t);
  now_ = end;
  settle();
}

double FakeDevice::elapsed_s(CopyTicket t) {
  std::lock_guard lk(mu_);
  const CopyRecord& r = record(t);
  if (r.end > now_) throw std::logic_error(fmt::format("fake device: elapsed_s of copy {} before it is done", t));
  return r.end - r.start;
}

double FakeDevice::now() const {
  std::lock_guard lk(mu_);
  return now_;
}

void FakeDevice::advance(double seconds) {
  std::lock_guard lk(mu_);
  now_ += seconds;
  settle();
}

void FakeDevice::advance_to(double t) {
  std::lock_guard lk(mu_);
  now_ = std::max(now_, t);
  settle();
}

void FakeDevice::finish_all() {
  std::lock_guard lk(mu_);
  if (!copies_.empty()) now_ = std::max(now_, copies_.back().end);
  settle();
}

std::vector<FakeDevice::CopyRecord> FakeDevice::copies() const {
  std::lock_guard lk(mu_);
  return copies_;
}

std::vector<CopyTicket> FakeDevice::waits() const {
  std::lock_guard lk(mu_);
  return waits_;
}

uint64_t FakeDevice::bytes_in_flight() const {
  std::lock_guard lk(mu_);
  settle();
  uint64_t n = 0;
  for (const Pending& p : pending_) n += copies_[p.ticket - 1].bytes;
  return n;
}

uint64_t FakeDevice::max_bytes_in_flight() const {
  std::lock_guard lk(mu_);
  return max_in_flight_;
}

uint64_t FakeDevice::allocated_bytes() const {
  std::lock_guard lk(mu_);
  return allocated_;
}

uint64_t FakeDevice::peak_allocated_bytes() const {
  std::lock_guard lk(mu_);
  return peak_allocated_;
}

uint64_t FakeDevice::pinned_bytes() const {
  std::lock_guard lk(mu_);
  return pinned_bytes_;
}

std::vector<uint8_t> FakeDevice::read(DeviceAddr addr, uint64_t bytes) const {
  std::lock_guard lk(mu_);
  settle();
  const uint8_t* p = device_ptr(addr, bytes);
  return {p, p + bytes};
}

}  // namespace moe
