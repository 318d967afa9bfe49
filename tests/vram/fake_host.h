// A HostExpertSource whose experts are byte patterns the tests can recognise on the device,
// and which checks that the tier releases what it acquires.
#pragma once
#include <cstdint>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <vector>

#include "storage/vram/host_expert_source.h"

namespace moe {

class FakeHost final : public HostExpertSource {
 public:
  // n_layers layers of n_experts experts; bytes_of(layer, expert) bytes each.
  FakeHost(int n_layers, int n_experts, std::function<uint64_t(int, int)> bytes_of) : layers_(n_layers), experts_(n_experts) {
    for (int l = 0; l < n_layers; ++l)
      for (int e = 0; e < n_experts; ++e) data_.push_back(pattern({l, e}, bytes_of(l, e)));
  }
  FakeHost(int n_layers, int n_experts, uint64_t bytes)
      : FakeHost(n_layers, n_experts, [bytes](int, int) { return bytes; }) {}

  static std::vector<uint8_t> pattern(ExpertKey k, uint64_t n) {
    std::vector<uint8_t> v(n);
    for (uint64_t i = 0; i < n; ++i) v[i] = uint8_t(k.layer * 31 + k.expert * 7 + int(i % 251));
    return v;
  }

  int n_layers() const override { return layers_; }
  int n_experts(int) const override { return experts_; }
  uint64_t bytes(ExpertKey k) const override { return data_[at(k)].size(); }
  const uint8_t* acquire(ExpertKey k) override {
    std::lock_guard lk(mu_);
    ++outstanding_;
    ++acquires_;
    return data_[at(k)].data();
  }
  void release(ExpertKey) override {
    std::lock_guard lk(mu_);
    if (--outstanding_ < 0) throw std::logic_error("fake host: release without acquire");
  }
  int outstanding() const {
    std::lock_guard lk(mu_);
    return outstanding_;
  }
  int acquires() const {
    std::lock_guard lk(mu_);
    return acquires_;
  }

 private:
  size_t at(ExpertKey k) const { return size_t(k.layer) * size_t(experts_) + size_t(k.expert); }
  int layers_, experts_;
  std::vector<std::vector<uint8_t>> data_;
  mutable std::mutex mu_;
  int outstanding_ = 0, acquires_ = 0;
};

}  // namespace moe
