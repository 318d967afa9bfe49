#include "storage/tier/tiered_experts.h"

#include <chrono>
#include <exception>
#include <new>
#include <stdexcept>

#include <fmt/format.h>

#include "storage/tier/budget.h"

namespace moe {

namespace {

uint64_t now_ns() {
  return uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
}

}  // namespace

TieredExperts::TieredExperts(std::shared_ptr<const ExpertCatalog> catalog, std::unique_ptr<ExpertReader> reader, TierOptions opts)
    : catalog_(std::move(catalog)),
      reader_(std::move(reader)),
      policy_(opts.policy ? std::move(opts.policy) : make_lru_policy()),
      verify_(opts.verify_checksums),
      pool_(opts.budget_bytes) {
  if (!catalog_ || !reader_) throw std::invalid_argument("TieredExperts: a catalog and a reader are required");
  check_budget(opts.budget_bytes, *catalog_, opts.top_k);
  // Validate every record against the file once, so a bad pack fails here with its name
  // rather than mid-generation.
  const uint64_t end = align_up(reader_->file_size());
  base_.push_back(0);
  for (int l = 0; l < catalog_->n_layers(); ++l) {
    for (int e = 0; e < catalog_->n_experts(l); ++e) {
      const ExpertRecordRef& r = catalog_->record(l, e);
      if (r.offset % kDirectAlign || r.padded_bytes % kDirectAlign || r.padded_bytes < r.stored_bytes)
        throw std::runtime_error(fmt::format("{}: layer {} expert {}: record at offset {} ({} bytes, padded {}) is not "
                                             "4 KiB aligned; rebuild the pack",
                                             catalog_->path().string(), l, e, r.offset, r.stored_bytes, r.padded_bytes));
      if (r.offset + r.padded_bytes > end)
        throw std::runtime_error(fmt::format("{}: layer {} expert {}: record ends at byte {} but the file has {}; the file "
                                             "is truncated",
                                             reader_->path().string(), l, e, r.offset + r.stored_bytes, reader_->file_size()));
    }
    base_.push_back(base_.back() + size_t(catalog_->n_experts(l)));
  }
  slots_.resize(base_.back());
  stats_.layers.resize(size_t(catalog_->n_layers()));
}

TieredExperts::~TieredExperts() = default;

size_t TieredExperts::index(int layer, int expert) const {
  // From base_, not the catalog: no virtual calls on the hit path.
  if (layer < 0 || size_t(layer) + 1 >= base_.size() || expert < 0 ||
      size_t(expert) >= base_[size_t(layer) + 1] - base_[size_t(layer)])
    throw std::out_of_range(fmt::format("{}: no expert {} in layer {} (the pack has {} layers)", catalog_->path().string(),
                                        expert, layer, catalog_->n_layers()));
  return base_[size_t(layer)] + size_t(expert);
}

ExpertWeights TieredExperts::acquire(int layer, int expert) {
  const size_t i = index(layer, expert);
  std::unique_lock lk(mu_);
  Slot& s = slots_[i];
  TierLayerStats& ls = stats_.layers[size_t(layer)];
  for (;;) {
    if (s.state == State::Resident) {  // the hit path: keep it short
      ++s.pins;
      policy_->on_access({layer, expert});
      ++ls.hits;
      return s.views;
    }
    if (s.state == State::Loading) {  // someone else's read: wait for it rather than read twice
      const uint64_t t0 = now_ns();
      ++stats_.inflight_waits;
      loaded_.wait(lk, [&] { return s.state != State::Loading; });
      ls.stall_ns += now_ns() - t0;
      continue;  // Resident: a hit; Absent: that load failed, try ourselves
    }
    load(lk, layer, expert, /*demand=*/true);
    return s.views;
  }
}

void TieredExperts::acquire_many(int layer, std::span<const int> experts, ExpertWeights* out) {
  struct Miss {
    size_t j;  // index into experts/out
    AlignedBuffer buf, staging;
    bool verify;
  };
  std::vector<Miss> misses;
  std::vector<size_t> hits, others;  // pinned here; being loaded by another thread
  std::unique_lock lk(mu_);
  TierLayerStats& ls = stats_.layers[size_t(layer)];
  auto undo = [&] {  // under the lock: unpin the hits, drop the reservations
    for (size_t j : hits) --slots_[index(layer, experts[j])].pins;
    for (Miss& m : misses) {
      Slot& s = slots_[index(layer, experts[m.j])];
      s.state = State::Absent;
      s.pins = 0;
      pool_.give_back(std::move(m.buf));
      if (!m.staging.empty()) staging_.push_back(std::move(m.staging));
    }
    loaded_.notify_all();
  };
  try {
    for (size_t j = 0; j < experts.size(); ++j) {
      Slot& s = slots_[index(layer, experts[j])];
      if (s.state == State::Resident) {
        ++s.pins;
        policy_->on_access({layer, experts[j]});
        ++ls.hits;
        out[j] = s.views;
        hits.push_back(j);
      } else if (s.state == State::Loading) {
        others.push_back(j);
      } else {
        const ExpertRecordRef& rec = catalog_->record(layer, experts[j]);
        Miss m{j, reserve(expert_cache_bytes(rec), layer, experts[j], /*demand=*/true), {}, verify_ && !s.verified};
        if (rec.compressed) m.staging = take_staging(rec.padded_bytes);
        s.state = State::Loading;
        s.pins = 1;
        misses.push_back(std::move(m));
      }
    }
  } catch (...) {
    undo();
    throw;
  }

  // One batch of reads without the lock, then decode/verify each record.
  lk.unlock();
  const uint64_t t0 = now_ns();
  std::exception_ptr failure;
  std::vector<ExpertWeights> views(misses.size());
  try {
    std::vector<ReadRequest> reqs;
    for (Miss& m : misses) {
      const ExpertRecordRef& rec = catalog_->record(layer, experts[m.j]);
      reqs.push_back({rec.offset, rec.padded_bytes, rec.compressed ? m.staging.data() : m.buf.data()});
    }
    try {
      if (!reqs.empty()) reader_->read(reqs);
    } catch (const std::exception& e) {
      throw std::runtime_error(fmt::format("loading {} experts of layer {}: {}", reqs.size(), layer, e.what()));
    }
    for (size_t i = 0; i < misses.size(); ++i) {
      Miss& m = misses[i];
      const int e = experts[m.j];
      if (catalog_->record(layer, e).compressed) catalog_->decode(layer, e, m.staging.data(), m.buf.data(), m.verify);
      else if (m.verify) catalog_->decode(layer, e, m.buf.data(), m.buf.data(), true);
      views[i] = catalog_->views(layer, e, m.buf.data());
    }
  } catch (...) {
    failure = std::current_exception();
  }
  const uint64_t dt = now_ns() - t0;

  lk.lock();
  if (failure) {
    undo();
    std::rethrow_exception(failure);
  }
  for (size_t i = 0; i < misses.size(); ++i) {
    Miss& m = misses[i];
    const int e = experts[m.j];
    const ExpertRecordRef& rec = catalog_->record(layer, e);
    Slot& s = slots_[index(layer, e)];
    if (!m.staging.empty()) staging_.push_back(std::move(m.staging));
    s.buf = std::move(m.buf);
    s.views = views[i];
    s.state = State::Resident;
    if (m.verify) {
      s.verified = true;
      ++stats_.checksum_verifications;
    }
    policy_->on_insert({layer, e});
    ++ls.misses;
    ls.bytes_read += rec.padded_bytes;
    out[m.j] = views[i];
  }
  if (!misses.empty()) ls.stall_ns += dt;
  loaded_.notify_all();
  lk.unlock();
  for (size_t j : others) out[j] = acquire(layer, experts[j]);
}

void TieredExperts::release(int layer, int expert) {
  const size_t i = index(layer, expert);
  std::lock_guard lk(mu_);
  Slot& s = slots_[i];
  if (s.pins <= 0 || s.state != State::Resident)
    throw std::logic_error(fmt::format("release of layer {} expert {}, which is not acquired", layer, expert));
  --s.pins;
}

bool TieredExperts::prefetch(int layer, int expert) {
  const size_t i = index(layer, expert);
  std::unique_lock lk(mu_);
  Slot& s = slots_[i];
  if (s.state == State::Resident) return true;
  if (s.state == State::Loading) {
    loaded_.wait(lk, [&] { return s.state != State::Loading; });
    return s.state == State::Resident;
  }
  return load(lk, layer, expert, /*demand=*/false);
}

bool TieredExperts::load(std::unique_lock<std::mutex>& lk, int layer, int expert, bool demand) {
  const ExpertRecordRef& rec = catalog_->record(layer, expert);
  Slot& s = slots_[index(layer, expert)];
  // Reserve under the lock: the buffer (evicting if needed) and, for compressed records, a
  // staging buffer for the stored bytes.
  AlignedBuffer buf = reserve(expert_cache_bytes(rec), layer, expert, demand);
  if (buf.empty()) return false;
  AlignedBuffer staging = rec.compressed ? take_staging(rec.padded_bytes) : AlignedBuffer{};
  s.state = State::Loading;
  s.pins = demand ? 1 : 0;
  const bool verify = verify_ && !s.verified;

  // Read and decode without the lock.
  lk.unlock();
  const uint64_t t0 = now_ns();
  std::exception_ptr failure;
  ExpertWeights views;
  try {
    uint8_t* dst = rec.compressed ? staging.data() : buf.data();
    try {
      reader_->read({{ReadRequest{rec.offset, rec.padded_bytes, dst}}});
    } catch (const std::exception& e) {
      throw std::runtime_error(fmt::format("loading layer {} expert {}: {}", layer, expert, e.what()));
    }
    // Records stored as is are decoded in place: raw == stored asks the catalog only to verify.
    if (rec.compressed) catalog_->decode(layer, expert, staging.data(), buf.data(), verify);
    else if (verify) catalog_->decode(layer, expert, buf.data(), buf.data(), true);
    views = catalog_->views(layer, expert, buf.data());
  } catch (...) {
    failure = std::current_exception();
  }
  const uint64_t dt = now_ns() - t0;

  // Publish under the lock.
  lk.lock();
  if (!staging.empty()) staging_.push_back(std::move(staging));
  if (failure) {
    s.state = State::Absent;
    s.pins = 0;
    pool_.give_back(std::move(buf));
    loaded_.notify_all();
    std::rethrow_exception(failure);
  }
  s.buf = std::move(buf);
  s.views = views;
  s.state = State::Resident;
  if (verify) {
    s.verified = true;
    ++stats_.checksum_verifications;
  }
  policy_->on_insert({layer, expert});
  TierLayerStats& ls = stats_.layers[size_t(layer)];
  if (demand) {
    ++ls.misses;
    ls.bytes_read += rec.padded_bytes;
    ls.stall_ns += dt;
  } else {
    ++ls.prefetches;
    ls.prefetch_bytes += rec.padded_bytes;
  }
  loaded_.notify_all();
  return true;
}

AlignedBuffer TieredExperts::reserve(uint64_t bytes, int layer, int expert, bool demand) {
  auto evictable = [this](ExpertKey k) {
    const Slot& v = slot(k);
    return v.state == State::Resident && v.pins == 0;
  };
  for (;;) {
    try {
      AlignedBuffer b = pool_.take(bytes);
      if (!b.empty()) return b;
    } catch (const std::bad_alloc&) {
      throw std::runtime_error(fmt::format("cannot allocate {} for layer {} expert {}: out of memory; lower --ram-budget",
                                           format_bytes(bytes), layer, expert));
    }
    const std::optional<ExpertKey> victim = policy_->choose_victim(evictable);
    if (!victim) {
      if (!demand) return {};
      size_t pinned = 0, loading = 0;
      for (const Slot& v : slots_) pinned += v.pins > 0, loading += v.state == State::Loading;
      // Waiting would hang a single-threaded engine forever: say what is wrong instead.
      throw std::runtime_error(fmt::format(
          "ram budget {} is full of pinned experts ({} pinned, {} loading): cannot load layer {} expert {} ({}); "
          "raise --ram-budget or release experts before acquiring more",
          format_bytes(pool_.budget()), pinned, loading, layer, expert, format_bytes(bytes)));
    }
    if (!evictable(*victim))
      throw std::logic_error(fmt::format("eviction policy chose layer {} expert {}, which is pinned or loading",
                                         victim->layer, victim->expert));
    evict(*victim);
  }
}

void TieredExperts::evict(ExpertKey k) {
  Slot& v = slot(k);
  pool_.give_back(std::move(v.buf));
  v.views = {};
  v.state = State::Absent;
  policy_->on_evict(k);
  ++stats_.evictions;
}

AlignedBuffer TieredExperts::take_staging(uint64_t bytes) {
  for (size_t i = 0; i < staging_.size(); ++i)
    if (staging_[i].size() >= bytes) {
      AlignedBuffer b = std::move(staging_[i]);
      staging_.erase(staging_.begin() + ptrdiff_t(i));
      return b;
    }
  AlignedBuffer b(bytes);
  staging_bytes_ += b.size();
  return b;
}

bool TieredExperts::resident(int layer, int expert) const {
  const size_t i = index(layer, expert);
  std::lock_guard lk(mu_);
  return slots_[i].state == State::Resident;
}

int TieredExperts::pins(int layer, int expert) const {
  const size_t i = index(layer, expert);
  std::lock_guard lk(mu_);
  return slots_[i].pins;
}

TierStats TieredExperts::stats() const {
  std::lock_guard lk(mu_);
  TierStats s = stats_;
  s.total = {};
  for (const TierLayerStats& l : s.layers) s.total.add(l);
  s.resident_bytes = pool_.in_use();
  s.peak_resident_bytes = pool_.peak_in_use();
  s.allocated_bytes = pool_.allocated();
  s.peak_allocated_bytes = pool_.peak_allocated();
  s.staging_bytes = staging_bytes_;
  s.budget_bytes = pool_.budget();
  s.resident_experts = 0;
  for (const Slot& v : slots_) s.resident_experts += v.state == State::Resident;
  return s;
}

void TieredExperts::reset_stats() {
  std::lock_guard lk(mu_);
  const size_t n = stats_.layers.size();
  stats_ = {};
  stats_.layers.resize(n);
  pool_.reset_peaks();
}

}  // namespace moe
