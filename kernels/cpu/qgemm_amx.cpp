// AMX Q4/Q4Z GEMM for many rows of x (prefill, batched decode): the tile unit computes each
// 32-block's integer sums for 16 weight rows x 16 rows of x in one tile product, and AVX-512
// applies the scales in the rows-in-lanes kernel's order (qgemm_avx512_q4m.cpp), so y has its
// bits.
//
// Why it is exact: that kernel adds, per (row of x, weight row, 32-block), the exact int32
// S = sum_i (q_i - z) xq_i, converts it and does acc += float(S) * (d_b * s_g), lane partial sums
// in the GEMV's phase order, then tree16. (Q4Z's float(sum q xq) - z float(sum xq) in one fused
// step is that same integer, being below 2^24.) Here the weights are unpacked as q - z (int8,
// -15 .. 15), so TDPBSSD (signed x signed) yields S itself, and the float steps are the same
// instructions on the same values in the same order.
//
// Why one tile product per 32-block when the unit takes 64 columns: each block has its own
// activation scale, so two blocks cannot share an integer sum. The tile loads and stores and the
// float work after each product (16 vectors: convert, scale, FMA) bound the kernel, not the tile
// unit (docs/results/2026-12-06-amx.md: 6 int8 TOP/s per core on tile operands).
//
// I8 on the tile unit (one product per 16-column half block, its GEMV's lanes) was built, gave the
// same bits and was no faster: 5-40% slower from DRAM up to 64 rows of x, 0-10% faster at 128,
// prefill unchanged (the results file). I8 stays on AVX-512.
//
// Per thread: a run of 16 weight rows unpacked to int8 in L1 (A tiles: 16 rows x 32 bytes,
// stride K) against each 16-row block of x in the rows-in-lanes layout, blocks in visiting order
// (B tiles: 8 rows of 4 columns x 16 rows of x). Four C tiles take turns and products run two
// blocks ahead of the float work, through a ring of stored sums.
#include <immintrin.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <vector>

#include "kernels/cpu/qavx512.h"

namespace moe::cpu::qk {

namespace {

using mlanes::kLanes;
constexpr int kRows = 16;  // weight rows per tile (A rows, C rows)

// Palette 1: tmm0-3 C (16 x 16 int32), tmm4/5 A (16 weight rows x 32 bytes), tmm6/7 B (8 rows of
// 64 bytes: 4 columns x 16 rows of x). The configuration is thread state, so each call of a
// thread loads it.
struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0, reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

class TileScope {
 public:
  TileScope() {
    TileConfig c;
    for (int t : {0, 1, 2, 3}) c.rows[t] = 16, c.colsb[t] = 64;
    for (int t : {4, 5}) c.rows[t] = 16, c.colsb[t] = 32;
    for (int t : {6, 7}) c.rows[t] = 8, c.colsb[t] = 64;
    _tile_loadconfig(&c);
  }
  ~TileScope() { _tile_release(); }
  TileScope(const TileScope&) = delete;
  TileScope& operator=(const TileScope&) = delete;
};

// x as the rows-in-lanes kernels store it (mlanes::quantize_lanes, offset 0, blocks at their
// visiting positions): q [nmb, K/4, 16, 4] int8, d [nmb, K/32, 16] block scales. Rows past M:
// code 0, scale 0.
struct Acts {
  avector<uint8_t> q;
  std::vector<float> d;
  int64_t nmb = 0;
};

// One tile product and its float step: A at a (bytes from the run's first row), B at b (bytes
// from the block of x), the x scales at d (floats), the weight scale group g; after it, the
// accumulators go to phase lane `lane` (or -1: the phase goes on).
struct Step {
  int32_t a, b, d, g;
  int32_t lane;
};

// Lane L's blocks q4_first(L), + 16, ... in turn (x stored in that order: phase_positions). Also
// marks the lanes no step writes (rows of under 16 blocks): they add 0.
std::vector<Step> make_steps(int64_t K, int group, bool* empty) {
  const int64_t nb = K / 32;
  const int gshift = std::countr_zero(unsigned(group / 32));
  std::vector<Step> st;
  std::fill(empty, empty + 16, true);
  int32_t k = 0;  // the block's position in x
  for (int L = 0; L < 16; ++L)
    for (int64_t b = mlanes::q4_first(L); b < nb; b += 16, ++k) {
      const bool last = b + 16 >= nb;
      st.push_back({int32_t(32 * b), 512 * k, 16 * k, int32_t(b >> gshift), last ? L : -1});
      if (last) empty[L] = false;
    }
  return st;
}

// Step k's tile product into C tile k % 4, stored to buf. (The tile intrinsics name their
// registers by macro, so the tile sets are spelled out.)
#define MOE_AMX_PRODUCT(C, A, B)   \
  _tile_loadd(A, a, a_stride);     \
  _tile_loadd(B, b, 64);           \
  _tile_zero(C);                   \
  _tile_dpbssd(C, A, B);           \
  _tile_stored(C, buf, 64);        \
  break
[[gnu::always_inline]] inline void product(int64_t k, const int8_t* a, int64_t a_stride, const uint8_t* b, int32_t* buf) {
  switch (k & 3) {
    case 0: MOE_AMX_PRODUCT(0, 4, 6);
    case 1: MOE_AMX_PRODUCT(1, 5, 7);
    case 2: MOE_AMX_PRODUCT(2, 4, 6);
    default: MOE_AMX_PRODUCT(3, 5, 7);
  }
}
#undef MOE_AMX_PRODUCT

// Products run this many steps ahead of the float work that reads them, through a ring of stored
// sums (read right after its store, a product's sums held up the float work; 2 measured best).
constexpr int64_t kLag = 2, kRing = 4;

// One run of up to 16 weight rows: u [16, K] int8 codes minus their zero point, block b's 32
// columns at 32 b (in block order: u sits in L1, so visiting it by phase costs nothing); s [16,
// K/G] their fp16 scales widened. Rows past the run are 0.
struct Run {
  avector<int8_t> u;
  std::vector<float> s;
};

void unpack(const WeightView& w, int64_t n, int nt, Run& r) {
  const int64_t K = w.cols, ng = K / w.group, nb = K / 32, bpg = w.group / 32;
  r.u.resize(size_t(kRows * K));
  r.s.resize(size_t(kRows * ng));
  // Rows past the run multiply as zeros (their sums are computed, never stored).
  std::fill(r.u.begin() + nt * K, r.u.end(), int8_t(0));
  std::fill(r.s.begin() + nt * ng, r.s.end(), 0.0f);
  const __m512i eight = _mm512_set1_epi8(8);
  for (int j = 0; j < nt; ++j) {
    const uint8_t* wr = static_cast<const uint8_t*>(w.data) + (n + j) * (K / 2);
    int8_t* u = &r.u[size_t(j * K)];
    int64_t b0 = 0;
    if (!w.zeros)  // Q4, whole quads: every zero point is 8, plain loads and stores
      for (; b0 + 4 <= nb; b0 += 4) {
        __m512i pair[2];
        split_nibbles(_mm512_loadu_si512(wr + b0 * 16), pair);
        _mm512_storeu_si512(u + 32 * b0, _mm512_sub_epi8(pair[0], eight));
        _mm512_storeu_si512(u + 32 * b0 + 64, _mm512_sub_epi8(pair[1], eight));
      }
    // Q4Z (each block's group's zero point), and Q4's last blocks.
    const uint8_t* zr = w.zeros ? w.zeros + (n + j) * ng : nullptr;
    for (; b0 < nb; b0 += 4) {
      const int nblk = int(std::min<int64_t>(4, nb - b0));
      __m512i pair[2];
      split_nibbles(_mm512_maskz_loadu_epi8(nblk == 4 ? ~__mmask64(0) : (__mmask64(1) << (16 * nblk)) - 1, wr + b0 * 16), pair);
      for (int p = 0; p < 2 && 2 * p < nblk; ++p) {
        const int64_t b = b0 + 2 * p;
        const char z0 = zr ? char(zr[b / bpg]) : 8, z1 = b + 1 >= nb ? 0 : zr ? char(zr[(b + 1) / bpg]) : 8;
        const __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi8(z0)), _mm256_set1_epi8(z1), 1);
        _mm512_mask_storeu_epi8(u + 32 * b, b + 1 < nb ? ~__mmask64(0) : __mmask64(0xffffffffu), _mm512_sub_epi8(pair[p], z));
      }
    }
    widen_f16(static_cast<const uint16_t*>(w.scales) + (n + j) * ng, ng, &r.s[size_t(j * ng)]);
  }
}

// The next run's packed rows and scales (contiguous in the matrix), prefetched a few lines per
// block while this run's first block of x computes: at prefill each expert's weights come from
// DRAM once, and without it the unpack waited on them.
struct Next {
  const char* p[2] = {};   // codes, scales
  int64_t bytes[2] = {};
  int64_t step[2] = {};    // bytes per block, whole lines
  void plan(int64_t nb) {
    const int64_t over = std::max<int64_t>(1, nb / 2);  // done by mid-run, so the last lines land in time
    for (int i = 0; i < 2; ++i) step[i] = ((bytes[i] + over - 1) / over + 63) / 64 * 64;
  }
  void fetch(int64_t k) const {
    for (int i = 0; i < 2; ++i)
      for (int64_t o = k * step[i]; o < std::min(bytes[i], (k + 1) * step[i]); o += 64) _mm_prefetch(p[i] + o, _MM_HINT_T1);
  }
};

// The 16 weight rows at a (stride a_stride) against one 16-row block of x (codes xp, scales dp):
// out[j] lanes = y[row of x, n + j] before the bias; each step's x scales times the rows' group
// scales s[j * ng + g].
void block16(const std::vector<Step>& steps, const bool* empty, const int8_t* a, int64_t a_stride, const uint8_t* xp,
             const float* dp, const float* s, int64_t ng, const Next* next, __m512* out) {
  const int64_t ns = int64_t(steps.size());
  alignas(64) int32_t buf[kRing][kRows * kLanes];
  alignas(64) float part[kRows][16][kLanes];  // [weight row][lane][row of x]
  for (int e = 0; e < 16; ++e)
    if (empty[e])
      for (int j = 0; j < kRows; ++j) _mm512_store_ps(part[j][e], _mm512_setzero_ps());
  __m512 acc[kRows];  // in registers: the loops over it unroll
#pragma GCC unroll 16
  for (int j = 0; j < kRows; ++j) acc[j] = _mm512_setzero_ps();
  for (int64_t k = 0; k < std::min(kLag, ns); ++k) product(k, a + steps[size_t(k)].a, a_stride, xp + steps[size_t(k)].b, buf[k % kRing]);
  for (int64_t k = 0; k < ns; ++k) {
    if (k + kLag < ns) {
      const Step& f = steps[size_t(k + kLag)];
      product(k + kLag, a + f.a, a_stride, xp + f.b, buf[(k + kLag) % kRing]);
    }
    if (next) next->fetch(k);
    const Step& st = steps[size_t(k)];
    const int32_t* c = buf[k % kRing];
    const __m512 d = _mm512_loadu_ps(dp + st.d);
    const float* sw = s + st.g;
#pragma GCC unroll 16
    for (int j = 0; j < kRows; ++j)
      acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512(c + j * kLanes)), _mm512_mul_ps(d, _mm512_set1_ps(sw[j * ng])),
                               acc[j]);
    if (st.lane >= 0) {
#pragma GCC unroll 16
      for (int j = 0; j < kRows; ++j) _mm512_store_ps(part[j][st.lane], acc[j]), acc[j] = _mm512_setzero_ps();
    }
  }
  for (int j = 0; j < kRows; ++j) {
    __m512 v[16];
    for (int l = 0; l < 16; ++l) v[l] = _mm512_load_ps(part[j][l]);
    out[j] = tree16(v);
  }
}

// The visiting order of one matrix shape, made once per call (make_steps).
struct Plan {
  std::vector<Step> steps;
  bool empty[16];
};

// Weight rows [n0, n1) of job against all of x.
void rows(const Job& job, const Acts& a, const Plan& plan, int64_t n0, int64_t n1) {
  const WeightView& w = job.w;
  const int64_t K = w.cols, N = w.rows, nb = K / 32, ng = K / w.group;
  const std::vector<Step>& steps = plan.steps;
  const bool* empty = plan.empty;
  static thread_local Run r;  // used only by this thread
  TileScope tiles;
  const int64_t bp = mlanes::blocks_pass(K);
  __m512 out[kRows];
  alignas(64) float t[kRows][kLanes];
  const __m512i column = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0), _mm512_set1_epi32(kLanes));
  for (int64_t mg = 0; mg < a.nmb; mg += bp)
    for (int64_t n = n0; n < n1; n += kRows) {
      const int nt = int(std::min<int64_t>(kRows, n1 - n));
      unpack(w, n, nt, r);
      // GCC's tile loads are asm without a memory operand: make the rows written above visible.
      __asm__ volatile("" ::: "memory");
      const __mmask16 mask = __mmask16((1u << nt) - 1);
      const __m512 bias = job.bias ? _mm512_maskz_loadu_ps(mask, job.bias + n) : _mm512_setzero_ps();
      Next next;
      const int64_t nn = std::min<int64_t>(kRows, n1 - n - nt);
      if (nn > 0) {
        next.p[0] = static_cast<const char*>(w.data) + (n + nt) * (K / 2), next.bytes[0] = nn * (K / 2);
        next.p[1] = reinterpret_cast<const char*>(static_cast<const uint16_t*>(w.scales) + (n + nt) * ng);
        next.bytes[1] = nn * ng * 2;
        next.plan(nb);
      }
      for (int64_t mb = mg; mb < std::min(a.nmb, mg + bp); ++mb) {
        block16(steps, empty, r.u.data(), K, &a.q[size_t(mb * K * kLanes)], &a.d[size_t(mb * nb * kLanes)], r.s.data(), ng,
                nn > 0 && mb == mg ? &next : nullptr, out);
        // Transposed through L1 so that each row of y takes its nt columns in one store. (The
        // rows-in-lanes kernel multiplies by a row scale of 1 first: exact, so the same bits.)
        for (int j = 0; j < kRows; ++j) _mm512_store_ps(t[j], out[j]);
        const int64_t rows_left = std::min<int64_t>(kLanes, job.M - mb * kLanes);
        for (int64_t l = 0; l < rows_left; ++l)
          _mm512_mask_storeu_ps(job.y + (mb * kLanes + l) * N + n, mask,
                                _mm512_add_ps(_mm512_i32gather_ps(column, &t[0][l], 4), bias));
      }
    }
}

}  // namespace

std::unique_ptr<Rows> prepare_q4_amx(const Job& job) {
  Acts a;
  const std::vector<int32_t> pos = mlanes::phase_positions(job.w.cols / 32, 16, mlanes::q4_first);
  a.nmb = mlanes::quantize_lanes(job.x, job.M, job.w.cols, 0, pos, a.q, a.d, nullptr);
  Plan plan;
  plan.steps = make_steps(job.w.cols, job.w.group, plan.empty);
  return make_rows([job, a = std::move(a), plan = std::move(plan)](int64_t n0, int64_t n1) { rows(job, a, plan, n0, n1); });
}

}  // namespace moe::cpu::qk
