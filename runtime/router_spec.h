// A MoE layer's router as cpu::route_ex runs it, from the model's config and the layer's weights.
// One place for both engines: the CPU engine routes every layer with it, and the GPU engine
// routes with it on the host whenever its device router (softmax, top-k, renormalisation) is
// not the model's rule.
#pragma once
#include <vector>

#include "kernels/cpu/routing.h"
#include "runtime/model.h"

namespace moe {

// `bias` receives the layer's correction bias widened to f32 (empty when it has none); the spec
// points into it, so it must outlive the spec.
cpu::RouterSpec router_spec(const ModelConfig& c, const LayerWeights& L, std::vector<float>& bias);

// Whether the router is the plain one the GPU engine's cuda::router_topk computes: softmax over
// all experts, top-k, optional renormalisation; no correction bias, groups, scaling or top-k
// before the softmax. (A logit bias is the router projection's own, added before either.)
bool plain_softmax_router(const ModelConfig& c, const LayerWeights& L);

}  // namespace moe
