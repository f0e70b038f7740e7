// MoE routing replay (Rollout Routing Replay, "R3", 2025): the rollout engine records the
// experts each token was routed to in every MoE layer (rollout::RoutedExperts), and the
// trainer's forward/backward can use exactly those experts (`grpo.routing_replay:
// rollout`) instead of recomputing the top-k, so that the two agree on which experts
// computed every token. The gate keeps its gradient: the combine weights are the gate's
// own scores gathered at the replayed experts (policy::GateImpl::forward), so the router
// still learns; only the (non-differentiable) selection is replayed.
//
// Without replay the trainer's own choices are compared with the engine's:
//   route_mismatch = #{(token, layer, slot): engine's expert not among the trainer's K}
//                    / #{recorded (token, layer, slot)}
// logged as `moe/route_mismatch` (0 by construction with replay).
// Thread-safety: pure functions.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <vector>

#include "core/enum_names.h"
#include "rollout/rollout_source.h"

namespace r1kit::grpo {

enum class RoutingReplay {
  kNone,     // the trainer routes every token itself
  kRollout,  // the trainer uses the engine's recorded experts (R3)
};
inline constexpr EnumName<RoutingReplay> kRoutingReplayNames[] = {
    {RoutingReplay::kNone, "none"}, {RoutingReplay::kRollout, "rollout"}};

// The recorded experts of every row, aligned with the trainer's sequence layout (row
// i*G + j: group i's prompt tokens, then completion j's tokens): [B, S, L, K] int16,
// S = the longest prompt + completion, -1 where nothing was recorded (padding, a
// completion's last token, which no forward ever took as input). Undefined when the
// groups carry no routing. `prompt_lengths[i]`: group i's prompt length.
torch::Tensor pack_routed_experts(const std::vector<rollout::Group>& groups,
                                  const std::vector<int64_t>& prompt_lengths);

// Counts of the route-mismatch rate above; add() more micro-batches, rate() at the end.
struct RouteMismatch {
  double mismatched = 0;
  double recorded = 0;
  // recorded_experts [B, S, L, K] (-1: skip) against the forward's used experts
  // [B, S', L, K] over their first min(S, S') positions (a recording longer than the
  // forward must hold only -1 past it: the padding of a micro-batch's rows).
  void add(const torch::Tensor& recorded_experts, const torch::Tensor& used_experts);
  double rate() const;  // NaN when nothing was recorded
};

}  // namespace r1kit::grpo
