// AMX GEMMs for many rows of x (prefill, batched decode), Q4/Q4Z and I8: the tile unit computes
// the integer sums of 16 weight rows x 16 rows of x per tile product, and AVX-512 applies the
// scales in the rows-in-lanes kernels' order (qgemm_avx512_q4m.cpp, qgemm_avx512_i8m.cpp), so y
// has their bits.
//
// Why it is exact: those kernels add, per (row of x, weight row, block), an exact int32 sum S,
// convert it and do acc += float(S) * (d_b * s_g) (Q4) or acc += float(S) * d_b (I8, per 16-column
// half block), lane partial sums in the GEMV's phase order, then tree16. (Q4Z's float(sum q xq) -
// z float(sum xq) in one fused step is that same integer, being below 2^24; I8's +128 offsets
// cancel in its integers.) Here Q4 weights are unpacked as q - z (int8, -15 .. 15) and I8 weights
// read in place, so TDPBSSD (signed x signed) yields S itself, and the float steps are the same
// instructions on the same values in the same order.
//
// Why one tile product per 32-block (Q4) or half block (I8) when the unit takes 64 columns: each
// block has its own activation scale, so blocks cannot share an integer sum. The tile stores and
// the float work after each product (16 vectors: convert, scale, FMA) bound the kernel, not the
// tile unit (docs/results: 6.4 int8 TOP/s per core on tile operands, far above what feeds it).
//
// Per thread: a run of 16 weight rows (A tiles, stride K: Q4 unpacked to int8 in L1, I8 in place)
// against each 16-row block of x in the rows-in-lanes layout, blocks in visiting order (B tiles:
// 4 columns x 16 rows of x per 64-byte tile row). Four C tiles take turns and products run two
// steps ahead of the float work, through a ring of stored sums.
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

// Palette 1: tmm0-3 C (16 x 16 int32), tmm4/5 A (16 weight rows x kb bytes), tmm6/7 B (kb / 4
// rows of 64 bytes: 4 columns x 16 rows of x). kb: the columns of one product (32 Q4, 16 I8).
// The configuration is thread state, so each call of a thread loads it.
struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0, reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

class TileScope {
 public:
  explicit TileScope(int kb) {
    TileConfig c;
    for (int t : {0, 1, 2, 3}) c.rows[t] = 16, c.colsb[t] = 64;
    for (int t : {4, 5}) c.rows[t] = 16, c.colsb[t] = uint16_t(kb);
    for (int t : {6, 7}) c.rows[t] = uint8_t(kb / 4), c.colsb[t] = 64;
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
// from the block of x), the x scales at d (floats), the weight scale group g (Q4); after it, the
// accumulators go to phase lane `lane` (or -1: the phase goes on).
struct Step {
  int32_t a, b, d, g;
  int32_t lane;
};

// The steps of a matrix: Q4 visits lane L's blocks q4_first(L), + 16, ... (phase_positions order);
// I8 visits phase p's blocks p, p + 8, ..., first halves (lane 8 (p % 2) + p / 2) then second
// halves (that + 4). Also marks the lanes no step writes (rows of few blocks): they add 0.
std::vector<Step> make_steps(int64_t K, int group, bool i8, bool* empty) {
  const int64_t nb = K / 32;
  const int gshift = i8 ? 0 : std::countr_zero(unsigned(group / 32));
  std::vector<Step> st;
  std::fill(empty, empty + 16, true);
  int32_t k = 0;  // the block's position in x
  const auto add = [&](int64_t blk, int h, bool last, int lane) {
    st.push_back({int32_t(32 * blk + 16 * h), int32_t(512 * k + 256 * h), int32_t(16 * k), int32_t(blk >> gshift),
                  last ? lane : -1});
    if (last) empty[lane] = false;
  };
  if (!i8) {
    for (int L = 0; L < 16; ++L)
      for (int64_t b = mlanes::q4_first(L); b < nb; b += 16, ++k) add(b, 0, b + 16 >= nb, L);
    return st;
  }
  for (int p = 0; p < 8; ++p) {
    const int32_t k0 = k;
    for (int h = 0; h < 2; ++h) {
      k = k0;
      for (int64_t b = mlanes::i8_first(p); b < nb; b += 8, ++k) add(b, h, b + 8 >= nb, 8 * (p % 2) + p / 2 + 4 * h);
    }
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

// Blocks b0 .. b0 + 3 of one row (64 packed bytes; fewer at the row's end, `mask`) as codes:
// lo holds each block's low nibbles (its columns 0-15), hi its high nibbles (16-31); the
// permutes put each block's 32 columns together, two blocks per vector.
[[gnu::always_inline]] inline void unpack4(const uint8_t* p, __mmask64 mask, __m512i* pair) {
  const __m512i low4 = _mm512_set1_epi8(0x0f);
  const __m512i idx01 = _mm512_set_epi64(11, 10, 3, 2, 9, 8, 1, 0), idx23 = _mm512_set_epi64(15, 14, 7, 6, 13, 12, 5, 4);
  const __m512i v = _mm512_maskz_loadu_epi8(mask, p);
  const __m512i lo = _mm512_and_si512(v, low4), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
  pair[0] = _mm512_permutex2var_epi64(lo, idx01, hi);
  pair[1] = _mm512_permutex2var_epi64(lo, idx23, hi);
}

void unpack(const WeightView& w, int64_t n, int nt, Run& r) {
  const int64_t K = w.cols, ng = K / w.group, nb = K / 32, bpg = w.group / 32;
  r.u.resize(size_t(kRows * K));
  r.s.resize(size_t(kRows * ng));
  // Rows past the run multiply as zeros (their sums are computed, never stored).
  std::fill(r.u.begin() + nt * K, r.u.end(), int8_t(0));
  std::fill(r.s.begin() + nt * ng, r.s.end(), 0.0f);
  for (int j = 0; j < nt; ++j) {
    const uint8_t* wr = static_cast<const uint8_t*>(w.data) + (n + j) * (K / 2);
    int8_t* u = &r.u[size_t(j * K)];
    if (!w.zeros) {  // Q4: every zero point is 8
      const __m512i eight = _mm512_set1_epi8(8);
      for (int64_t b0 = 0; b0 < nb; b0 += 4) {
        const int nblk = int(std::min<int64_t>(4, nb - b0));
        __m512i pair[2];
        unpack4(wr + b0 * 16, nblk == 4 ? ~__mmask64(0) : (__mmask64(1) << (16 * nblk)) - 1, pair);
        _mm512_mask_storeu_epi8(u + 32 * b0, nblk >= 2 ? ~__mmask64(0) : __mmask64(0xffffffffu), _mm512_sub_epi8(pair[0], eight));
        if (nblk > 2)
          _mm512_mask_storeu_epi8(u + 32 * b0 + 64, nblk == 4 ? ~__mmask64(0) : __mmask64(0xffffffffu), _mm512_sub_epi8(pair[1], eight));
      }
    } else {  // Q4Z: each block's group's zero point
      const uint8_t* zr = w.zeros + (n + j) * ng;
      for (int64_t b0 = 0; b0 < nb; b0 += 4) {
        const int nblk = int(std::min<int64_t>(4, nb - b0));
        __m512i pair[2];
        unpack4(wr + b0 * 16, nblk == 4 ? ~__mmask64(0) : (__mmask64(1) << (16 * nblk)) - 1, pair);
        for (int p = 0; p < 2 && 2 * p < nblk; ++p) {
          const int64_t b = b0 + 2 * p;
          const char z0 = char(zr[b / bpg]), z1 = b + 1 < nb ? char(zr[(b + 1) / bpg]) : 0;
          const __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi8(z0)), _mm256_set1_epi8(z1), 1);
          _mm512_mask_storeu_epi8(u + 32 * b, b + 1 < nb ? ~__mmask64(0) : __mmask64(0xffffffffu), _mm512_sub_epi8(pair[p], z));
        }
      }
    }
    // Scales 16 at a time (vcvtph2ps is exact).
    const uint16_t* sr = static_cast<const uint16_t*>(w.scales) + (n + j) * ng;
    for (int64_t g = 0; g < ng; g += 16) {
      const __mmask16 m = ng - g >= 16 ? __mmask16(0xffff) : __mmask16((1u << (ng - g)) - 1);
      _mm512_mask_storeu_ps(&r.s[size_t(j * ng + g)], m, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, sr + g)));
    }
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
// out[j] lanes = y[row of x, n + j] before the row scale and bias. Scaled (Q4): each step's x
// scales times the rows' group scales s[j * ng + g].
template <bool Scaled>
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
    if constexpr (Scaled) {
      const float* sw = s + st.g;
#pragma GCC unroll 16
      for (int j = 0; j < kRows; ++j)
        acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512(c + j * kLanes)), _mm512_mul_ps(d, _mm512_set1_ps(sw[j * ng])),
                                 acc[j]);
    } else {
#pragma GCC unroll 16
      for (int j = 0; j < kRows; ++j) acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512(c + j * kLanes)), d, acc[j]);
    }
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

// Weight rows [n0, n1) of job against all of x: Q4/Q4Z (i8 false) or I8.
template <bool I8>
void rows(const Job& job, const Acts& a, int64_t n0, int64_t n1) {
  const WeightView& w = job.w;
  const int64_t K = w.cols, N = w.rows, nb = K / 32, ng = I8 ? 1 : K / w.group;
  bool empty[16];
  const std::vector<Step> steps = make_steps(K, w.group, I8, empty);
  static thread_local Run r;  // used only by this thread
  TileScope tiles(I8 ? 16 : 32);
  const int64_t bp = mlanes::blocks_pass(K), row_bytes = I8 ? K : K / 2;
  __m512 out[kRows];
  alignas(64) float t[kRows][kLanes];
  const __m512i column = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0), _mm512_set1_epi32(kLanes));
  for (int64_t mg = 0; mg < a.nmb; mg += bp)
    for (int64_t n = n0; n < n1; n += kRows) {
      const int nt = int(std::min<int64_t>(kRows, n1 - n));
      const int8_t* rows_at;  // A tiles' first row
      if constexpr (I8) {
        // In place, unless the tile's 16 rows would run past the matrix: then a zero-padded copy.
        rows_at = static_cast<const int8_t*>(w.data) + n * K;
        if (n + kRows > N) {
          r.u.assign(size_t(kRows * K), 0);
          std::memcpy(r.u.data(), rows_at, size_t(nt * K));
          rows_at = r.u.data();
        }
      } else {
        unpack(w, n, nt, r);
        rows_at = r.u.data();
      }
      // GCC's tile loads are asm without a memory operand: make the rows written above visible.
      __asm__ volatile("" ::: "memory");
      const __mmask16 mask = __mmask16((1u << nt) - 1);
      const __m512 bias = job.bias ? _mm512_maskz_loadu_ps(mask, job.bias + n) : _mm512_setzero_ps();
      const __m512 scale = I8 ? _mm512_maskz_loadu_ps(mask, static_cast<const float*>(w.scales) + n) : _mm512_set1_ps(1.0f);
      Next next;
      const int64_t nn = std::min<int64_t>(kRows, n1 - n - nt);
      if (nn > 0) {
        next.p[0] = static_cast<const char*>(w.data) + (n + nt) * row_bytes, next.bytes[0] = nn * row_bytes;
        if (!I8) next.p[1] = reinterpret_cast<const char*>(static_cast<const uint16_t*>(w.scales) + (n + nt) * ng), next.bytes[1] = nn * ng * 2;
        next.plan(int64_t(steps.size()));
      }
      for (int64_t mb = mg; mb < std::min(a.nmb, mg + bp); ++mb) {
        block16<!I8>(steps, empty, rows_at, K, &a.q[size_t(mb * K * kLanes)], &a.d[size_t(mb * nb * kLanes)], r.s.data(), ng,
                     nn > 0 && mb == mg ? &next : nullptr, out);
        // Transposed through L1 so that each row of y takes its nt columns in one store; the row
        // scale and bias as the rows-in-lanes kernels apply them (mlanes::store_rows).
        for (int j = 0; j < kRows; ++j) _mm512_store_ps(t[j], out[j]);
        const int64_t rows_left = std::min<int64_t>(kLanes, job.M - mb * kLanes);
        for (int64_t l = 0; l < rows_left; ++l) {
          __m512 v = _mm512_mul_ps(_mm512_i32gather_ps(column, &t[0][l], 4), scale);
          __asm__("" : "+v"(v));  // two roundings, as there: GCC would fuse the multiply and add
          _mm512_mask_storeu_ps(job.y + (mb * kLanes + l) * N + n, mask, _mm512_add_ps(v, bias));
        }
      }
    }
}

Acts prepare_acts(const Job& job, bool i8) {
  Acts a;
  const int64_t nb = job.w.cols / 32;
  const std::vector<int32_t> pos =
      i8 ? mlanes::phase_positions(nb, 8, mlanes::i8_first) : mlanes::phase_positions(nb, 16, mlanes::q4_first);
  a.nmb = mlanes::quantize_lanes(job.x, job.M, job.w.cols, 0, pos, a.q, a.d, nullptr);
  return a;
}

}  // namespace

std::unique_ptr<Rows> prepare_q4_amx(const Job& job) {
  return make_rows([job, a = prepare_acts(job, false)](int64_t n0, int64_t n1) { rows<false>(job, a, n0, n1); });
}

std::unique_ptr<Rows> prepare_i8_amx(const Job& job) {
  return make_rows([job, a = prepare_acts(job, true)](int64_t n0, int64_t n1) { rows<true>(job, a, n0, n1); });
}

}  // namespace moe::cpu::qk
