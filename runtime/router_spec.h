// A MoE layer's router as cpu::route_ex runs it, from the model's config and the layer's weights.
// One place for both engines: the CPU engine routes every layer with it; the GPU engine routes
// with it on the host, and gives its device router (cuda::RouterRule) the same rule.
#pragma once
#include <vector>

#include "kernels/cpu/routing.h"
#include "runtime/model.h"

namespace moe {

// `bias` receives the layer's correction bias widened to f32 (empty when it has none); the spec
// points into it, so it must outlive the spec.
cpu::RouterSpec router_spec(const ModelConfig& c, const LayerWeights& L, std::vector<float>& bias);

}  // namespace moe
