// Procedural reasoning tasks with verifiable answers (countdown, knights-and-knaves)
// and a JSONL loader for users' own prompt/answer files.
//
// Follows TinyZero's countdown task (numbers, a target, + - * /, each number once) and
// Logic-RL / mem-kk-logic's knights-and-knaves sampler (random statements with
// not/and/or/->/<=>, all 2^n assignments checked by brute force, only unique-solution
// puzzles kept); docs/rewards.md, "Tasks".
// Different on purpose:
// - Countdown targets come from a random expression tree over the drawn numbers, so
//   every problem is solvable (TinyZero's own gen_dataset drew targets independently
//   and produced mostly unsolvable tasks); intermediate values stay positive integers.
// - Every problem is a pure function of (seed, index), like data/arithmetic.h.
// - Each sample carries the metadata its reward reads (countdown: numbers/target;
//   knights_knaves: names/roles; answer) and a step-by-step trace for SFT.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/status.h"

namespace r1kit::data {

// One prompt with its ground truth.
struct TaskSample {
  std::string question;     // the user's question (without chat template)
  std::string trace;        // a step-by-step solution, for SFT ("" if none)
  nlohmann::json metadata;  // what the rewards read; always has "answer"
};

struct CountdownTaskOptions {
  int min_numbers = 3;       // operands per problem, at least 2
  int max_numbers = 4;       // at most 8
  int64_t max_number = 99;   // operands in [1, max_number]
  int64_t max_target = 999;  // targets in [1, max_target]
};

// metadata: {"numbers": [..], "target": n, "answer": "<an expression that works>"}.
TaskSample countdown_task(uint64_t seed, uint64_t index, const CountdownTaskOptions& opts = {});

struct KnightsKnavesTaskOptions {
  int min_people = 3;  // at least 2
  int max_people = 5;  // at most 8
  int max_depth = 2;   // statement nesting: 1 = atoms only, 2 = one connective
};

// metadata: {"names": [..], "roles": ["knight"|"knave", ..], "answer": "(1) A is a ..."}.
TaskSample knights_knaves_task(uint64_t seed, uint64_t index,
                               const KnightsKnavesTaskOptions& opts = {});

// Reads one JSON object per line. The question is the first present of `prompt`,
// `question`; every other field is metadata (`answer`, `numbers`, ...). Blank lines are
// skipped; errors name the file and line.
StatusOr<std::vector<TaskSample>> load_task_jsonl(const std::string& path);

}  // namespace r1kit::data
