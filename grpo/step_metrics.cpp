#include "grpo/step_metrics.h"

#include <fmt/format.h>

#include <cmath>

namespace r1kit::grpo {
namespace {

double finite_std(const torch::Tensor& t) {
  auto f = t.flatten();
  auto v = f.masked_select(torch::isfinite(f));
  return v.numel() < 2 ? 0.0 : v.std().item<double>();
}

}  // namespace

double finite_mean(const torch::Tensor& t) {
  auto f = t.flatten();
  auto ok = torch::isfinite(f);
  const int64_t n = ok.sum().item<int64_t>();
  return n == 0 ? NAN : f.masked_select(ok).sum().item<double>() / n;
}

const std::vector<std::string>& console_metric_keys() {
  static const std::vector<std::string> keys = {"reward",
                                                "accuracy",
                                                "frac_reward_zero_std",
                                                "completions/mean_length",
                                                "kl",
                                                "entropy",
                                                "clip_ratio/region_mean",
                                                "grad_norm",
                                                "eval/greedy_accuracy",
                                                "step_time"};
  return keys;
}

void add_rollout_metrics(const RolloutBatch& ro, int64_t step, bool dynamic_sampling,
                         StepMetrics& m) {
  const int64_t N = static_cast<int64_t>(ro.groups.size());
  m["timing/generate"] = ro.generate_s;
  if (N > 0)  // 0 on-policy; 1 with rollout.overlap
    m["rollout/staleness"] = static_cast<double>(step - ro.groups[0].completions[0].policy_version);
  m["timing/reward"] = ro.reward_s;
  m["frac_reward_zero_std"] =
      ro.groups_seen > 0 ? static_cast<double>(ro.zero_std_groups) / ro.groups_seen : 0.0;
  if (dynamic_sampling) {
    m["dynamic_sampling/pass_rate"] = ro.pass_rate;
    m["dynamic_sampling/rounds"] = static_cast<double>(ro.rounds);
    m["dynamic_sampling/groups_kept"] = static_cast<double>(N);
  }
}

void add_batch_metrics(const RolloutBatch& ro, const TrainBatch& tb, StepMetrics& m) {
  m["reward"] = finite_mean(tb.rewards);
  m["reward_std"] = finite_std(tb.rewards);
  for (size_t k = 0; k < ro.names.size(); ++k) {
    m["rewards/" + ro.names[k] + "/mean"] = finite_mean(ro.components[k]);
    if (static_cast<int64_t>(k) == ro.accuracy_component)
      m["accuracy"] = finite_mean(ro.components[k].ge(1.0 - 1e-9).to(torch::kDouble));
  }
  auto lengths = tb.completions.mask.sum(1);
  m["completions/mean_length"] = lengths.mean().item<double>();
  m["completions/min_length"] = lengths.min().item<double>();
  m["completions/max_length"] = lengths.max().item<double>();
  m["completions/clipped_ratio"] = tb.completions.truncated.to(torch::kFloat).mean().item<double>();
}

void add_update_metrics(const UpdateResult& u, const TrainBatch& tb, bool has_reference, bool moe,
                        StepMetrics& m) {
  const PolicyLossStats& s = u.stats;
  const double updates = static_cast<double>(std::max<int64_t>(u.updates, 1));
  m["train/skipped_frac"] = static_cast<double>(u.skipped_rows) / static_cast<double>(u.rows);
  m["loss"] = s.loss / updates;
  m["pg_loss"] = s.pg_loss / updates;
  m["grad_norm"] = u.grad_norm_sum / updates;
  m["entropy"] = s.entropy_mean;
  m["clip_ratio/low_mean"] = s.clip_ratio_low;
  m["clip_ratio/high_mean"] = s.clip_ratio_high;
  m["clip_ratio/region_mean"] = s.clip_ratio;
  m["ppo_kl"] = s.approx_kl;
  m["ratio/mean"] = s.ratio_mean;
  m["ratio/max"] = s.ratio_max;
  m["tis/mean"] = s.tis_mean;
  m["tis/clip_ratio"] = s.tis_clip_ratio;
  if (has_reference) m["kl"] = s.kl_mean;
  if (moe) m["aux_loss"] = u.aux_loss_sum / updates;
  m["num_tokens"] = tb.mask.sum().item<double>();
  if (u.expert_load.defined() && u.expert_load.numel() > 0) {
    auto frac = u.expert_load / u.expert_load.sum(1, true).clamp_min(1);
    m["moe/max_load_over_mean"] = (std::get<0>(frac.max(1)) * frac.size(1)).mean().item<double>();
    for (int64_t l = 0; l < frac.size(0); ++l)
      for (int64_t e = 0; e < frac.size(1); ++e)
        m[fmt::format("moe/load/layer{}/expert{}", l, e)] = frac[l][e].item<double>();
  }
}

}  // namespace r1kit::grpo
