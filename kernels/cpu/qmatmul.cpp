// Quantized matmul entry point: validates the view, picks the ISA variant (CPUID, or the
// MOE_CPU_ISA override) and hands the call to qgemm_<isa>.cpp.
#include "kernels/cpu/qmatmul.h"

#include <algorithm>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/cpu/amx.h"
#include "kernels/cpu/qkernels.h"

namespace moe::cpu {

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return "scalar";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
  }
  return "?";
}

bool isa_supported(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return true;
    case Isa::Avx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    case Isa::Avx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
  }
  return false;
}

namespace {
Isa pick_isa() {
  if (const char* env = std::getenv("MOE_CPU_ISA"); env && *env) {
    const std::string s = env;
    Isa isa;
    if (s == "scalar") isa = Isa::Scalar;
    else if (s == "avx2") isa = Isa::Avx2;
    else if (s == "avx512") isa = Isa::Avx512;
    else throw std::runtime_error("MOE_CPU_ISA=" + s + " is not one of scalar, avx2, avx512");
    if (!isa_supported(isa)) throw std::runtime_error("MOE_CPU_ISA=" + s + " but this CPU does not support it");
    return isa;
  }
  if (isa_supported(Isa::Avx512)) return Isa::Avx512;
  if (isa_supported(Isa::Avx2)) return Isa::Avx2;
  return Isa::Scalar;
}
}  // namespace

Isa active_isa() {
  static const Isa isa = pick_isa();
  return isa;
}

std::string active_kernels() {
  const Isa isa = active_isa();
  return std::string(isa_name(isa)) + (isa == Isa::Avx512 && amx_enabled() ? "+amx" : "");
}

namespace {

// Sections whose jobs all have fewer rows of x than this are decode-like (memory-bound GEMVs).
constexpr int64_t kSharedTailMaxRows = 12;

void check(const WeightView& w, Isa isa) {
  if (!is_quantized(w.dtype))
    throw std::invalid_argument("qmatmul: " + std::string(dtype_name(w.dtype)) + " is not a quantized dtype");
  if (w.cols % kQuantizedKMultiple != 0)
    throw std::invalid_argument("qmatmul: K (" + std::to_string(w.cols) + ") must be a multiple of " +
                                std::to_string(kQuantizedKMultiple));
  if ((w.dtype == DType::Q4 || w.dtype == DType::Q4Z) &&
      ((w.group != 32 && w.group != 64 && w.group != 128) || w.cols % w.group != 0))
    throw std::invalid_argument("qmatmul: Q4 group " + std::to_string(w.group) + " does not divide K (" +
                                std::to_string(w.cols) + ") or is not 32, 64 or 128");
  if (w.dtype == DType::MXFP4 && w.group != 32)
    throw std::invalid_argument("qmatmul: MXFP4 group must be 32, got " + std::to_string(w.group));
  if (w.dtype == DType::F8E4M3 && w.group != 0 && w.group != 128)
    throw std::invalid_argument("qmatmul: F8E4M3 group must be 0 or 128, got " + std::to_string(w.group));
  if (!isa_supported(isa)) throw std::runtime_error(std::string("qmatmul: this CPU does not support ") + isa_name(isa));
}

std::unique_ptr<qk::Rows> prepare(const MatJob& j, Isa isa, qk::PrepCache* cache) {
  const qk::Job job{j.x, j.M, j.w, j.y, j.bias};
  switch (isa) {
    case Isa::Scalar: return qk::prepare_scalar(job);
    case Isa::Avx2: return qk::prepare_avx2(job);
    case Isa::Avx512: return qk::prepare_avx512(job, cache);
  }
  return nullptr;
}

}  // namespace

void qmatmul(ThreadPool& pool, const float* x, int64_t M, const WeightView& w, float* y, const float* bias,
             Isa isa) {
  const MatJob job{x, M, w, y, bias};
  qmatmul_many(pool, {&job, 1}, isa);
}

namespace {
// Rows of x one weight row of the job really computes: the rows-in-lanes kernels pad M to whole
// blocks of 16 rows (AVX-512: a prefill expert with 130 tokens costs 144) or 8 (AVX2 Q4).
int64_t cost_rows(const MatJob& j, Isa isa) {
  if (isa == Isa::Avx512 && qk::mlanes_job(j.w.dtype, j.M)) return (j.M + 15) / 16 * 16;
  if (isa == Isa::Avx2 && j.M >= 8 && (j.w.dtype == DType::Q4 || j.w.dtype == DType::Q4Z)) return (j.M + 7) / 8 * 8;
  return j.M;
}
}  // namespace

void qmatmul_many(ThreadPool& pool, std::span<const MatJob> jobs, Isa isa) {
  for (const MatJob& j : jobs) check(j.w, isa);
  // The threads split the jobs' rows by estimated cost, not by count: at prefill one expert may
  // see 60 tokens and the next 6. A row costs its compute (M x K) plus the weight stream (about
  // 4 rows of x's worth), in units of 32 columns; first[] holds each job's first unit.
  std::vector<const MatJob*> live;
  std::vector<int64_t> first{0}, unit;  // unit: cost of one row of each job
  int64_t grain = 0, acts = 0, max_m = 0;
  for (const MatJob& j : jobs) {
    if (j.M <= 0 || j.w.rows <= 0) continue;
    live.push_back(&j);
    unit.push_back((cost_rows(j, isa) + 4) * (j.w.cols / kQuantizedKMultiple));
    first.push_back(first.back() + j.w.rows * unit.back());
    const int64_t g = qk::row_grain(j.w.cols) * unit.back();
    grain = grain == 0 ? g : std::min(grain, g);
    acts += j.M * j.w.cols;
    max_m = std::max(max_m, j.M);
  }
  if (live.empty()) return;
  // Preparing (quantizing) the activations of a prefill's experts is worth its own parallel
  // section; a decode step's few rows are not, and there jobs that read the same x (a token's
  // gate and up projections, all its experts) share one preparation.
  // A worker must not throw (bad_alloc): failures are carried back to this thread.
  std::vector<std::unique_ptr<qk::Rows>> rows(live.size());
  std::vector<std::exception_ptr> failed(live.size());
  qk::PrepCache cache;
  const bool serial = acts < (int64_t(1) << 16);
  const auto prep = [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      try {
        rows[size_t(i)] = prepare(*live[size_t(i)], isa, serial ? &cache : nullptr);
      } catch (...) {
        failed[size_t(i)] = std::current_exception();
      }
    }
  };
  if (serial) prep(0, int64_t(live.size()));
  else pool.parallel_for(int64_t(live.size()), 1, prep);
  for (const std::exception_ptr& e : failed)
    if (e) std::rethrow_exception(e);
  // Decode-sized sections stream weights and nothing else: a thread held up for a while (the VM,
  // the other thread's traffic) would hold up the whole section, so a quarter of the rows go in
  // pieces to whichever thread is free (decode 13.3 -> 14.4 tok/s on a 2-core VM, Qwen3-30B-A3B
  // shape). Prefill's GEMMs showed no gain from it and keep plain shares.
  const int tail = max_m < kSharedTailMaxRows ? 4 : 0;
  pool.parallel_for_tail(first.back(), grain, tail, [&](int64_t b, int64_t e) {
    // The jobs overlapping units [b, e), each on the rows whose first unit lies in the range.
    size_t k = size_t(std::upper_bound(first.begin(), first.end(), b) - first.begin()) - 1;
    for (; k < rows.size() && first[k] < e; ++k) {
      const int64_t u = unit[k], lo = std::max(b, first[k]) - first[k], hi = std::min(e, first[k + 1]) - first[k];
      const int64_t r0 = (lo + u - 1) / u, r1 = (hi + u - 1) / u;
      if (r0 < r1) rows[k]->run(r0, r1);
    }
  });
}

}  // namespace moe::cpu
