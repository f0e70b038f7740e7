// JSON-lines records for `r1kit reward score` and `r1kit task generate` (issue 3, item
// 12): the conversions the CLI in apps/ needs, kept here so they are tested with the
// rewards.
//
// Input record:  {"prompt": "...", "completion": "...", "completion_ids": [..],
//                 "answer": "...", any other metadata field ...}
// Output record: {"total": x, "rewards": {"name": v, ...}}, null for "cannot judge".
// Different on purpose: a NaN becomes JSON null (JSON has no NaN), never 0.
//
// Thread-safety: pure functions.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "data/tasks.h"
#include "reward/reward.h"

namespace r1kit::reward {

// A sample from one input record: `prompt` and `completion` (strings, completion
// required), optional `completion_ids` (integers); every other field is metadata.
StatusOr<Sample> sample_from_record(const nlohmann::json& record);

// The output record of sample `i` of a scored group.
nlohmann::json score_record(const GroupScores& scores, size_t i);

// Specs from the CLI flags: --rewards a,b --weights 1,0.5 --args '{"b": {"k": v}}'
// (args keyed by reward name). Weights default to 1; a count mismatch, a bad number or
// args for a reward not listed is an error naming it.
StatusOr<std::vector<RewardSpec>> specs_from_flags(std::string_view rewards_csv,
                                                   std::string_view weights_csv,
                                                   std::string_view args_json);

// A generated task as an output record: {"prompt": question, ...metadata} plus
// "trace" when `with_trace`.
nlohmann::json task_record(const data::TaskSample& task, bool with_trace);

// The i-th problem of task `name` ("countdown", "knights_knaves", "arithmetic") with
// default difficulty; InvalidArgument naming an unknown task.
StatusOr<data::TaskSample> generate_task(std::string_view name, uint64_t seed, uint64_t index);

}  // namespace r1kit::reward
