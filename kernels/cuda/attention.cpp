// attention_decode() / attention_prefill(): argument checks, then the launchers.
#include "kernels/cuda/attention.h"

#include <climits>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "kernels/cuda/attention_launch.h"

namespace moe::cuda {
namespace {

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

[[noreturn]] void bad(const char* op, const AttentionShape& s, const std::string& why) {
  throw std::invalid_argument(std::string(op) + ": n_heads " + std::to_string(s.n_heads) + ", n_kv_heads " +
                              std::to_string(s.n_kv_heads) + ", head_dim " + std::to_string(s.head_dim) +
                              ", kv_stride " + std::to_string(s.kv_stride) + ": " + why);
}

void validate_shape(const char* op, const AttentionShape& s) {
  if (s.head_dim != 16 && s.head_dim != 32 && s.head_dim != 64 && s.head_dim != 128 && s.head_dim != 256)
    bad(op, s, "head_dim must be 16, 32, 64, 128 or 256");
  if (s.n_kv_heads <= 0 || s.n_heads <= 0 || s.n_heads % s.n_kv_heads != 0)
    bad(op, s, "n_heads must be a positive multiple of n_kv_heads");
  if (s.n_heads > 65535) bad(op, s, "n_heads > 65535 (a grid dimension)");
  if (s.n_heads / s.n_kv_heads > kAttentionMaxGroup)
    bad(op, s, "more than " + std::to_string(kAttentionMaxGroup) + " query heads per kv head");
  if (s.kv_stride < int64_t(s.n_kv_heads) * s.head_dim) bad(op, s, "kv_stride < n_kv_heads * head_dim");
  if (s.kv_stride % 4 != 0) bad(op, s, "kv_stride must be a multiple of 4 (16-byte rows)");
  if (s.window < 0) bad(op, s, "negative window " + std::to_string(s.window));
  if (!(s.scale >= 0.0f) || s.scale == INFINITY) bad(op, s, "scale must be finite and >= 0 (0: 1 / sqrt(head_dim))");
}

}  // namespace

int64_t attention_decode_workspace(const AttentionShape& s, int n_seq, int max_length) {
  // o [.., head_dim] + m + l per (seq, query head, chunk) cell.
  return detail::decode_partials(s, n_seq, max_length) * (int64_t(s.head_dim) + 2);
}

void attention_decode(const AttentionShape& s, const DecodeBatch& b, cudaStream_t stream) {
  const char* op = "attention_decode";
  validate_shape(op, s);
  if (b.n_seq < 0) bad(op, s, "negative n_seq " + std::to_string(b.n_seq));
  if (b.n_seq == 0) return;
  if (b.n_seq > 65535) bad(op, s, "n_seq > 65535 (a grid dimension)");
  if (b.max_length < 1) bad(op, s, "max_length must be >= 1 (every sequence holds its new token's key)");
  if (int64_t(b.n_seq) * s.n_heads > INT_MAX / 2) bad(op, s, "n_seq * n_heads too large");
  if (!b.q || !b.k || !b.v || !b.lengths || !b.out || !b.workspace) bad(op, s, "q, k, v, lengths, out, workspace must be set");
  if (!aligned16(b.q) || !aligned16(b.out) || !aligned16(b.workspace))
    bad(op, s, "q, out and workspace must be 16-byte aligned");
  detail::launch_decode(s, b, stream);
}

void attention_prefill(const AttentionShape& s, const float* q, const float* k, const float* v, int64_t prefix,
                       int64_t T, float* out, cudaStream_t stream) {
  const char* op = "attention_prefill";
  validate_shape(op, s);
  if (prefix < 0 || T < 0) bad(op, s, "negative prefix or T");
  if (T == 0) return;
  if (prefix + T > INT_MAX / 2 || T * s.n_heads > INT_MAX) bad(op, s, "prefix + T too large");
  if (!q || !k || !v || !out) bad(op, s, "q, k, v, out must be set");
  if (!aligned16(q) || !aligned16(k) || !aligned16(v) || !aligned16(out))
    bad(op, s, "q, k, v and out must be 16-byte aligned");
  detail::launch_prefill(s, q, k, v, prefix, T, out, stream);
}

}  // namespace moe::cuda
