#include "runtime/model_loader_linear.h"

#include <cstring>

#include "storage/checkpoint.h"

namespace moe {
namespace {

// Rows of `src` in the order `rows` lists, as a new owned matrix.
WeightView gather_rows(const WeightView& src, const std::vector<int64_t>& rows, OwnedTensors& owned) {
  const int64_t row_bytes = src.cols * dtype_size(src.dtype);
  uint8_t* d = owned.add(size_t(int64_t(rows.size()) * row_bytes));
  for (size_t i = 0; i < rows.size(); ++i)
    std::memcpy(d + int64_t(i) * row_bytes, static_cast<const uint8_t*>(src.data) + rows[i] * row_bytes, size_t(row_bytes));
  return WeightView{src.dtype, d, int64_t(rows.size()), src.cols};
}

}  // namespace

LinearAttnWeights load_linear_attn(const Checkpoint& ck, const ModelConfig& c, const std::string& p,
                                   OwnedTensors& owned) {
  const LinearAttnConfig& l = c.linear;
  const int64_t H = c.hidden, nk = l.n_k_heads, nv = l.n_v_heads, dk = l.k_dim, dv = l.v_dim, r = nv / nk;
  const int64_t kd = nk * dk, vd = nv * dv;
  LinearAttnWeights w;
  if (ck.has(p + "in_proj_qkvz.weight")) {
    // Qwen3-Next: per key head g, rows [q (dk), k (dk), v (r * dv), z (r * dv)] and [b (r), a (r)].
    const WeightView qkvz = ck.matrix(p + "in_proj_qkvz.weight", 2 * kd + 2 * vd, H);
    const WeightView ba = ck.matrix(p + "in_proj_ba.weight", 2 * nv, H);
    const int64_t per = 2 * dk + 2 * r * dv;
    std::vector<int64_t> qkv, z, b, a;
    for (int part = 0; part < 3; ++part)  // q of every head, then k, then v
      for (int64_t g = 0; g < nk; ++g) {
        const int64_t base = g * per + (part == 0 ? 0 : part == 1 ? dk : 2 * dk), n = part < 2 ? dk : r * dv;
        for (int64_t i = 0; i < n; ++i) qkv.push_back(base + i);
      }
    for (int64_t g = 0; g < nk; ++g) {
      for (int64_t i = 0; i < r * dv; ++i) z.push_back(g * per + 2 * dk + r * dv + i);
      for (int64_t i = 0; i < r; ++i) b.push_back(g * 2 * r + i), a.push_back(g * 2 * r + r + i);
    }
    w.qkv = gather_rows(qkvz, qkv, owned);
    w.z = gather_rows(qkvz, z, owned);
    w.b = gather_rows(ba, b, owned);
    w.a = gather_rows(ba, a, owned);
  } else {
    w.qkv = ck.matrix(p + "in_proj_qkv.weight", 2 * kd + vd, H);
    w.z = ck.matrix(p + "in_proj_z.weight", vd, H);
    w.b = ck.matrix(p + "in_proj_b.weight", nv, H);
    w.a = ck.matrix(p + "in_proj_a.weight", nv, H);
  }
  const auto& conv = ck.require(p + "conv1d.weight", {l.conv_dim(), 1, l.conv_kernel});
  w.conv = WeightView{*conv.dtype, conv.data, l.conv_dim(), l.conv_kernel};
  w.dt_bias = ck.matrix(p + "dt_bias", nv, 1);
  w.a_log = ck.matrix(p + "A_log", nv, 1);
  w.norm = ck.matrix(p + "norm.weight", dv, 1);
  w.out = ck.matrix(p + "out_proj.weight", H, vd);
  return w;
}

}  // namespace moe
