// QgemvGrouped: validates one layer's work list, splits each expert's tokens into passes of
// <= kQgemvMaxM (kTcMaxM for a tensor-core plan), stages descriptors and index lists in pinned
// memory and uploads them in one asynchronous copy (grow-only buffers); run() is one launch.
#include "kernels/cuda/qgemv_grouped.h"

#include <algorithm>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

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
    auto which = [e] { return "expert " + std::to_string(e); };  // built only for a message
    detail::check_weight("qgemv_grouped", w);
    if (w.dtype != w0.dtype || w.group != w0.group || w.rows != w0.rows || w.cols != w0.cols)
      bad(which() + " is " + std::string(dtype_name(w.dtype)) + " [" + std::to_string(w.rows) + ", " +
          std::to_string(w.cols) + "] group " + std::to_string(w.group) + ", expert 0 " +
          std::string(dtype_name(w0.dtype)) + " [" + std::to_string(w0.rows) + ", " + std::to_string(w0.cols) +
          "] group " + std::to_string(w0.group) + ": all experts of a layer must match");
    if (w.cols == 0) bad("K = 0 is not supported");
    if (w.dtype == DType::I8) bad(which() + " is I8, which has no grouped kernel; qgemv() runs it");
    if (w.dtype == DType::F8E4M3 && w.cols % 16 != 0)
      bad("F8E4M3 needs K % 16 == 0 (K = " + std::to_string(w.cols) + "); qgemv() handles other K");
    if (!aligned16(w.data)) bad(which() + ": weight data must be 16-byte aligned");
  }
}

}  // namespace

namespace detail {

GroupedStaging::~GroupedStaging() {
  // No throw from a destructor; a failing call has nothing to report to.
  if (done_) {
    if (recorded_) cudaEventSynchronize(done_);  // the upload may still be reading p_
    cudaEventDestroy(done_);
  }
  if (p_) cudaFreeHost(p_);
}

void GroupedStaging::swap(GroupedStaging& o) noexcept {
  std::swap(p_, o.p_);
  std::swap(n_, o.n_);
  std::swap(done_, o.done_);
  std::swap(recorded_, o.recorded_);
}

void GroupedStaging::wait() const {
  if (recorded_) MOE_CUDA_CHECK(cudaEventSynchronize(done_));
}

void GroupedStaging::reserve(size_t bytes) {
  if (bytes <= n_) return;
  if (p_) MOE_CUDA_CHECK(cudaFreeHost(p_));
  p_ = nullptr, n_ = 0;
  void* p = nullptr;
  MOE_CUDA_CHECK(cudaMallocHost(&p, bytes));
  p_ = static_cast<uint8_t*>(p), n_ = bytes;
}

void GroupedStaging::record(cudaStream_t stream) {
  if (!done_) MOE_CUDA_CHECK(cudaEventCreateWithFlags(&done_, cudaEventDisableTiming));
  MOE_CUDA_CHECK(cudaEventRecord(done_, stream));
  recorded_ = true;
}

}  // namespace detail

namespace {

size_t align16(size_t n) { return (n + 15) / 16 * 16; }

// Copies n trivially copyable T to byte offset `at` of the staging (no alignment assumed).
template <class T>
void put(uint8_t* staging, size_t at, const T* v, size_t n) {
  if (n) std::memcpy(staging + at, v, n * sizeof(T));
}

}  // namespace

QgemvGrouped::QgemvGrouped(const std::vector<GroupedExpert>& experts, int64_t T, int64_t Y) {
  set(experts, T, Y, nullptr);
  if (n_items_ > 0) MOE_CUDA_CHECK(cudaStreamSynchronize(nullptr));  // usable on any stream
}

bool tensor_core_format(const DeviceWeight& w) {
  switch (w.dtype) {
    case DType::Q4:
    case DType::Q4Z:
    case DType::MXFP4: return true;
    case DType::F8E4M3:
    case DType::I8: return w.cols % 32 == 0;
    default: return false;
  }
}

namespace {
// The one refusal of both tensor-core entries.
void require_tensor_core_format(const DeviceWeight& w) {
  if (!tensor_core_format(w))
    bad(std::string(dtype_name(w.dtype)) + " [" + std::to_string(w.rows) + ", " + std::to_string(w.cols) +
        "] has no tensor-core kernel (Q4, Q4Z, MXFP4; FP8 and INT8 with K % 32 == 0); use the fp32 GEMV");
}
}  // namespace

void tc_gemm_rows(const DeviceWeight& w, const float* x, float* y, const int32_t* rows, int64_t n, cudaStream_t stream) {
  if (n <= 0 || w.rows == 0) return;
  require_tensor_core_format(w);
  detail::check_weight("tc_gemm_rows", w);
  if (!x || !y || !rows) bad("tc_gemm_rows needs x, y and the row list");
  if (!aligned16(x) || !aligned16(y) || !aligned16(w.data)) bad("x, y and the weight data must be 16-byte aligned");
  if (n > INT_MAX || (w.rows + detail::kTcRows - 1) / detail::kTcRows > 65535)
    bad("tc_gemm_rows: " + std::to_string(n) + " rows of N = " + std::to_string(w.rows) + " exceed the grid's limits");
  const detail::GroupedDesc e{static_cast<const uint8_t*>(w.data), w.scales, w.zeros};
  detail::launch_rows_tc(e, w.dtype, rows, int(n), x, y, int(w.rows), int(w.cols), int(w.group), stream);
}

bool tensor_core_gemm_supported(int device) {
  cudaDeviceProp p{};
  MOE_CUDA_CHECK(cudaGetDeviceProperties(&p, device));
  return p.major >= 8;
}

void QgemvGrouped::set(const std::vector<GroupedExpert>& experts, int64_t T, int64_t Y, cudaStream_t stream,
                       GroupedMath math) {
  // 1. Validate and count. Nothing of the current plan changes until all is accepted.
  if (T < 0 || T > INT_MAX) bad("T = " + std::to_string(T) + " must be in [0, 2^31)");
  if (Y < 0 || Y > INT_MAX) bad("Y = " + std::to_string(Y) + " must be in [0, 2^31)");
  const bool tc = math == GroupedMath::TensorCoreBf16;
  const size_t per_item = size_t(tc ? detail::kTcMaxM : kQgemvMaxM);  // tokens per work item
  size_t n_desc = 0, n_items = 0, n_pairs = 0;
  int64_t weight_bytes = 0;
  if (!experts.empty()) {
    check_weights(experts);
    if (tc) require_tensor_core_format(experts[0].w);
    written_.assign(size_t(Y), 0);  // each output row by one pair only: no races, no order
    for (size_t e = 0; e < experts.size(); ++e) {
      const GroupedExpert& g = experts[e];
      auto which = [e] { return "expert " + std::to_string(e); };
      if (g.x_rows.size() != g.y_rows.size())
        bad(which() + ": " + std::to_string(g.x_rows.size()) + " x rows but " + std::to_string(g.y_rows.size()) +
            " y rows");
      if (g.x_rows.empty()) continue;  // no tokens: no descriptor, no work
      if (n_pairs + g.x_rows.size() > size_t(INT_MAX)) bad("more than 2^31 - 1 (token, expert) pairs");
      for (size_t i = 0; i < g.x_rows.size(); ++i) {
        const int32_t t = g.x_rows[i], o = g.y_rows[i];
        if (t < 0 || t >= T)
          bad(which() + ": token index " + std::to_string(t) + " outside [0, " + std::to_string(T) + ")");
        if (o < 0 || o >= Y)
          bad(which() + ": output row " + std::to_string(o) + " outside [0, " + std::to_string(Y) + ")");
        if (written_[size_t(o)]++) bad(which() + ": output row " + std::to_string(o) + " written twice");
      }
      n_desc += 1;
      n_items += (g.x_rows.size() + per_item - 1) / per_item;
      n_pairs += g.x_rows.size();
      weight_bytes += bytes_of(g.w);
    }
    const int64_t N = experts[0].w.rows;
    constexpr int64_t rows_per_block = detail::kWarps * detail::kGroupedRowsPerWarp;  // 16: no variant has fewer
    if ((N + rows_per_block - 1) / rows_per_block > 65535) bad("N = " + std::to_string(N) + " over the grid's limit");
  }

  // 2. Accepted: the new plan's shape. Until its upload is queued the plan is empty, so a CUDA
  // error below leaves nothing half-written for run() to read.
  dtype_ = experts.empty() ? DType::F32 : experts[0].w.dtype;
  math_ = math;
  group_ = experts.empty() ? 0 : experts[0].w.group;
  N_ = experts.empty() ? 0 : experts[0].w.rows;
  K_ = experts.empty() ? 0 : experts[0].w.cols;
  T_ = T, Y_ = Y;
  pairs_ = 0, weight_bytes_ = 0, n_items_ = 0;
  if (n_items == 0) return;  // nothing to upload: no device needed

  // Layout (qgemv_grouped.h): descs | items | x_rows | y_rows, each at a 16-byte offset.
  const size_t items_at = align16(n_desc * sizeof(detail::GroupedDesc));
  const size_t x_rows_at = align16(items_at + n_items * sizeof(detail::GroupedItem));
  const size_t y_rows_at = align16(x_rows_at + n_pairs * sizeof(int32_t));
  const size_t total = y_rows_at + n_pairs * sizeof(int32_t);

  // 3. The previous upload must be done with the staging (the contract: this returns at once).
  staging_.wait();
  // Grow (slow path). plan_ moves only when it is too small: a captured graph may hold its address
  // (set_pairs grows plan_ alone, so the staging can be the smaller one).
  if (total > plan_.size()) {
    // Queued runs of the old plan on `stream` may still read plan_.
    MOE_CUDA_CHECK(cudaStreamSynchronize(stream));
    const size_t cap = std::max({total, 2 * plan_.size(), size_t(4096)});
    plan_ = DeviceBuffer<uint8_t>();  // free the old one first
    plan_ = DeviceBuffer<uint8_t>(cap);
  }
  if (total > staging_.size()) staging_.reserve(std::max({total, 2 * staging_.size(), size_t(4096)}));  // waited above

  // 4. Fill the staging in the order pass 1 accepted, then one upload.
  uint8_t* h = staging_.get();
  int32_t expert = 0, first = 0;
  size_t item = 0;
  for (const GroupedExpert& g : experts) {
    if (g.x_rows.empty()) continue;
    const int32_t n = int32_t(g.x_rows.size());
    const detail::GroupedDesc desc{static_cast<const uint8_t*>(g.w.data), g.w.scales, g.w.zeros};
    put(h, size_t(expert) * sizeof(desc), &desc, 1);
    for (int32_t m0 = 0; m0 < n; m0 += int32_t(per_item), ++item) {
      const detail::GroupedItem it{expert, first + m0, std::min(int32_t(per_item), n - m0)};
      put(h, items_at + item * sizeof(it), &it, 1);
    }
    put(h, x_rows_at + size_t(first) * sizeof(int32_t), g.x_rows.data(), g.x_rows.size());
    put(h, y_rows_at + size_t(first) * sizeof(int32_t), g.y_rows.data(), g.y_rows.size());
    expert += 1, first += n;
  }
  MOE_CUDA_CHECK(cudaMemcpyAsync(plan_.get(), h, total, cudaMemcpyHostToDevice, stream));
  staging_.record(stream);

  items_at_ = items_at, x_rows_at_ = x_rows_at, y_rows_at_ = y_rows_at;
  pairs_ = int64_t(n_pairs), weight_bytes_ = weight_bytes, n_items_ = int64_t(n_items);
}

namespace {

void check_pair_plan(const QgemvGrouped::PairPlan& p, const int32_t* ids, int64_t T, int k) {
  if (T < 0 || k < 1 || T * k > INT_MAX)
    bad("T = " + std::to_string(T) + ", k = " + std::to_string(k) + ": need T >= 0, k >= 1, T * k < 2^31");
  if (T * k > 0 && (!p.table || !ids)) bad("set_pairs needs the device table and ids");
  check_weights({GroupedExpert{p.shape, {}, {}}});
  constexpr int64_t rows_per_block = detail::kWarps * detail::kGroupedRowsPerWarp;
  if ((p.shape.rows + rows_per_block - 1) / rows_per_block > 65535)
    bad("N = " + std::to_string(p.shape.rows) + " over the grid's limit");
}

}  // namespace

bool QgemvGrouped::prepare_pairs(const PairPlan& p, int64_t T, int k, cudaStream_t stream, detail::PairPlanArgs* out) {
  const int64_t P = T * k;
  dtype_ = p.shape.dtype, group_ = p.shape.group, N_ = p.shape.rows, K_ = p.shape.cols;
  math_ = GroupedMath::Fp32;
  T_ = p.x_per_pair ? P : T, Y_ = P;
  pairs_ = 0, weight_bytes_ = 0, n_items_ = 0;
  if (P == 0) return false;

  const size_t items_at = align16(size_t(P) * sizeof(detail::GroupedDesc));
  const size_t x_rows_at = align16(items_at + size_t(P) * sizeof(detail::GroupedItem));
  const size_t y_rows_at = align16(x_rows_at + size_t(P) * sizeof(int32_t));
  const size_t total = y_rows_at + size_t(P) * sizeof(int32_t);
  if (total > plan_.size()) {  // grow (slow path): queued runs on `stream` may still read plan_
    MOE_CUDA_CHECK(cudaStreamSynchronize(stream));
    const size_t cap = std::max({total, 2 * plan_.size(), size_t(4096)});
    plan_ = DeviceBuffer<uint8_t>();
    plan_ = DeviceBuffer<uint8_t>(cap);
  }
  uint8_t* plan = plan_.get();
  *out = detail::PairPlanArgs{p.table,
                              reinterpret_cast<detail::GroupedDesc*>(plan),
                              reinterpret_cast<detail::GroupedItem*>(plan + items_at),
                              reinterpret_cast<int32_t*>(plan + x_rows_at),
                              reinterpret_cast<int32_t*>(plan + y_rows_at),
                              p.x_per_pair ? 1 : k};
  items_at_ = items_at, x_rows_at_ = x_rows_at, y_rows_at_ = y_rows_at;
  pairs_ = P, weight_bytes_ = P * bytes_of(p.shape), n_items_ = P;
  return true;
}

void QgemvGrouped::set_pairs(const GroupedDesc* table, const int32_t* ids, int64_t T, int k, bool x_per_pair,
                             const DeviceWeight& shape, cudaStream_t stream) {
  QgemvGrouped* plans[1] = {this};
  const PairPlan p[1] = {{table, x_per_pair, shape}};
  set_pairs(plans, p, 1, ids, T, k, stream);
}

void QgemvGrouped::set_pairs(QgemvGrouped* const* plans, const PairPlan* p, int n, const int32_t* ids, int64_t T, int k,
                             cudaStream_t stream) {
  if (n < 1 || n > detail::kMaxPairPlans) bad("set_pairs takes 1 to " + std::to_string(detail::kMaxPairPlans) + " plans");
  for (int i = 0; i < n; ++i) check_pair_plan(p[i], ids, T, k);  // all, before any plan changes
  detail::PairPlanArgs args[detail::kMaxPairPlans] = {};
  bool work = false;
  for (int i = 0; i < n; ++i) work = plans[i]->prepare_pairs(p[i], T, k, stream, &args[i]);
  if (work) detail::launch_pair_plans(args, n, ids, int(T * k), stream);
}

void QgemvGrouped::run(const float* x, float* y, cudaStream_t stream) const {
  if (n_items_ == 0 || N_ == 0) return;
  if (!x || !y) bad("x and y must be set");
  if (!aligned16(x) || !aligned16(y)) bad("x and y must be 16-byte aligned");
  const uint8_t* plan = plan_.get();
  const detail::GroupedLaunch a{reinterpret_cast<const detail::GroupedDesc*>(plan),
                                reinterpret_cast<const detail::GroupedItem*>(plan + items_at_),
                                reinterpret_cast<const int32_t*>(plan + x_rows_at_),
                                reinterpret_cast<const int32_t*>(plan + y_rows_at_),
                                x,
                                y,
                                n_items_,
                                int(N_),
                                int(K_),
                                int(group_)};
  if (math_ == GroupedMath::TensorCoreBf16) return detail::launch_grouped_tc(a, dtype_, stream);
  if (dtype_ == DType::MXFP4) return detail::launch_grouped_mx4(a, stream);  // one form for every variant
  detail::QgemvVariant v = detail::ScopedQgemvVariant::current();  // V0 falls back to v0's launchers
  if (v == detail::QgemvVariant::Auto) v = detail::auto_variant(dtype_ == DType::F8E4M3, 0, /*grouped=*/true);
  if (dtype_ == DType::F8E4M3) detail::launch_grouped_f8_smem(v, a, stream);
  else detail::launch_grouped_q4_smem(v, a, dtype_ == DType::Q4Z, stream);
}

}  // namespace moe::cuda
