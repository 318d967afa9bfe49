#include "quant/weight_view.h"

#include <string>

namespace moe {

int64_t WeightView::scale_bytes() const {
  switch (dtype) {
    case DType::Q4:
    case DType::Q4Z: return rows * (cols / group) * 2;
    case DType::F8E4M3: return group == 0 ? rows * 4 : ((rows + 127) / 128) * ((cols + 127) / 128) * 4;
    case DType::I8: return rows * 4;
    case DType::MXFP4: return rows * (cols / 32);
    default: return 0;
  }
}

WeightView WeightView::row_slice(int64_t r0, int64_t n) const {
  WeightView v = *this;
  v.rows = n;
  const int64_t row_bytes = data_bytes() / (rows ? rows : 1);
  v.data = static_cast<const char*>(data) + r0 * row_bytes;
  switch (dtype) {
    case DType::Q4:
    case DType::Q4Z:
      v.scales = static_cast<const uint16_t*>(scales) + r0 * (cols / group);
      if (zeros) v.zeros = zeros + r0 * (cols / group);
      break;
    case DType::F8E4M3:
      if (group == 0) {
        v.scales = static_cast<const float*>(scales) + r0;
      } else {
        if (r0 % 128 != 0)
          throw std::invalid_argument("row_slice: block-scaled FP8 rows must start at a multiple of 128, got " +
                                      std::to_string(r0));
        v.scales = static_cast<const float*>(scales) + (r0 / 128) * ((cols + 127) / 128);
      }
      break;
    case DType::I8: v.scales = static_cast<const float*>(scales) + r0; break;
    case DType::MXFP4: v.scales = static_cast<const uint8_t*>(scales) + r0 * (cols / 32); break;
    default: break;
  }
  return v;
}

}  // namespace moe
