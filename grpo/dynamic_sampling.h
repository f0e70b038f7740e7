// Dynamic sampling (DAPO, arXiv 2503.14476 §3.2; verl recipe/dapo): groups whose
// rewards are all equal carry no policy gradient under group-relative advantages, so
// they are dropped and more prompts are generated until the batch is full again, up
// to a number of generation rounds.
//
// Follows DAPO's filter "0 < |{correct}| < G" generalised to any reward: a group is
// kept when its finite rewards are not all equal (range > kZeroStdTol) and it has at
// least two of them (NaN = "no score" is ignored, as in advantages.h).
// Different from verl: when the rounds run out, verl raises an error; here the state
// only reports it (exhausted()), and the trainer decides (train on what was kept, as
// OpenRLHF does, and log the pass rate).
// Thread-safety: DynamicSampler is not thread-safe; the functions are pure.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <vector>

namespace r1kit::grpo {

// [N] bool: true for groups that carry signal. rewards: [N, G] (NaN allowed).
torch::Tensor informative_groups(const torch::Tensor& group_rewards);

// Indices (into the N groups) of the informative groups, in order.
std::vector<int64_t> select_informative_groups(const torch::Tensor& group_rewards);

// Bookkeeping of one step's refill loop:
//   DynamicSampler ds(/*target_groups=*/B, /*max_rounds=*/cfg.dynamic_sampling_max_rounds);
//   while (ds.should_generate()) {
//     groups = generate(...); rewards = score(groups);            // [N, G]
//     for (int64_t i : ds.add_round(rewards)) keep(groups[i]);
//   }
//   // ds.kept() <= B groups; ds.exhausted() when fewer; log ds.pass_rate().
class DynamicSampler {
 public:
  DynamicSampler(int64_t target_groups, int64_t max_rounds);

  // Records one generation round; returns the indices of the groups to keep, never
  // more than still needed to reach the target (extra informative groups are left).
  std::vector<int64_t> add_round(const torch::Tensor& group_rewards);

  bool satisfied() const { return kept_ >= target_; }  // the batch is full
  bool exhausted() const { return !satisfied() && rounds_ >= max_rounds_; }
  bool should_generate() const { return !satisfied() && rounds_ < max_rounds_; }
  int64_t kept() const { return kept_; }  // groups kept so far
  int64_t needed() const { return target_ - kept_; }
  int64_t rounds() const { return rounds_; }            // generation rounds recorded
  int64_t seen() const { return seen_; }                // groups seen
  int64_t informative() const { return informative_; }  // informative groups seen
  // informative / seen (OpenRLHF dynamic_filtering_pass_rate); 0 before any round.
  double pass_rate() const;

 private:
  int64_t target_;           // groups wanted for the step
  int64_t max_rounds_;       // generation rounds allowed
  int64_t kept_ = 0;         // groups kept
  int64_t rounds_ = 0;       // rounds recorded
  int64_t seen_ = 0;         // groups seen
  int64_t informative_ = 0;  // informative groups seen (kept or not)
};

}  // namespace r1kit::grpo
