// QgemvGrouped: validates one layer's work list, splits each expert's tokens into passes of
// <= kQgemvMaxM, uploads descriptors and index lists; run() is one launch.
#include "kernels/cuda/qgemv_grouped.h"

#include <algorithm>
#include <climits>
#include <cstdint>
#include <vector>
#include <stdexcept>
#include <string>

#include "kernels/cuda/check.h"
#include "kernels/cuda/qgemv.h"
#include "kernels/cuda/qgemv_launch.h"

namespace moe::cuda {
namespace {

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

[[noreturn]] void bad(const std::string& why) { throw std::invalid_argument("qgemv_grouped: " + why); }

// The weight's bytes as quant/weight_view.h counts them.
int64_t bytes_of(const DeviceWeight& w) {
  WeightView v;
  v.dtype = w.dtype, v.rows = w.rows, v.cols = w.cols, v.group = w.group;
  return v.bytes();
}

// Format and shape of every expert against the first's; K % 16 for FP8; data alignment.
void check_weights(const std::vector<GroupedExpert>& experts) {
  const DeviceWeight& w0 = experts[0].w;
  for (size_t e = 0; e < experts.size(); ++e) {
    const DeviceWeight& w = experts[e].w;
    const std::string which = "expert " + std::to_string(e);
    detail::check_weight("qgemv_grouped", w);
    if (w.dtype != w0.dtype || w.group != w0.group || w.rows != w0.rows || w.cols != w0.cols)
      bad(which + " is " + std::string(dtype_name(w.dtype)) + " [" + std::to_string(w.rows) + ", " +
          std::to_string(w.cols) + "] group " + std::to_string(w.group) + ", expert 0 " +
          std::string(dtype_name(w0.dtype)) + " [" + std::to_string(w0.rows) + ", " + std::to_string(w0.cols) +
          "] group " + std::to_string(w0.group) + ": all experts of a layer must match");
    if (w.cols == 0) bad("K = 0 is not supported");
    if (w.dtype == DType::F8E4M3 && w.cols % 16 != 0)
      bad("F8E4M3 needs K % 16 == 0 (K = " + std::to_string(w.cols) + "); qgemv() handles other K");
    if (!aligned16(w.data)) bad(which + ": weight data must be 16-byte aligned");
  }
}

}  // namespace

QgemvGrouped::QgemvGrouped(const std::vector<GroupedExpert>& experts, int64_t T, int64_t Y) : T_(T), Y_(Y) {
  if (T < 0 || T > INT_MAX) bad("T = " + std::to_string(T) + " must be in [0, 2^31)");
  if (Y < 0 || Y > INT_MAX) bad("Y = " + std::to_string(Y) + " must be in [0, 2^31)");
  if (experts.empty()) return;
  check_weights(experts);
  dtype_ = experts[0].w.dtype, group_ = experts[0].w.group, N_ = experts[0].w.rows, K_ = experts[0].w.cols;

  std::vector<detail::GroupedDesc> descs;
  std::vector<detail::GroupedItem> items;
  std::vector<int32_t> xr, yr;
  std::vector<uint8_t> written(size_t(Y), 0);  // each output row by one pair only: no races, no order
  for (size_t e = 0; e < experts.size(); ++e) {
    const GroupedExpert& g = experts[e];
    const std::string which = "expert " + std::to_string(e);
    if (g.x_rows.size() != g.y_rows.size())
      bad(which + ": " + std::to_string(g.x_rows.size()) + " x rows but " + std::to_string(g.y_rows.size()) + " y rows");
    if (g.x_rows.empty()) continue;  // no tokens: no descriptor, no work
    if (xr.size() + g.x_rows.size() > size_t(INT_MAX)) bad("more than 2^31 - 1 (token, expert) pairs");
    for (size_t i = 0; i < g.x_rows.size(); ++i) {
      const int32_t t = g.x_rows[i], o = g.y_rows[i];
      if (t < 0 || t >= T) bad(which + ": token index " + std::to_string(t) + " outside [0, " + std::to_string(T) + ")");
      if (o < 0 || o >= Y) bad(which + ": output row " + std::to_string(o) + " outside [0, " + std::to_string(Y) + ")");
      if (written[size_t(o)]++) bad(which + ": output row " + std::to_string(o) + " written twice");
    }
    const int32_t expert = int32_t(descs.size()), first = int32_t(xr.size()), n = int32_t(g.x_rows.size());
    descs.push_back({static_cast<const uint8_t*>(g.w.data), g.w.scales, g.w.zeros});
    for (int32_t m0 = 0; m0 < n; m0 += kQgemvMaxM) items.push_back({expert, first + m0, std::min(kQgemvMaxM, n - m0)});
    xr.insert(xr.end(), g.x_rows.begin(), g.x_rows.end());
    yr.insert(yr.end(), g.y_rows.begin(), g.y_rows.end());
    weight_bytes_ += bytes_of(g.w);
  }
  constexpr int64_t rows_per_block = detail::kWarps * detail::kGroupedRowsPerWarp;  // 16: no variant has fewer
  if ((N_ + rows_per_block - 1) / rows_per_block > 65535) bad("N = " + std::to_string(N_) + " over the grid's limit");
  pairs_ = int64_t(xr.size());
  n_items_ = int64_t(items.size());
  experts_ = DeviceBuffer<detail::GroupedDesc>(descs.size());
  experts_.upload(descs.data(), descs.size());
  items_ = DeviceBuffer<detail::GroupedItem>(items.size());
  items_.upload(items.data(), items.size());
  x_rows_ = DeviceBuffer<int32_t>(xr.size());
  x_rows_.upload(xr.data(), xr.size());
  y_rows_ = DeviceBuffer<int32_t>(yr.size());
  y_rows_.upload(yr.data(), yr.size());
}

void QgemvGrouped::run(const float* x, float* y, cudaStream_t stream) const {
  if (n_items_ == 0 || N_ == 0) return;
  if (!x || !y) bad("x and y must be set");
  if (!aligned16(x) || !aligned16(y)) bad("x and y must be 16-byte aligned");
  const detail::GroupedLaunch a{experts_.get(), items_.get(), x_rows_.get(), y_rows_.get(), x, y, n_items_,
                                int(N_),        int(K_),      int(group_)};
  detail::QgemvVariant v = detail::ScopedQgemvVariant::current();  // V0 falls back to v0's launchers
  if (v == detail::QgemvVariant::Auto) v = detail::auto_variant(dtype_ == DType::F8E4M3, 0, /*grouped=*/true);
  if (dtype_ == DType::F8E4M3) detail::launch_grouped_f8_smem(v, a, stream);
  else detail::launch_grouped_q4_smem(v, a, dtype_ == DType::Q4Z, stream);
}

}  // namespace moe::cuda
