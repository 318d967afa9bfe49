#include "runtime/gpu/step_plan.h"

namespace moe::gpu {

StepPlan plan_step(const StepInputs& in) {
  StepPlan p;
  p.decode = in.decode;
  // Per-pair items only pay off for a few tokens; larger steps read each expert once.
  const bool pairs = in.decode && in.grouped && in.device_router && in.tokens <= in.pair_max_tokens;
  p.route.reserve(in.moe_layer.size());
  for (const bool moe : in.moe_layer)
    p.route.push_back(!moe ? RouteSite::None : pairs ? RouteSite::Device : RouteSite::Host);
  // Hooks and an override must see (and may change) each layer's routing on the host.
  const bool host_sees_routing = in.hooks || in.override_;
  p.experts_on_device = pairs && in.device_tables && !host_sees_routing;
  const bool host_free = in.decode && !host_sees_routing && (!in.has_tier || p.experts_on_device);
  if (in.cuda_graphs && in.decode) p.graphs = host_free ? GraphMode::WholeStep : GraphMode::Segments;
  p.deferred_observers = in.observers && in.has_tier && p.experts_on_device;
  return p;
}

}  // namespace moe::gpu
