#include "storage/vram/record_source.h"

#include <fmt/format.h>

#include <stdexcept>

#include "quant/quantize.h"

namespace moe {

namespace {

// w as F32 into `buf` when it is F16/BF16, else w itself.
WeightView widened(const WeightView& w, std::vector<float>& buf) {
  if (!is_16bit_float(w.dtype)) return w;
  buf = dequantize(w);
  return WeightView{DType::F32, buf.data(), w.rows, w.cols};
}

}  // namespace

RecordSource::RecordSource(ExpertSource& src, std::vector<int> experts_per_layer, bool wide16)
    : src_(src), per_layer_(std::move(experts_per_layer)), wide16_(wide16) {
  int first = -1;
  for (size_t l = 0; l < per_layer_.size() && first < 0; ++l)
    if (per_layer_[l] > 0) first = int(l);
  if (first < 0) throw std::invalid_argument("RecordSource: the model has no layer with routed experts");
  shape_ = src_.acquire(first, 0);
  src_.release(first, 0);
  if (wide16_)
    for (WeightView* m : {&shape_.gate, &shape_.up, &shape_.down})
      if (is_16bit_float(m->dtype)) *m = WeightView{DType::F32, nullptr, m->rows, m->cols};
  layout_ = expert_record_layout(shape_);
}

void RecordSource::copy_to(ExpertKey k, uint8_t* dst) {
  if (k.layer < 0 || k.layer >= n_layers() || k.expert < 0 || k.expert >= per_layer_[size_t(k.layer)])
    throw std::out_of_range(fmt::format("RecordSource: no expert {} in layer {}", k.expert, k.layer));
  ExpertWeights w = src_.acquire(k.layer, k.expert);
  std::vector<float> wide[3];
  if (wide16_) {
    w.gate = widened(w.gate, wide[0]);
    w.up = widened(w.up, wide[1]);
    w.down = widened(w.down, wide[2]);
  }
  if (!same_shape(w, shape_)) {
    src_.release(k.layer, k.expert);
    throw std::invalid_argument(fmt::format(
        "expert {} of layer {} differs in format or shape from the model's first expert; the GPU engine needs "
        "every routed expert in one format (re-run `moe convert` with one --experts format)",
        k.expert, k.layer));
  }
  pack_expert_record(w, layout_, dst);
  src_.release(k.layer, k.expert);  // packed: the source may evict it now
}

const uint8_t* RecordSource::acquire(ExpertKey k) {
  std::vector<uint8_t> buf(size_t(layout_.bytes));
  copy_to(k, buf.data());
  std::lock_guard lk(mu_);
  auto& slot = held_[{k.layer, k.expert}];
  slot = std::move(buf);
  return slot.data();
}

void RecordSource::release(ExpertKey k) {
  std::lock_guard lk(mu_);
  held_.erase({k.layer, k.expert});
}

}  // namespace moe
