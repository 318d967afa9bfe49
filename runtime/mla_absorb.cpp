#include "runtime/mla_absorb.h"

namespace moe {

namespace {
// W_UK of every head, transposed, from DeepSeek-V3's block-scaled FP8 kv_b_proj, exactly: the codes
// move and each 128x128 block keeps its scale. Needs nope, R and nope + vd multiples of 128.
QuantizedMatrix transpose_uk_f8(const WeightView& w, int64_t nh, int64_t nope, int64_t vd, int64_t R) {
  QuantizedMatrix t;
  t.dtype = DType::F8E4M3, t.rows = nh * R, t.cols = nope, t.group = 128;
  t.data.resize(size_t(t.rows * t.cols));
  t.scales.resize(size_t(t.rows / 128) * size_t(nope / 128) * sizeof(float));
  const auto* codes = static_cast<const uint8_t*>(w.data);
  const auto* sc = static_cast<const float*>(w.scales);
  auto* tsc = reinterpret_cast<float*>(t.scales.data());
  const int64_t wbc = (w.cols + 127) / 128, tbc = nope / 128;  // block columns of each
  for (int64_t h = 0; h < nh; ++h) {
    const int64_t r0 = h * (nope + vd);  // this head's first W_UK row in kv_b_proj
    for (int64_t d = 0; d < nope; ++d)
      for (int64_t r = 0; r < R; ++r) t.data[size_t((h * R + r) * nope + d)] = codes[(r0 + d) * R + r];
    for (int64_t rb = 0; rb < R / 128; ++rb)
      for (int64_t db = 0; db < tbc; ++db) tsc[((h * R) / 128 + rb) * tbc + db] = sc[((r0 / 128) + db) * wbc + rb];
  }
  return t;
}
}  // namespace

MlaAbsorbed absorb_mla(const ModelConfig& c, const WeightView& w) {
  const MlaConfig& m = c.mla;
  const int64_t nh = c.n_heads, nope = m.qk_nope_head_dim, vd = m.v_head_dim, R = m.kv_lora_rank;
  MlaAbsorbed a;
  const bool f8_blocks = w.dtype == DType::F8E4M3 && w.group == 128 && nope % 128 == 0 && vd % 128 == 0 && R % 128 == 0;
  const bool ours = w.dtype == DType::I8 || w.dtype == DType::Q4 || w.dtype == DType::Q4Z;
  const auto copy_as = [&](int64_t K) {  // int8 activations come in 32-column blocks
    return QuantOptions{ours && K % 32 == 0 ? DType::I8 : DType::F32, 0, false};
  };
  if (f8_blocks) {
    a.uk_t = transpose_uk_f8(w, nh, nope, vd, R);
  } else {
    std::vector<float> uk_t(size_t(nh * R * nope)), row(static_cast<size_t>(R));
    for (int64_t h = 0; h < nh; ++h)
      for (int64_t d = 0; d < nope; ++d) {
        dequantize_row(w, h * (nope + vd) + d, row.data());
        for (int64_t r = 0; r < R; ++r) uk_t[size_t((h * R + r) * nope + d)] = row[size_t(r)];
      }
    a.uk_t = quantize(uk_t.data(), nh * R, nope, copy_as(nope));
  }
  const bool uv_in_place = f8_blocks;
  if (!uv_in_place) {
    std::vector<float> uv(size_t(nh * vd * R));
    for (int64_t h = 0; h < nh; ++h)
      for (int64_t d = 0; d < vd; ++d) dequantize_row(w, h * (nope + vd) + nope + d, &uv[size_t((h * vd + d) * R)]);
    a.uv = quantize(uv.data(), nh * vd, R, copy_as(R));
  }
  for (int64_t h = 0; h < nh; ++h) {
    a.uk_t_heads.push_back(a.uk_t.view().row_slice(h * R, R));
    a.uv_heads.push_back(uv_in_place ? w.row_slice(h * (nope + vd) + nope, vd) : a.uv.view().row_slice(h * vd, vd));
  }
  return a;
}

}  // namespace moe
