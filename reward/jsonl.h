// JSON-lines records for `r1kit reward score` and `r1kit task generate` (docs/rewards.md,
// "Command line"): the conversions the CLI in apps/ needs, kept here so they are tested
// with the rewards.
//
// Input record:  {"prompt": "...", "completion": "...", "completion_ids": [..],
//                 "answer": "...", any other metadata field ...}
// Output record: {"total": x, "rewards": {"name": v, ...}}, null for "cannot judge".
// Different on purpose: a NaN becomes JSON null (JSON has no NaN), never 0.
//
// Thread-safety: pure functions.
#pragma once

#include <istream>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "data/task_source.h"
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
// The same with the difficulty of a recipe's `task:` section (max_a, max_numbers,
// min_people, trace, ...; its seed, eval_size and prompt keys are not used: problem i is
// a pure function of (seed, i, difficulty)). A default section gives the problems above.
StatusOr<data::TaskSample> generate_task(const data::TaskSection& task, uint64_t seed,
                                         uint64_t index);

// `r1kit reward score`: reads one input record a line from `in` and writes one output
// record a line to `out`, in input order. Consecutive lines with the same `prompt` are
// scored as one group (so group rewards such as kimi_length see a prompt's samples
// together); blank lines are skipped and give no output line. A line that is not a
// JSON object or lacks `completion` is an error naming `source:line`; nothing after it
// is scored. Returns the number of records scored.
StatusOr<int64_t> score_jsonl(std::istream& in, std::string_view source,
                              const CombinedReward& rewards, std::ostream& out);

// `r1kit task generate`: problems 0..n-1 of task `name` with `seed`, one task_record a
// line. InvalidArgument for an unknown task or n < 0.
Status write_tasks_jsonl(std::string_view name, uint64_t seed, int64_t n, bool with_traces,
                         std::ostream& out);
// The same with the difficulty of `task` (task.name is the task; --task-arg KEY=VALUE).
Status write_tasks_jsonl(const data::TaskSection& task, uint64_t seed, int64_t n, bool with_traces,
                         std::ostream& out);

}  // namespace r1kit::reward
