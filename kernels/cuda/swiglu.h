// gpt-oss's clamped SwiGLU for one element, as elementwise.cu's kernel computes it. Host-callable
// (MOE_HD) so that tests/unit/test_cuda_host_parts.cpp checks it against cpu::clamped_swiglu without
// a GPU.
#pragma once
#include <cmath>

#include "quant/dtype.h"  // MOE_HD

namespace moe::cuda {

// The gate clamped above at limit, the up projection to [-limit, limit]; then
// (up + 1) * gate * sigmoid(alpha * gate), in cpu::clamped_swiglu's order.
MOE_HD float clamped_swiglu_one(float gate, float up, float limit, float alpha) {
  const float g = fminf(gate, limit), u = fminf(fmaxf(up, -limit), limit);
  return (u + 1.0f) * (g / (1.0f + expf(-g * alpha)));
}

}  // namespace moe::cuda
