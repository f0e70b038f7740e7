// Evaluation of a policy on held-out task problems: pass@1 (mean@n), pass@k, maj@k,
// greedy pass@1, format rate, completion length and finish reasons.
//
// Follows the metrics of DeepSeek-R1 §3 (pass@1 as the mean accuracy over k sampled
// responses, cons@k as majority vote) and the unbiased pass@k estimator of Chen et al.
// 2021 ("Evaluating Large Language Models Trained on Code", §2.1):
//   pass@k = E_problems[ 1 - C(n - c, k) / C(n, k) ],
// n samples per problem, c of them correct, computed as a product for stability.
//
// What counts as "correct" and "well-formatted" (the reward convention):
// - `rewards` is the task's CombinedReward (reward::build_task_rewards: the recipe's
//   `reward:` list or the task's defaults). Its component with role accuracy
//   (data/reward_spec.h) is the checker: a sample is correct iff that component's raw
//   score >= EvalOptions::correct_threshold (1.0 by default, every built-in checker's
//   correct_score). A NaN score ("cannot judge") counts as not correct and is counted in
//   EvalReport::unjudged. No accuracy component is an error.
// - The first component with role format is the format reward: a sample is
//   well-formatted iff its score >= 1. Without one the format rate is NaN (null in JSON).
// - Every component's mean raw score and the mean weighted total are reported too.
// Majority vote (maj@k): each of the first k samples votes for its extracted answer
// (reward::extract_answer over the <answer> tag, \boxed, ..., then
// reward::normalize_answer); samples without an answer do not vote. The most frequent
// answer wins, ties going to the answer seen first in sample order; the vote is correct
// iff the first sample that gave the winning answer is correct. No votes: not correct.
//
// Different on purpose: the metrics are per problem first, then averaged over problems
// (every problem weighs the same, however long its completions).
//
// Thread-safety: evaluate() uses `source` for the whole call; it holds no state.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "data/prompt_format.h"
#include "data/task.h"
#include "data/task_source.h"
#include "reward/reward.h"
#include "rollout/rollout_source.h"

namespace r1kit::data {
class Tokenizer;
}

namespace r1kit::eval {

struct EvalOptions {
  int64_t k = 8;                   // samples used by pass@k and maj@k
  int64_t n = 0;                   // samples per problem (n >= k); 0 = k. pass@1 is mean@n
  double temperature = 1.0;        // sampling temperature of the n samples (> 0)
  double top_p = 1.0;              // nucleus mass (1 = off)
  int64_t max_new_tokens = 256;    // completion length cap, in tokens
  bool greedy_pass1 = true;        // also one greedy (temperature 0) sample per problem
  uint64_t seed = 0;               // sampling seed; prompt i, sample j draws from (seed, i, j)
  int64_t batch = 16;              // prompts per generate() call (memory vs. overhead)
  int64_t max_problems = 0;        // evaluate the first max_problems problems; 0 = all
  double correct_threshold = 1.0;  // accuracy score that counts as correct
  std::vector<std::string> stop_strings;  // extra stop strings (EOS always stops)
  std::string records_path;               // non-empty: one JSON object per problem written here
  bool records_for_scoring = false;       // records as ProblemRecord::score_lines instead
  // Called after every generate() call with (problems done, problems total).
  std::function<void(int64_t, int64_t)> on_progress;
};

// Text <-> ids for evaluation: a Tokenizer (tokenizer_codec) or, in tests, anything else.
struct TextCodec {
  std::function<std::vector<int64_t>(std::string_view)> encode;  // no BOS/EOS added
  std::function<std::string(std::span<const int64_t>)> decode;
  std::vector<int64_t> stop_token_ids;  // e.g. the EOS id
};
// encode/decode through `tokenizer` (copied; copies share the model), EOS as stop id.
TextCodec tokenizer_codec(const data::Tokenizer& tokenizer);

// One sampled completion of a problem.
struct SampleRecord {
  std::string text;                // decoded completion
  std::string answer;              // extracted, normalised answer ("" when none)
  double accuracy = 0;             // raw accuracy score (NaN: cannot judge)
  double format = 0;               // raw format score (NaN when no format reward)
  double total = 0;                // weighted total reward
  std::vector<double> components;  // [K] raw score of every reward component
  bool correct = false;            // accuracy >= correct_threshold
  int64_t length = 0;              // tokens
  std::string finish_reason;       // stop | length | abort
};

// The results of one problem.
struct ProblemRecord {
  int64_t index = 0;  // position in the problem list
  std::string question;
  nlohmann::json metadata;            // ground truth
  std::vector<SampleRecord> samples;  // [n], sample order
  int64_t num_correct = 0;            // c, among the n samples
  double pass_at_k = 0;               // this problem's unbiased pass@k
  std::string majority_answer;        // "" when no sample gave an answer
  bool majority_correct = false;
  bool has_greedy = false;
  SampleRecord greedy;  // valid when has_greedy
  nlohmann::json to_json() const;
  // One line per sample in `r1kit reward score`'s input shape: {...metadata, "prompt":
  // question, "completion": text}, newline-terminated (the problem's samples are
  // consecutive lines with one prompt: a group).
  std::string score_lines() const;
};

struct EvalReport {
  int64_t problems = 0;  // problems evaluated
  int64_t n = 0;         // samples per problem
  int64_t k = 0;         // k of pass@k / maj@k
  double temperature = 0;
  int64_t max_new_tokens = 0;
  double pass_at_1 = 0;               // mean accuracy over the n samples (mean@n)
  double pass_at_k = 0;               // unbiased pass@k (any-correct when n == k)
  std::map<int64_t, double> pass_at;  // pass@j for j = 1, 2, 4, ..., and k (j <= n)
  double maj_at_k = 0;                // majority vote over the first k samples
  double greedy_pass_at_1 = -1;       // accuracy of the greedy sample; -1 when not run
  double greedy_format_rate = -1;     // format rate of the greedy sample; -1 when not run
  double format_rate = 0;             // fraction of samples with format score >= 1; NaN: no reward
  double mean_length = 0;             // completion tokens, mean over sampled completions
  double greedy_mean_length = -1;     // -1 when not run
  double mean_reward = 0;             // mean weighted total (NaN totals excluded)
  std::map<std::string, double> component_means;  // reward component -> mean raw score
  std::map<std::string, int64_t> finish_reasons;  // "stop"/"length"/"abort" -> samples
  int64_t unjudged = 0;                           // samples whose accuracy score was NaN
  int64_t generated_tokens = 0;                   // all completions, greedy included
  double seconds = 0;                             // wall time
  std::vector<ProblemRecord> records;             // per problem, in order

  // Everything above except `records`, as one JSON object (NaN -> null).
  nlohmann::json to_json() const;
  // Flat scalars for a MetricsWriter: "<prefix>pass@1", "<prefix>pass@8", "<prefix>maj@8",
  // "<prefix>greedy_pass@1", "<prefix>format", "<prefix>completion_len",
  // "<prefix>reward", "<prefix>reward/<component>", "<prefix>finish/<reason>" (fraction).
  std::map<std::string, double> metrics(const std::string& prefix = "eval/") const;
  // A human-readable table.
  std::string table() const;
};

// Unbiased pass@k for one problem with n samples of which c are correct (Chen et al.
// 2021): 1 - C(n-c, k)/C(n, k); 1 when n - c < k. Requires 1 <= k <= n.
double pass_at_k(int64_t n, int64_t c, int64_t k);

// The majority answer among `answers` ("" entries do not vote; ties: first seen) and the
// index of its first occurrence; {"", -1} when nothing votes.
std::pair<std::string, int64_t> majority_vote(const std::vector<std::string>& answers);

// The answer a completion gives, for voting: extracted (<answer> tag, \boxed, ...) and
// normalised; "" when there is none or it is hedged.
std::string vote_answer(std::string_view completion);

// Below this format rate an evaluation warns (low_format_rate_warning).
inline constexpr double kLowFormatRate = 0.10;

// "" when `format_rate` is NaN or at least kLowFormatRate; else a warning naming the
// likely cause, from how the prompt format was chosen (data/prompt_format.h): a
// template that contradicts the model's record ("trained with X, evaluated with Y"),
// a model without a record (name the template it was trained with), or, with the
// recorded template, a model that did not learn the answer format.
std::string low_format_rate_warning(double format_rate, const data::ResolvedPromptFormat& format);

using RenderFn = std::function<std::string(const data::TaskSample&)>;

// Evaluates `problems`, each rendered by `render` and encoded by `codec`. Errors: bad
// options (naming the field), no reward with role accuracy, a generate() failure, an
// unwritable records file.
StatusOr<EvalReport> evaluate(rollout::RolloutSource& source, const TextCodec& codec,
                              const std::vector<data::TaskSample>& problems, const RenderFn& render,
                              const reward::CombinedReward& rewards, const EvalOptions& options);

// The task's held-out problems (task.eval()), rendered with the task's template.
StatusOr<EvalReport> evaluate(rollout::RolloutSource& source, const data::Tokenizer& tokenizer,
                              const data::TaskSource& task, const reward::CombinedReward& rewards,
                              const EvalOptions& options);

}  // namespace r1kit::eval
