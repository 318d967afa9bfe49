// The GPU engine's step plan (runtime/gpu/step_plan.h): each decision from the step's shape and
// the engine's capabilities, as GpuEngine::forward used to derive them in place.
#include "runtime/gpu/step_plan.h"

#include <gtest/gtest.h>

#include <vector>

namespace moe::gpu {
namespace {

// A resident decode step of one token, experts grouped, no hooks: the fastest path. Layer 0 is
// dense, layers 1-2 have routed experts.
StepInputs resident_decode() {
  StepInputs in;
  in.decode = true;
  in.tokens = 1;
  in.pair_max_tokens = 8;
  in.grouped = true;
  in.device_router = true;
  in.device_tables = true;
  in.has_tier = true;
  in.cuda_graphs = true;
  in.moe_layer = {false, true, true};
  return in;
}

const std::vector<RouteSite> kDevice = {RouteSite::None, RouteSite::Device, RouteSite::Device};
const std::vector<RouteSite> kHost = {RouteSite::None, RouteSite::Host, RouteSite::Host};

// Every decision of a plan at once, so each case reads as the decisions it expects.
struct Expected {
  std::vector<RouteSite> route;
  bool experts_on_device;
  GraphMode graphs;
  bool deferred_observers;
};

void expect_plan(const StepInputs& in, const Expected& want) {
  const StepPlan p = plan_step(in);
  EXPECT_EQ(p.decode, in.decode);
  EXPECT_EQ(p.route, want.route);
  EXPECT_EQ(p.experts_on_device, want.experts_on_device);
  EXPECT_EQ(p.graphs, want.graphs);
  EXPECT_EQ(p.deferred_observers, want.deferred_observers);
}

StepInputs with_observers(StepInputs in) {
  in.observers = true;
  return in;
}

TEST(StepPlan, ResidentDecodeRunsWholeStepOnDevice) {
  expect_plan(with_observers(resident_decode()), {kDevice, true, GraphMode::WholeStep, true});
  expect_plan(resident_decode(), {kDevice, true, GraphMode::WholeStep, false});  // no observers: nothing deferred
}

TEST(StepPlan, HooksOrOverrideBringRoutingToTheHost) {
  // The device still routes, but the ids come back; observers hear each layer as the host reads it.
  for (const bool hook : {true, false}) {
    SCOPED_TRACE(hook ? "hook" : "override");
    StepInputs in = with_observers(resident_decode());
    in.hooks = hook;
    in.override_ = !hook;
    expect_plan(in, {kDevice, false, GraphMode::Segments, false});
  }
}

TEST(StepPlan, PartialBudgetRoutesOnDeviceButRunsThroughTheHost) {
  StepInputs in = with_observers(resident_decode());
  in.device_tables = false;
  expect_plan(in, {kDevice, false, GraphMode::Segments, false});
}

TEST(StepPlan, PrefillRoutesOnHostWithoutGraphs) {
  StepInputs in = with_observers(resident_decode());
  in.decode = false;
  in.tokens = 5;
  expect_plan(in, {kHost, false, GraphMode::None, false});
}

TEST(StepPlan, TooManyTokensForPairsRouteOnHost) {
  StepInputs in = resident_decode();
  in.tokens = 8;  // pair_max_tokens itself still runs per pair
  expect_plan(in, {kDevice, true, GraphMode::WholeStep, false});
  in.tokens = 9;  // a decode step that needs the host between layers
  expect_plan(in, {kHost, false, GraphMode::Segments, false});
}

TEST(StepPlan, GraphsOffRunsAsItIs) {
  // Graphs change how the step is launched, not where it runs.
  StepInputs in = resident_decode();
  in.cuda_graphs = false;
  expect_plan(in, {kDevice, true, GraphMode::None, false});
  in.hooks = true;
  expect_plan(in, {kDevice, false, GraphMode::None, false});
}

TEST(StepPlan, DenseLayersRouteNowhere) {
  StepInputs in = with_observers(resident_decode());
  in.moe_layer = {false, false};
  in.has_tier = false;
  in.grouped = false;
  in.device_tables = false;
  const std::vector<RouteSite> none = {RouteSite::None, RouteSite::None};
  expect_plan(in, {none, false, GraphMode::WholeStep, false});  // nothing needs the host between layers
  in.hooks = true;
  expect_plan(in, {none, false, GraphMode::Segments, false});
}

TEST(StepPlan, UngroupedExpertsRouteOnHost) {
  StepInputs in = with_observers(resident_decode());
  in.grouped = false;
  in.device_tables = false;  // tables are built only for grouped experts
  expect_plan(in, {kHost, false, GraphMode::Segments, false});
}

// A router the device does not compute (sigmoid scores with a correction bias, a group limit,
// scaling: DeepSeek-V3, GLM-4.5) routes on the host even in a one-token decode with every expert
// resident; the step then needs the host between layers.
TEST(StepPlan, RouterTheDeviceLacksRoutesOnHost) {
  StepInputs in = with_observers(resident_decode());
  in.device_router = false;
  expect_plan(in, {kHost, false, GraphMode::Segments, false});
  in.cuda_graphs = false;
  expect_plan(in, {kHost, false, GraphMode::None, false});
}

}  // namespace
}  // namespace moe::gpu
