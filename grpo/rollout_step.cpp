#include "grpo/rollout_step.h"

#include <cmath>
#include <numeric>

#include "core/rng.h"
#include "core/timer.h"
#include "grpo/data_parallel.h"
#include "grpo/dynamic_sampling.h"
#include "grpo/kl.h"
#include "grpo/policy_loss.h"
#include "policy/exact_forward.h"
#include "policy/logprobs.h"
#include "reward/score_group.h"
#include "rollout/engine.h"

namespace r1kit::grpo {

struct RolloutCollector::Round {
  std::vector<data::TaskSample> problems;
  std::vector<std::vector<int64_t>> prompts;
  std::vector<rollout::Group> groups;
  torch::Tensor rewards;                  // [n, G] float64
  std::vector<torch::Tensor> components;  // [K] of [n, G] float64
};

RolloutCollector::RolloutCollector(const GrpoRecipe& recipe, const data::Tokenizer& tokenizer,
                                   const data::TaskSource& tasks,
                                   const reward::CombinedReward& rewards,
                                   rollout::RolloutSource& source, train::DataParallel& dp)
    : r_(recipe), tok_(tokenizer), tasks_(tasks), rewards_(rewards), source_(source), dp_(dp) {}

StatusOr<RolloutCollector::Round> RolloutCollector::generate_round(int64_t step, uint64_t first,
                                                                   int64_t n) const {
  rollout::GenerateRequest req;
  req.group_size = r_.rollout.group_size;
  req.sampling.temperature = r_.rollout.temperature;
  req.sampling.top_k = r_.rollout.top_k;
  req.sampling.top_p = r_.rollout.top_p;
  req.sampling.max_new_tokens = r_.rollout.max_new_tokens;
  req.sampling.stop_token_ids = tok_.stop_ids();
  req.sampling.seed = derive_seed(r_.grpo.seed, {0x524f4c4cULL, static_cast<uint64_t>(step)});
  req.record_experts = true;  // MoE routing for replay or moe/route_mismatch (dense: none)
  req.exact = exact_;
  req.bf16_compute = bf16_compute_;
  Round round;
  round.problems = tasks_.train_batch(first, n);
  for (int64_t i = 0; i < n; ++i) {
    std::vector<int64_t> ids;
    for (int32_t id : tok_.encode(tasks_.render(round.problems[i]))) ids.push_back(id);
    round.prompts.push_back(ids);
    req.prompts.push_back({std::move(ids), static_cast<int64_t>(first) + i});
  }
  ASSIGN_OR_RETURN(round.groups, source_.generate(req));
  return round;
}

void RolloutCollector::score_round(Round& round, RolloutBatch& out) const {
  const int64_t n = static_cast<int64_t>(round.groups.size()), G = r_.rollout.group_size;
  round.rewards = torch::full({n, G}, NAN, torch::kDouble);
  const rollout::DecodeFn decode = rollout::tokenizer_decoder(tok_);
  const std::vector<int64_t> stop = tok_.stop_ids();  // kept by the engine, not judged
  for (int64_t i = 0; i < n; ++i) {
    const auto& completions = round.groups[i].completions;
    for (const auto& comp : completions)
      out.generated_tokens += static_cast<int64_t>(comp.token_ids.size());
    if (round.groups[i].rejected) {  // cannot be judged (rollout/checked_source.h)
      ++out.rejected_groups;         // its rewards and components stay NaN
      continue;
    }
    const reward::GroupScores s =
        reward::score_completions(rewards_, tasks_.render(round.problems[i]),
                                  round.problems[i].metadata, completions, decode, stop)
            .scores;
    out.reward_failures += s.failures;
    if (round.components.empty()) {
      out.names = s.names;
      for (size_t k = 0; k < s.names.size(); ++k)
        round.components.push_back(torch::full({n, G}, NAN, torch::kDouble));
    }
    for (int64_t j = 0; j < G; ++j) {
      round.rewards[i][j] = s.total[j];
      for (size_t k = 0; k < round.components.size(); ++k)
        round.components[k][i][j] = s.components[k][j];
    }
  }
}

StatusOr<RolloutBatch> RolloutCollector::collect(int64_t step, uint64_t data_pos) const {
  const int64_t P = r_.rollout.prompts_per_step;
  const bool dynamic = r_.grpo.loss.dynamic_sampling;
  RolloutBatch out;
  out.accuracy_component = rewards_.role_index(reward::kRoleAccuracy);
  DynamicSampler ds(P, dynamic ? r_.grpo.loss.dynamic_sampling_max_rounds : 1);
  std::vector<torch::Tensor> kept_rewards;
  std::vector<std::vector<torch::Tensor>> kept_components;
  while (ds.should_generate()) {
    const int64_t n = dynamic ? ds.needed() : P;
    // The round's n problems are global; this rank generates its shard of them.
    const train::Shard mine = train::shard_of(n, dp_.rank(), dp_.world_size());
    const uint64_t first = data_pos + static_cast<uint64_t>(mine.begin);
    data_pos += static_cast<uint64_t>(n);
    const auto t_gen = SteadyClock::now();
    Round round;
    if (mine.size() > 0) {
      ASSIGN_OR_RETURN(round, generate_round(step, first, mine.size()));
    }
    out.generate_s += seconds_since(t_gen);
    const auto t_rew = SteadyClock::now();
    score_round(round, out);
    out.reward_s += seconds_since(t_rew);
    out.groups_seen += mine.size();
    out.zero_std_groups += mine.size() - informative_groups(round.rewards).sum().item<int64_t>();

    // Every rank decides on every group's rewards, so all keep the same ones.
    std::vector<int64_t> keep =
        ds.add_round(dynamic ? gather_round_rewards(round.rewards, mine, n, dp_) : round.rewards);
    if (!dynamic) {
      keep.resize(n);
      std::iota(keep.begin(), keep.end(), 0);
    }
    for (size_t j = 0; j < keep.size(); ++j) {
      const int64_t g = keep[j];
      if (g < mine.begin || g >= mine.end) continue;  // another rank's group
      const int64_t i = g - mine.begin;
      out.job_groups.push_back(out.job_groups_total + static_cast<int64_t>(j));
      out.problems.push_back(round.problems[i]);
      out.prompt_ids.push_back(round.prompts[i]);
      out.groups.push_back(std::move(round.groups[i]));
      kept_rewards.push_back(round.rewards[i]);
      kept_components.emplace_back();
      for (auto& t : round.components) kept_components.back().push_back(t[i]);
    }
    out.job_groups_total += static_cast<int64_t>(keep.size());
  }
  out.rounds = ds.rounds();
  out.pass_rate = ds.pass_rate();
  out.data_pos_after = data_pos;
  if (!kept_rewards.empty()) {
    out.rewards = torch::stack(kept_rewards);
    for (size_t k = 0; k < out.names.size(); ++k) {
      std::vector<torch::Tensor> rows;
      for (auto& kc : kept_components) rows.push_back(kc[k]);
      out.components.push_back(torch::stack(rows));
    }
  }
  return out;
}

torch::Tensor logprobs_no_grad(policy::TransformerImpl& m,
                               const std::vector<std::vector<int64_t>>& row_prompts,
                               const CompletionBatch& batch, double temperature, int64_t micro,
                               const policy::Truncation& truncation,
                               const torch::Tensor& replay_experts, bool shared_prompt,
                               bool exact) {
  torch::NoGradGuard ng;
  const int64_t B = batch.token_ids.size(0);
  std::vector<torch::Tensor> parts;
  for (int64_t b0 = 0; b0 < B; b0 += micro) {
    const int64_t b1 = std::min(B, b0 + micro);
    std::vector<std::vector<int64_t>> p(row_prompts.begin() + b0, row_prompts.begin() + b1);
    auto ids = batch.token_ids.slice(0, b0, b1);
    auto mask = batch.mask.slice(0, b0, b1);
    policy::CompletionLogProbs out =
        shared_prompt && !replay_experts.defined()
            ? policy::shared_prompt_logprobs(m, p, ids, mask, temperature, false, truncation)
            : policy::completion_logprobs(
                  m, p, ids, mask, temperature, false, false, truncation,
                  replay_experts.defined() ? replay_experts.slice(0, b0, b1) : torch::Tensor());
    if (exact) policy::make_logprobs_exact(out, m, p, ids, mask, temperature, truncation);
    parts.push_back(out.logprobs);
  }
  return torch::cat(parts);
}

TrainBatch prepare_train_batch(const RolloutBatch& ro, const GrpoRecipe& r,
                               policy::TransformerImpl* reference, train::DataParallel& dp) {
  const GrpoLossConfig& lc = r.grpo.loss;
  const int64_t G = r.rollout.group_size;
  TrainBatch tb;
  tb.completions = pack_completions(ro.groups);
  std::vector<int64_t> prompt_lengths;
  for (const auto& p : ro.prompt_ids) prompt_lengths.push_back(static_cast<int64_t>(p.size()));
  tb.routed_experts = pack_routed_experts(ro.groups, prompt_lengths);
  for (const auto& prompt : ro.prompt_ids)
    for (int64_t j = 0; j < G; ++j) tb.row_prompts.push_back(prompt);
  tb.rewards = ro.rewards.reshape({-1}).to(torch::kFloat);
  if (ro.job_groups.size() == ro.groups.size()) {
    for (int64_t g : ro.job_groups)
      for (int64_t j = 0; j < G; ++j) tb.job_rows.push_back(g * G + j);
    tb.job_rows_total = ro.job_groups_total * G;
  }
  if (reference) {
    const auto t_ref = SteadyClock::now();
    tb.ref_logprobs = logprobs_no_grad(*reference, tb.row_prompts, tb.completions,
                                       r.rollout.temperature, r.grpo.micro_batch_size,
                                       r.rollout.truncation(), {}, r.use_shared_prompt());
    tb.ref_seconds = seconds_since(t_ref);
  }
  torch::Tensor rewards = tb.rewards;
  if (lc.kl_in_reward())
    rewards = kl_penalized_rewards(rewards, tb.completions.behaviour_logprobs, tb.ref_logprobs,
                                   tb.completions.mask, lc.kl_estimator, lc.kl_coef);
  tb.advantages = job_advantages(rewards, tb.job_rows, tb.job_rows_total, r, dp);
  // Unscored completions and (optionally) truncated ones get no loss.
  tb.mask = tb.completions.mask * tb.advantages.valid.to(torch::kFloat).unsqueeze(1);
  if (lc.mask_truncated_completions) tb.mask = mask_truncated(tb.mask, tb.completions.truncated);
  return tb;
}

}  // namespace r1kit::grpo
