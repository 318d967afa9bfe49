#include "runtime/gpu/gpu_kv.h"

#include <algorithm>
#include <utility>

namespace moe::gpu {
namespace {

// A buffer of `cap` rows holding the first `rows` rows of `old`.
cuda::DeviceBuffer<float> regrow(const cuda::DeviceBuffer<float>& old, int64_t rows, int64_t cap, int64_t row,
                                 cudaStream_t stream) {
  cuda::DeviceBuffer<float> b(size_t(cap * row));
  if (rows > 0)
    MOE_CUDA_CHECK(cudaMemcpyAsync(b.get(), old.get(), size_t(rows * row) * sizeof(float), cudaMemcpyDeviceToDevice,
                                   stream));
  return b;
}

void copy(cuda::DeviceBuffer<float>& dst, const cuda::DeviceBuffer<float>& src, cudaStream_t stream) {
  if (dst.size() != src.size()) dst = cuda::DeviceBuffer<float>(src.size());
  if (src.size())
    MOE_CUDA_CHECK(cudaMemcpyAsync(dst.get(), src.get(), src.bytes(), cudaMemcpyDeviceToDevice, stream));
}

// Whether layer l keeps K/V (every layer but a hybrid model's linear ones).
bool kv_layer(const std::vector<bool>& linear, size_t l) { return l >= linear.size() || !linear[l]; }

}  // namespace

GpuKv::GpuKv(int n_layers, int64_t row, bool values, std::vector<bool> linear, int64_t state_floats)
    : row_(row),
      values_(values),
      linear_(std::move(linear)),
      state_floats_(linear_.empty() ? 0 : state_floats),
      k_(size_t(n_layers)),
      v_(size_t(values ? n_layers : 0)),
      state_(size_t(n_layers)) {
  for (size_t l = 0; l < linear_.size() && l < state_.size(); ++l)
    if (linear_[l]) state_[l] = cuda::DeviceBuffer<float>(size_t(state_floats_));
}

void GpuKv::set_length(int64_t n) {
  length_ = n;
  if (int64_t(tokens_.size()) > n) tokens_.resize(size_t(n));
}

void GpuKv::reserve(int64_t n, cudaStream_t stream) {
  if (n <= capacity_) return;
  const int64_t cap = std::max<int64_t>({n, 2 * capacity_, 64});
  std::vector<cuda::DeviceBuffer<float>> old;  // freed only after the copies out of them finish
  for (auto* side : {&k_, &v_})
    for (size_t l = 0; l < side->size(); ++l)
      if (kv_layer(linear_, l)) {
        cuda::DeviceBuffer<float>& b = (*side)[l];
        old.push_back(std::exchange(b, regrow(b, length_, cap, row_, stream)));
      }
  MOE_CUDA_CHECK(cudaStreamSynchronize(stream));
  capacity_ = cap;
}

GpuKv GpuKv::prefix(int64_t n, cudaStream_t stream) const {
  GpuKv p(int(k_.size()), row_, values_, linear_, state_floats_);
  p.capacity_ = std::max<int64_t>(n, 64);
  for (size_t l = 0; l < k_.size(); ++l)
    if (kv_layer(linear_, l)) p.k_[l] = regrow(k_[l], n, p.capacity_, row_, stream);
  for (size_t l = 0; l < v_.size(); ++l)
    if (kv_layer(linear_, l)) p.v_[l] = regrow(v_[l], n, p.capacity_, row_, stream);
  p.length_ = n;
  p.tokens_.assign(tokens_.begin(), tokens_.begin() + std::min<int64_t>(n, int64_t(tokens_.size())));
  p.zero_states(stream);
  return p;
}

int64_t GpuKv::bytes() const {
  int64_t kv_layers = 0;
  for (size_t l = 0; l < k_.size(); ++l) kv_layers += kv_layer(linear_, l);
  const int64_t sides = values_ ? 2 : 1;
  int64_t b = sides * kv_layers * capacity_ * row_ * int64_t(sizeof(float));
  const int64_t n_linear = int64_t(k_.size()) - kv_layers;
  b += n_linear * state_floats_ * int64_t(sizeof(float)) * int64_t(1 + snapshots_.size());
  return b + int64_t(tokens_.capacity() * sizeof(int32_t));
}

void GpuKv::zero_states(cudaStream_t stream) {
  for (auto& s : state_)
    if (s.size()) MOE_CUDA_CHECK(cudaMemsetAsync(s.get(), 0, s.bytes(), stream));
}

void GpuKv::snapshot(int layer, int64_t pos, cudaStream_t stream) {
  auto& snap = snapshots_[pos];
  if (snap.empty()) snap.resize(state_.size());
  copy(snap[size_t(layer)], state_[size_t(layer)], stream);
}

int64_t GpuKv::restore_at_or_before(int64_t n, cudaStream_t stream) {
  snapshots_.erase(snapshots_.upper_bound(n), snapshots_.end());
  // A snapshot missing a layer (a forward that failed half way) is not one.
  const auto complete = [&](const std::vector<cuda::DeviceBuffer<float>>& snap) {
    for (size_t l = 0; l < state_.size(); ++l)
      if (state_[l].size() && snap[l].size() != state_[l].size()) return false;
    return true;
  };
  while (!snapshots_.empty() && !complete(snapshots_.rbegin()->second)) snapshots_.erase(std::prev(snapshots_.end()));
  if (snapshots_.empty()) {
    zero_states(stream);
    return 0;
  }
  const auto& [pos, snap] = *snapshots_.rbegin();
  for (size_t l = 0; l < state_.size(); ++l)
    if (state_[l].size()) copy(state_[l], snap[l], stream);
  return pos;
}

void GpuKv::copy_states_from(const GpuKv& o, int64_t up_to, cudaStream_t stream) {
  for (size_t l = 0; l < state_.size(); ++l) copy(state_[l], o.state_[l], stream);
  snapshots_.clear();
  for (const auto& [pos, snap] : o.snapshots_) {
    if (pos > up_to) continue;
    auto& mine = snapshots_[pos];
    mine.resize(snap.size());
    for (size_t l = 0; l < snap.size(); ++l) copy(mine[l], snap[l], stream);
  }
}

}  // namespace moe::gpu
