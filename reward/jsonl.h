// JSON-lines records for `r1kit reward score`: the conversions the CLI in apps/ needs,
// kept here so they are tested with the rewards. (Task problems as JSONL, `r1kit task
// generate`, are data::write_tasks_jsonl in data/task_source.h.)
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

// `r1kit reward score`: reads one input record a line from `in` and writes one output
// record a line to `out`, in input order. Consecutive lines with the same `prompt` are
// scored as one group (so group rewards such as kimi_length see a prompt's samples
// together); blank lines are skipped and give no output line. A line that is not a
// JSON object or lacks `completion` is an error naming `source:line`; nothing after it
// is scored. Returns the number of records scored; `unjudged`, when given, gets the number
// whose total is null (some reward could not judge them).
StatusOr<int64_t> score_jsonl(std::istream& in, std::string_view source,
                              const CombinedReward& rewards, std::ostream& out,
                              int64_t* unjudged = nullptr);

}  // namespace r1kit::reward
