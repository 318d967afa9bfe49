#include "storage/vram/vram_tier.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

#include "storage/tier/budget.h"

namespace moe {

namespace {

constexpr uint64_t kSlotAlign = 256;  // device allocations and kernels' vector loads
constexpr size_t kDirectLoadDepth = 4;  // load_all with direct copies: host records held at once (<= top_k)

uint64_t largest_expert(const HostExpertSource& h) {
  uint64_t m = 0;
  for (int l = 0; l < h.n_layers(); ++l)
    for (int e = 0; e < h.n_experts(l); ++e) m = std::max(m, h.bytes({l, e}));
  if (m == 0) throw std::invalid_argument("vram tier: the model has no experts");
  return (m + kSlotAlign - 1) / kSlotAlign * kSlotAlign;
}

size_t count_experts(const HostExpertSource& h) {
  size_t n = 0;
  for (int l = 0; l < h.n_layers(); ++l) n += size_t(h.n_experts(l));
  return n;
}

}  // namespace

VramTier::VramTier(HostExpertSource& host, DeviceMemory& mem, CopyEngine& copy, VramOptions o)
    : host_(host),
      mem_(mem),
      copy_(copy),
      policy_(o.policy ? std::move(o.policy) : make_lru_policy()),
      slot_bytes_(largest_expert(host)) {
  if (!host.direct_copy())
    staging_ = std::make_unique<StagingPool>(mem, o.staging_bytes ? o.staging_bytes : 4 * slot_bytes_, slot_bytes_);
  const size_t total = count_experts(host);
  const size_t need = size_t(std::max(o.top_k, 1));
  n_slots_ = size_t(std::min<uint64_t>(o.budget_bytes / slot_bytes_, total));
  if (n_slots_ < need)
    throw std::invalid_argument(fmt::format(
        "vram budget {} holds {} expert slot(s) of {}; one step pins {}: raise --vram-budget to at least {}",
        format_bytes(o.budget_bytes), o.budget_bytes / slot_bytes_, format_bytes(slot_bytes_), need,
        format_bytes(need * slot_bytes_)));
  all_resident_ = n_slots_ == total;
  // The host source promised room for one step's top_k records pinned at once, no more.
  direct_depth_ = std::min<size_t>(kDirectLoadDepth, need);
  prefetch_cap_ = o.max_prefetch_inflight_bytes ? o.max_prefetch_inflight_bytes : slot_bytes_;
  spec_cap_ = size_t(std::clamp(o.prefetch_share, 0.0, 1.0) * double(n_slots_));

  base_.assign(size_t(host.n_layers()) + 1, 0);
  for (int l = 0; l < host.n_layers(); ++l) base_[size_t(l) + 1] = base_[size_t(l)] + size_t(host.n_experts(l));
  entries_.resize(base_.back());
  base_addr_ = mem_.allocate(device_bytes());
  slot_owner_.assign(n_slots_, ExpertKey{-1, -1});
  for (size_t i = n_slots_; i-- > 0;) free_slots_.push_back(int(i));  // slot 0 first
  if (all_resident_) {
    try {
      load_all();
    } catch (...) {
      drain();
      mem_.free(base_addr_);
      throw;
    }
  }
}

VramTier::~VramTier() {
  {
    std::lock_guard lk(mu_);
    queue_.clear();  // nobody will use them: only copies already on the engine are waited for
  }
  try {
    drain();
  } catch (...) {
    // A device error at shutdown: nothing left to report it to.
  }
  mem_.free(base_addr_);
}

size_t VramTier::index(int layer, int expert) const {
  if (layer < 0 || size_t(layer) + 1 >= base_.size() || expert < 0 ||
      base_[size_t(layer)] + size_t(expert) >= base_[size_t(layer) + 1])
    throw std::out_of_range(fmt::format("vram tier: no expert {} in layer {}", expert, layer));
  return base_[size_t(layer)] + size_t(expert);
}

// Everything fits: copy every expert once, slot i for entry i, then never touch the tables
// under a lock again. Staging buffers are recycled by waiting for the oldest copy.
void VramTier::load_all() {
  std::unique_lock lk(mu_);
  for (int l = 0; l < host_.n_layers(); ++l)
    for (int e = 0; e < host_.n_experts(l); ++e) {
      const ExpertKey k{l, e};
      Entry& en = entry(k);
      en.slot = int32_t(index(l, e));
      slot_owner_[size_t(en.slot)] = k;
      en.state = State::Copying;
      // A staging buffer, or (direct copies) a bound on host records held at once.
      int s = staging_ ? staging_->take() : -1;
      if (staging_ ? s < 0 : inflight_.size() >= direct_depth_) {
        copy_.wait(inflight_.front().ticket);
        retire(0);
        if (staging_) s = staging_->take();
      }
      submit(k, s, false);
    }
  free_slots_.clear();
  lk.unlock();
  drain();
  lk.lock();
  stats_ = {};  // the initial load is not traffic of any step
}

CopyTicket VramTier::submit(ExpertKey k, int s, bool prefetch) {
  Entry& en = entry(k);
  const uint64_t n = host_.bytes(k);
  bool held = false;
  CopyTicket t = 0;
  try {
    const uint8_t* src = nullptr;
    if (staging_) {
      host_.copy_to(k, staging_->data(s));
      src = staging_->data(s);
    } else {
      src = host_.acquire(k);  // read by the engine; released when the copy retires
      held = true;
    }
    t = copy_.copy_to_device(slot_addr(en.slot), src, n);
  } catch (...) {
    // The host could not provide it (a read error, no room to pin it) or the copy failed: the
    // expert goes back to Absent, giving up its slot and buffer, and the caller gets the error.
    if (held) host_.release(k);
    if (staging_ && s >= 0) staging_->give(s);
    en.pins = 0;
    evict_slot(k);
    --stats_.evictions;  // an undo, not an eviction
    throw;
  }
  en.state = State::Copying;
  en.ticket = t;
  inflight_.push_back({k, t, s, n, prefetch});
  stats_.bytes_copied += n;
  if (prefetch) {
    ++stats_.prefetch_copies;
    prefetch_inflight_bytes_ += n;
    stats_.max_prefetch_inflight_bytes = std::max(stats_.max_prefetch_inflight_bytes, prefetch_inflight_bytes_);
  } else {
    ++stats_.demand_copies;
  }
  return t;
}

void VramTier::retire(size_t i) {
  const InFlight f = inflight_[i];
  inflight_.erase(inflight_.begin() + std::ptrdiff_t(i));
  if (staging_) staging_->give(f.staging);
  else host_.release(f.key);
  if (f.prefetch) prefetch_inflight_bytes_ -= f.bytes;
  Entry& en = entry(f.key);
  en.state = State::Resident;
  en.ticket = 0;
}

void VramTier::pump() {
  for (size_t i = 0; i < inflight_.size();) {
    if (copy_.done(inflight_[i].ticket))
      retire(i);
    else
      ++i;
  }
  // One staging buffer stays free for demand when there are two or more.
  // Direct copies need no buffer: only the in-flight cap holds prefetches back.
  const size_t keep = staging_ && staging_->size() > 1 ? 1 : 0;
  while (!queue_.empty() && (!staging_ || staging_->free_count() > keep)) {
    const ExpertKey k = queue_.front();
    const uint64_t n = host_.bytes(k);
    if (prefetch_inflight_bytes_ > 0 && prefetch_inflight_bytes_ + n > prefetch_cap_) break;
    queue_.pop_front();
    try {
      submit(k, staging_ ? staging_->take() : -1, true);
    } catch (const std::exception&) {
      // A prefetch that cannot be read is dropped (submit undid it); a demand miss of the same
      // expert reads it again and reports the error to its caller.
    }
  }
}

// Blocks (lock released) until the oldest in-flight copy matching pred is done, then retires it.
void VramTier::wait_oldest(std::unique_lock<std::mutex>& lk, bool (*pred)(const InFlight&), uint64_t& counter) {
  auto it = std::find_if(inflight_.begin(), inflight_.end(), pred);
  if (it == inflight_.end()) throw std::logic_error("vram tier: waiting for a copy when none is in flight");
  const CopyTicket t = it->ticket;
  ++counter;
  lk.unlock();
  copy_.wait(t);
  lk.lock();
  pump();
}

int VramTier::take_demand_staging(std::unique_lock<std::mutex>& lk) {
  if (!staging_) return -1;  // direct copies
  for (;;) {
    const int s = staging_->take();
    if (s >= 0) return s;
    // Every buffer is read by a copy in flight: the oldest finishes first (FIFO engine).
    wait_oldest(lk, [](const InFlight&) { return true; }, stats_.staging_waits);
  }
}

void VramTier::evict_slot(ExpertKey victim) {
  Entry& v = entry(victim);
  if (v.speculative) {
    ++stats_.prefetch_wasted;
    --spec_slots_;
  }
  policy_->on_evict(victim);
  slot_owner_[size_t(v.slot)] = {-1, -1};
  free_slots_.push_back(v.slot);
  v = Entry{};
  ++stats_.evictions;
}

int VramTier::take_slot(std::unique_lock<std::mutex>* demand_lk) {
  const bool demand = demand_lk != nullptr;
  for (;;) {
    if (free_slots_.empty()) {
      // Prefetch may not push out a guess that has not had its chance yet.
      auto evictable = [&](ExpertKey k) {
        const Entry& e = entry(k);
        return e.state == State::Resident && e.pins == 0 && (demand || !e.speculative);
      };
      if (auto v = policy_->choose_victim(evictable)) evict_slot(*v);
    }
    if (!free_slots_.empty()) {
      const int s = free_slots_.back();
      free_slots_.pop_back();
      return s;
    }
    if (!demand) return -1;
    // Demand comes first: the least urgent queued prefetch gives up its slot.
    if (!queue_.empty()) {
      const ExpertKey k = queue_.back();
      queue_.pop_back();
      evict_slot(k);
      --stats_.evictions;  // a cancellation, not an eviction
      continue;
    }
    // Only copies in flight left that nobody pinned: wait for the oldest to become evictable.
    const bool any = std::any_of(inflight_.begin(), inflight_.end(), [&](const InFlight& f) { return entry(f.key).pins == 0; });
    if (!any)
      throw std::runtime_error(fmt::format(
          "vram tier: all {} expert slots ({} each) are pinned by experts in use; raise --vram-budget or release "
          "experts before acquiring more",
          n_slots_, format_bytes(slot_bytes_)));
    const CopyTicket t = std::find_if(inflight_.begin(), inflight_.end(), [&](const InFlight& f) {
                           return entry(f.key).pins == 0;
                         })->ticket;
    ++stats_.slot_waits;
    demand_lk->unlock();
    copy_.wait(t);
    demand_lk->lock();
    pump();
  }
}

VramExpert VramTier::acquire(int layer, int expert) {
  const size_t i = index(layer, expert);
  if (all_resident_) {
    // Hot path when everything fits: no lock, no pin, no policy (the table never changes).
    return {slot_addr(int(i)), host_.bytes({layer, expert}), 0, int32_t(i)};
  }
  const ExpertKey k{layer, expert};
  std::unique_lock lk(mu_);
  pump();
  Entry& en = entries_[i];
  if (en.speculative) {
    en.speculative = false;
    --spec_slots_;
    ++stats_.prefetch_used;
  }
  switch (en.state) {
    case State::Resident:
      ++stats_.hits;
      policy_->on_access(k);
      break;
    case State::Copying:
      ++stats_.inflight_hits;
      break;
    case State::Queued: {
      // Promoted: it leaves the prefetch queue and goes to the engine now, as demand.
      ++stats_.inflight_hits;
      auto q = std::find(queue_.begin(), queue_.end(), k);
      // Not queued: another thread's demand miss is staging it right now.
      if (q == queue_.end()) throw std::logic_error("vram tier: acquire from two threads at once is not supported");
      queue_.erase(q);
      ++en.pins;  // keeps its slot while we may wait for a staging buffer
      const int s = take_demand_staging(lk);
      --en.pins;
      submit(k, s, false);
      break;
    }
    case State::Absent: {
      ++stats_.misses;
      const int slot = take_slot(&lk);
      en.slot = slot;
      en.state = State::Queued;  // holds the slot while we may wait for staging
      en.pins = 1;
      slot_owner_[size_t(slot)] = k;
      policy_->on_insert(k);
      const int s = take_demand_staging(lk);
      en.pins = 0;
      submit(k, s, false);
      break;
    }
  }
  ++en.pins;
  return {slot_addr(en.slot), host_.bytes(k), en.state == State::Resident ? 0 : en.ticket, en.slot};
}

bool VramTier::ready(const VramExpert& x) { return x.ticket == 0 || copy_.done(x.ticket); }

void VramTier::wait(const VramExpert& x) {
  if (x.ticket == 0) return;
  std::unique_lock lk(mu_);
  pump();
  if (copy_.done(x.ticket)) return;
  ++stats_.waits;
  lk.unlock();
  copy_.wait(x.ticket);
  lk.lock();
  pump();
}

void VramTier::release(int layer, int expert) {
  const size_t i = index(layer, expert);
  if (all_resident_) return;
  std::lock_guard lk(mu_);
  Entry& en = entries_[i];
  if (en.pins <= 0)
    throw std::logic_error(fmt::format("vram tier: release of layer {} expert {}, which is not acquired", layer, expert));
  --en.pins;
  pump();
}

size_t VramTier::prefetch(std::span<const ExpertKey> keys) {
  if (all_resident_) return 0;
  std::lock_guard lk(mu_);
  pump();
  size_t n = 0;
  for (const ExpertKey& k : keys) {
    Entry& en = entries_[index(k.layer, k.expert)];
    if (en.state != State::Absent) continue;
    if (spec_slots_ >= spec_cap_) break;
    const int slot = take_slot(nullptr);
    if (slot < 0) break;
    en.slot = slot;
    en.state = State::Queued;
    en.speculative = true;
    ++spec_slots_;
    slot_owner_[size_t(slot)] = k;
    policy_->on_insert(k);
    queue_.push_back(k);
    ++n;
  }
  pump();
  return n;
}

void VramTier::poll() {
  if (all_resident_) return;
  std::lock_guard lk(mu_);
  pump();
}

void VramTier::drain() {
  std::unique_lock lk(mu_);
  for (;;) {
    pump();
    if (inflight_.empty()) {
      if (queue_.empty()) return;
      // Queued prefetches wait only for the cap; with nothing in flight pump submits them.
      continue;
    }
    const CopyTicket t = inflight_.back().ticket;
    lk.unlock();
    copy_.wait(t);
    lk.lock();
  }
}

bool VramTier::present(ExpertKey k) const {
  const size_t i = index(k.layer, k.expert);
  if (all_resident_) return true;
  std::lock_guard lk(mu_);
  return entries_[i].state != State::Absent;
}

bool VramTier::resident(ExpertKey k) const {
  const size_t i = index(k.layer, k.expert);
  if (all_resident_) return true;
  std::lock_guard lk(mu_);
  return entries_[i].state == State::Resident;
}

int VramTier::pins(ExpertKey k) const {
  const size_t i = index(k.layer, k.expert);
  std::lock_guard lk(mu_);
  return entries_[i].pins;
}

uint64_t VramTier::pending_copy_bytes(ExpertKey k) const {
  const size_t i = index(k.layer, k.expert);
  if (all_resident_) return 0;
  std::lock_guard lk(mu_);
  const Entry& en = entries_[i];
  if (en.state == State::Resident) return 0;
  uint64_t n = 0;
  for (const InFlight& f : inflight_) {
    n += f.bytes;
    if (f.key == k) return n;
  }
  // Absent or queued: a demand copy would go behind everything in flight.
  return n + host_.bytes(k);
}

VramStats VramTier::stats() const {
  std::lock_guard lk(mu_);
  return stats_;
}

void VramTier::reset_stats() {
  std::lock_guard lk(mu_);
  stats_ = {};
}

}  // namespace moe
