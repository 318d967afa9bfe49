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
      pool_(opts.budget_bytes),
      prefetch_share_(opts.prefetch_share) {
  if (!catalog_ || !reader_) throw std::invalid_argument("TieredExperts: a catalog and a reader are required");
  if (!(opts.prefetch_share >= 0.0 && opts.prefetch_share <= 1.0))
    throw std::invalid_argument(fmt::format("prefetch share {} must be between 0 and 1", opts.prefetch_share));
  demand_reserve_ = check_budget(opts.budget_bytes, *catalog_, opts.top_k);
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
  layer_bytes_.assign(size_t(catalog_->n_layers()), 0);
  if (opts.split_per_layer) {
    int moe_layers = 0;
    for (int l = 0; l < catalog_->n_layers(); ++l) moe_layers += catalog_->n_experts(l) > 0;
    layer_quota_ = moe_layers ? opts.budget_bytes / uint64_t(moe_layers) : 0;
  }
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

void TieredExperts::on_hit(Slot& s, ExpertKey k, TierLayerStats& ls) {
  ++s.pins;
  policy_->on_access(k);
  ++ls.hits;
  if (s.speculative) {  // a prefetch paid off
    s.speculative = false;
    spec_bytes_ -= s.buf.size();
    if (s.epoch == epoch_) ++ls.prefetch_used;  // else prefetched before the counters were reset
  }
}

ExpertWeights TieredExperts::acquire(int layer, int expert) {
  const size_t i = index(layer, expert);
  std::unique_lock lk(mu_);
  Slot& s = slots_[i];
  TierLayerStats& ls = stats_.layers[size_t(layer)];
  for (;;) {
    if (s.state == State::Resident) {  // the hit path: keep it short
      on_hit(s, {layer, expert}, ls);
      return s.views;
    }
    if (s.state == State::Loading) {  // someone else's read: wait for it rather than read twice
      const uint64_t t0 = now_ns();
      ++stats_.inflight_waits;
      loaded_.wait(lk, [&] { return s.state != State::Loading; });
      ls.stall_ns += now_ns() - t0;
      continue;  // Resident: a hit; Absent: that load failed, try ourselves
    }
    std::vector<Pending> p;
    reserve_load({layer, expert}, /*demand=*/true, p);
    ExpertWeights out;
    load_batch(lk, p, /*demand=*/true, &out, {0});
    return out;
  }
}

void TieredExperts::acquire_many(int layer, std::span<const int> experts, ExpertWeights* out) {
  std::vector<Pending> misses;
  std::vector<size_t> miss_j, hits, others;  // indices into experts/out
  std::unique_lock lk(mu_);
  TierLayerStats& ls = stats_.layers[size_t(layer)];
  // Under the lock: undoes this call's pins of experts[js] (all or nothing on a failure).
  const auto unpin = [&](std::span<const size_t> js) {
    for (size_t j : js) --slots_[index(layer, experts[j])].pins;
  };
  try {
    for (size_t j = 0; j < experts.size(); ++j) {
      Slot& s = slots_[index(layer, experts[j])];
      if (s.state == State::Resident) {
        on_hit(s, {layer, experts[j]}, ls);
        out[j] = s.views;
        hits.push_back(j);
      } else if (s.state == State::Loading) {
        others.push_back(j);
      } else {
        reserve_load({layer, experts[j]}, /*demand=*/true, misses);
        miss_j.push_back(j);
      }
    }
  } catch (...) {  // no room: undo the hits and the reservations made so far
    unpin(hits);
    for (Pending& m : misses) drop(m);
    loaded_.notify_all();
    throw;
  }
  if (!misses.empty()) {
    try {
      load_batch(lk, misses, /*demand=*/true, out, miss_j);
    } catch (...) {
      unpin(hits);
      throw;
    }
  }
  lk.unlock();
  // Experts another thread was loading: wait for each (or read it, if that load failed). All or
  // nothing still: a failure here unpins what this call pinned before it.
  for (size_t n = 0; n < others.size(); ++n) {
    try {
      out[others[n]] = acquire(layer, experts[others[n]]);
    } catch (...) {
      lk.lock();
      unpin(hits);
      unpin(miss_j);
      unpin(std::span(others).first(n));
      throw;
    }
  }
}

void TieredExperts::release(int layer, int expert) {
  const size_t i = index(layer, expert);
  std::lock_guard lk(mu_);
  Slot& s = slots_[i];
  if (s.pins <= 0 || s.state != State::Resident)
    throw std::logic_error(fmt::format("release of layer {} expert {}, which is not acquired", layer, expert));
  --s.pins;
}

size_t TieredExperts::prefetch_many(std::span<const ExpertKey> keys) {
  std::vector<Pending> p;
  std::unique_lock lk(mu_);
  for (const ExpertKey& k : keys) {
    if (slots_[index(k.layer, k.expert)].state != State::Absent) continue;
    if (!reserve_load(k, /*demand=*/false, p)) break;  // no room: the rest ranks lower
  }
  if (p.empty()) return 0;
  const size_t n = p.size();
  load_batch(lk, p, /*demand=*/false, nullptr, {});
  return n;
}

bool TieredExperts::prefetch(int layer, int expert) {
  const size_t i = index(layer, expert);
  {
    std::unique_lock lk(mu_);
    Slot& s = slots_[i];
    loaded_.wait(lk, [&] { return s.state != State::Loading; });
    if (s.state == State::Resident) return true;
  }
  const ExpertKey k{layer, expert};
  prefetch_many({&k, 1});
  return resident(layer, expert);
}

bool TieredExperts::reserve_load(ExpertKey k, bool demand, std::vector<Pending>& out) {
  const ExpertRecordRef& rec = catalog_->record(k.layer, k.expert);
  Slot& s = slot(k);
  const uint64_t bytes = expert_cache_bytes(rec);
  // Speculative reads may fill only their share of the budget (not a wanted expert: the running
  // step will acquire it, so it is no guess), and reads in flight (which cannot be evicted) must
  // leave room for one step's demand pins.
  if (!demand && ((!s.wanted && double(spec_bytes_ + bytes) > prefetch_share_ * double(pool_.budget())) ||
                  prefetch_loading_bytes_ + bytes + demand_reserve_ > pool_.budget()))
    return false;
  AlignedBuffer buf = reserve(bytes, k.layer, k.expert, demand);
  if (buf.empty()) return false;
  layer_bytes_[size_t(k.layer)] += buf.size();
  Pending m{k, std::move(buf), rec.compressed ? take_staging(rec.padded_bytes) : AlignedBuffer{}, verify_ && !s.verified};
  s.state = State::Loading;
  s.pins = demand ? 1 : 0;
  s.speculative = !demand;
  s.stale = false;
  if (!demand) spec_bytes_ += m.buf.size(), prefetch_loading_bytes_ += m.buf.size();
  out.push_back(std::move(m));
  return true;
}

void TieredExperts::drop(Pending& m) {
  Slot& s = slot(m.key);
  if (s.speculative) spec_bytes_ -= m.buf.size();
  s.state = State::Absent;
  s.pins = 0;
  s.speculative = false;
  layer_bytes_[size_t(m.key.layer)] -= m.buf.size();
  pool_.give_back(std::move(m.buf));
  if (!m.staging.empty()) staging_.push_back(std::move(m.staging));
}

void TieredExperts::load_batch(std::unique_lock<std::mutex>& lk, std::vector<Pending>& p, bool demand, ExpertWeights* out,
                               const std::vector<size_t>& out_index) {
  // One batch of reads without the lock. Each record is decoded/verified and published as
  // soon as it lands, so the compute thread can use the first experts of a long stream while
  // the disk reads the rest.
  lk.unlock();
  if (demand && demand_listener_) demand_listener_(true);
  const uint64_t t0 = now_ns();
  std::exception_ptr failure;  // the first one; the others are dropped alike
  std::vector<uint8_t> published(p.size(), 0);
  auto landed = [&](size_t i) {
    Pending& m = p[i];
    const int l = m.key.layer, e = m.key.expert;
    ExpertWeights view;
    try {
      // Records stored as is are decoded in place: raw == stored asks the catalog only to verify.
      if (catalog_->record(l, e).compressed) catalog_->decode(l, e, m.staging.data(), m.buf.data(), m.verify);
      else if (m.verify) catalog_->decode(l, e, m.buf.data(), m.buf.data(), true);
      view = catalog_->views(l, e, m.buf.data());
    } catch (...) {
      if (!failure) failure = std::current_exception();
      return;
    }
    lk.lock();
    try {
      publish(m, view, demand);
    } catch (...) {  // the policy's bookkeeping ran out of memory: nothing was changed
      lk.unlock();
      if (!failure) failure = std::current_exception();
      return;
    }
    if (demand) out[out_index[i]] = view;
    published[i] = 1;
    lk.unlock();
    loaded_.notify_all();
  };
  try {
    std::vector<ReadRequest> reqs;
    for (Pending& m : p) {
      const ExpertRecordRef& rec = catalog_->record(m.key.layer, m.key.expert);
      reqs.push_back({rec.offset, rec.padded_bytes, rec.compressed ? m.staging.data() : m.buf.data()});
    }
    reader_->read(reqs, landed);
  } catch (const std::exception& e) {
    if (!failure)
      failure = std::make_exception_ptr(std::runtime_error(
          p.size() == 1 ? fmt::format("loading layer {} expert {}: {}", p[0].key.layer, p[0].key.expert, e.what())
                        : fmt::format("loading {} experts of layer {}: {}", p.size(), p[0].key.layer, e.what())));
  }
  const uint64_t dt = now_ns() - t0;
  if (demand && demand_listener_) demand_listener_(false);

  lk.lock();
  for (size_t i = 0; i < p.size(); ++i) {
    Pending& m = p[i];
    if (!m.staging.empty()) staging_.push_back(std::move(m.staging));
    if (published[i]) continue;
    if (!demand) prefetch_loading_bytes_ -= m.buf.size();
    drop(m);  // read or decode failed
  }
  // The batch's stall is charged once, to its first layer (demand batches are one layer).
  if (demand) stats_.layers[size_t(p[0].key.layer)].stall_ns += dt;
  if (failure && demand)  // all or nothing for the caller: unpin what did land
    for (size_t i = 0; i < p.size(); ++i)
      if (published[i]) --slot(p[i].key).pins;
  loaded_.notify_all();
  if (failure) std::rethrow_exception(failure);
}

void TieredExperts::publish(Pending& m, const ExpertWeights& view, bool demand) {
  // The policy first: it may allocate (and throw); after it nothing can fail.
  if (demand) policy_->on_insert(m.key);
  else policy_->on_prefetch_insert(m.key);
  Slot& s = slot(m.key);
  const ExpertRecordRef& rec = catalog_->record(m.key.layer, m.key.expert);
  if (!demand) prefetch_loading_bytes_ -= m.buf.size();
  s.buf = std::move(m.buf);
  s.views = view;
  s.state = State::Resident;
  if (m.verify) {
    s.verified = true;
    ++stats_.checksum_verifications;
  }
  TierLayerStats& ls = stats_.layers[size_t(m.key.layer)];
  if (demand) {
    ++ls.misses;
    ls.bytes_read += rec.padded_bytes;
  } else {
    ++ls.prefetches;
    ls.prefetch_bytes += rec.padded_bytes;
    s.epoch = epoch_;  // counted in this epoch, so its use or waste is too
  }
}

void TieredExperts::set_wanted(int layer, std::span<const int32_t> experts) {
  std::vector<size_t> idx;
  idx.reserve(experts.size());
  for (int32_t e : experts) idx.push_back(index(layer, e));
  std::lock_guard lk(mu_);
  for (size_t i : wanted_) slots_[i].wanted = false;
  wanted_ = std::move(idx);
  for (size_t i : wanted_) slots_[i].wanted = true;
  // This layer's step is routed: its guesses that it does not want were wrong.
  for (size_t i = base_[size_t(layer)]; i < base_[size_t(layer) + 1]; ++i)
    if (slots_[i].speculative && !slots_[i].wanted) slots_[i].stale = true;
}

void TieredExperts::clear() {
  std::lock_guard lk(mu_);
  for (int l = 0; l < catalog_->n_layers(); ++l)
    for (int e = 0; e < catalog_->n_experts(l); ++e) {
      const Slot& s = slot({l, e});
      if (s.state == State::Resident && s.pins == 0) evict({l, e});
    }
}

AlignedBuffer TieredExperts::reserve(uint64_t bytes, int layer, int expert, bool demand) {
  // First choice: unpinned experts that are neither wanted now (for prefetches) nor fresh
  // guesses; only when there is none, fresh guesses too.
  auto evictable = [this, demand](ExpertKey k) {
    const Slot& v = slot(k);
    return v.state == State::Resident && v.pins == 0 && (demand || !v.wanted);
  };
  auto not_fresh = [&](ExpertKey k) {
    const Slot& v = slot(k);
    return evictable(k) && !(v.speculative && !v.stale);
  };
  // Per-layer split: a layer at its quota makes room among its own experts; one below it
  // takes from layers above theirs. Only a preference: when that finds nothing (a tight
  // budget, everything pinned), any victim will do.
  auto in_scope = [&](ExpertKey k) {
    if (!layer_quota_) return true;
    return layer_bytes_[size_t(layer)] + bytes > layer_quota_ ? k.layer == layer : layer_bytes_[size_t(k.layer)] > layer_quota_;
  };
  for (;;) {
    try {
      AlignedBuffer b = pool_.take(bytes);
      if (!b.empty()) return b;
    } catch (const std::bad_alloc&) {
      throw std::runtime_error(fmt::format("cannot allocate {} for layer {} expert {}: out of memory; lower --ram-budget",
                                           format_bytes(bytes), layer, expert));
    }
    std::optional<ExpertKey> victim;
    if (layer_quota_) {
      victim = policy_->choose_victim([&](ExpertKey k) { return in_scope(k) && not_fresh(k); });
      if (!victim) victim = policy_->choose_victim([&](ExpertKey k) { return in_scope(k) && evictable(k); });
    }
    if (!victim) victim = policy_->choose_victim(not_fresh);
    if (!victim) victim = policy_->choose_victim(evictable);
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
  if (v.speculative) {  // a prefetch that never paid off
    TierLayerStats& ls = stats_.layers[size_t(k.layer)];
    if (v.epoch == epoch_) {
      ++ls.prefetch_wasted;
      ls.prefetch_wasted_bytes += catalog_->record(k.layer, k.expert).padded_bytes;
    }
    spec_bytes_ -= v.buf.size();
    v.speculative = false;
  }
  layer_bytes_[size_t(k.layer)] -= v.buf.size();
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

bool TieredExperts::present(int layer, int expert) const {
  const size_t i = index(layer, expert);
  std::lock_guard lk(mu_);
  return slots_[i].state != State::Absent;
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
  ++epoch_;
  pool_.reset_peaks();
}

void TieredExperts::set_pinner(std::shared_ptr<const HostPinner> p) {
  std::lock_guard lk(mu_);
  pool_.set_pinner(std::move(p));
  // Experts already resident (a warmed tier) too; buffers of loads in flight are pinned when
  // they are handed out again.
  for (Slot& s : slots_)
    if (s.state == State::Resident) pool_.pin(s.buf);
}

}  // namespace moe
