#include "grpo/step_metrics.h"

#include <cmath>

#include "core/metric_names.h"
#include "train/grad_sync.h"

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

const std::vector<ConsoleMetric>& console_metrics() {
  static const std::vector<ConsoleMetric> metrics = {metric::kReward,
                                                     {metric::kAccuracy, "acc"},
                                                     {metric::kEvalGreedyAccuracy, "eval_acc"},
                                                     {metric::kMeanLength, "len"},
                                                     {metric::kGradNorm, "gnorm"}};
  return metrics;
}

bool NoSignalWatch::update(const StepMetrics& m) {
  auto it = m.find(metric::kFracRewardZeroStd);
  const bool none = it != m.end() && it->second >= 1.0;
  streak_ = none ? streak_ + 1 : 0;
  return streak_ == kWarnAfter;
}

void add_rollout_metrics(const RolloutBatch& ro, int64_t step, bool dynamic_sampling,
                         StepMetrics& m) {
  const int64_t N = static_cast<int64_t>(ro.groups.size());
  m[metric::kTimeGenerate] = ro.generate_s;
  if (N > 0)  // 0 on-policy; 1 with rollout.overlap
    m[metric::kStaleness] = static_cast<double>(step - ro.groups[0].completions[0].policy_version);
  m[metric::kTimeReward] = ro.reward_s;
  if (ro.rejected_groups > 0) m[metric::kRejectedGroups] = static_cast<double>(ro.rejected_groups);
  m[metric::kFracRewardZeroStd] =
      ro.groups_seen > 0 ? static_cast<double>(ro.zero_std_groups) / ro.groups_seen : 0.0;
  if (dynamic_sampling) {
    m[metric::kDynPassRate] = ro.pass_rate;
    m[metric::kDynRounds] = static_cast<double>(ro.rounds);
    m[metric::kDynGroupsKept] = static_cast<double>(N);
  }
}

BatchMetricInputs batch_metric_inputs(const RolloutBatch& ro, const TrainBatch& tb) {
  BatchMetricInputs in;
  in.names = ro.names;
  in.accuracy_component = ro.accuracy_component;
  in.rewards = tb.rewards;
  for (const auto& c : ro.components) in.components.push_back(c.flatten());
  in.lengths = tb.completions.mask.sum(1);
  in.truncated = tb.completions.truncated;
  return in;
}

void add_batch_metrics(const BatchMetricInputs& in, StepMetrics& m) {
  m[metric::kReward] = finite_mean(in.rewards);
  m[metric::kRewardStd] = finite_std(in.rewards);
  for (size_t k = 0; k < in.names.size() && k < in.components.size(); ++k) {
    m[metric::kRewardComponentPrefix + in.names[k] + "/mean"] = finite_mean(in.components[k]);
    if (static_cast<int64_t>(k) == in.accuracy_component)
      m[metric::kAccuracy] = finite_mean(in.components[k].ge(1.0 - 1e-9).to(torch::kDouble));
  }
  m[metric::kMeanLength] = in.lengths.to(torch::kDouble).mean().item<double>();
  m[metric::kMinLength] = in.lengths.min().item<double>();
  m[metric::kMaxLength] = in.lengths.max().item<double>();
  m[metric::kClippedRatio] = in.truncated.to(torch::kFloat).mean().item<double>();
}

void add_update_metrics(const UpdateResult& u, double num_tokens, bool has_reference, bool moe,
                        StepMetrics& m) {
  const PolicyLossStats& s = u.stats;
  const double updates = static_cast<double>(std::max<int64_t>(u.updates, 1));
  m[metric::kSkippedFrac] = static_cast<double>(u.skipped_rows) / static_cast<double>(u.rows);
  m[metric::kNumTokens] = num_tokens;
  train::add_moe_load_metrics(u.expert_load, &m);  // the job's, also when this rank trained none
  if (u.logprob_max_abs_diff >= 0) m[metric::kLogprobMaxAbsDiff] = u.logprob_max_abs_diff;
  if (u.updates == 0 || u.skipped_rows >= u.rows) {
    for (const char* k :
         {metric::kLoss, metric::kPgLoss, metric::kGradNorm, metric::kEntropy, metric::kClipLow,
          metric::kClipHigh, metric::kClipRegion, metric::kPpoKl, metric::kRatioMean,
          metric::kRatioMax, metric::kTisMean, metric::kTisClipRatio, metric::kMismatchKl})
      m[k] = NAN;
    if (has_reference) m[metric::kKl] = NAN;
    if (moe) m[metric::kAuxLoss] = NAN;
    return;
  }
  m[metric::kLoss] = s.loss / updates;
  m[metric::kPgLoss] = s.pg_loss / updates;
  m[metric::kGradNorm] = u.grad_norm_sum / updates;
  m[metric::kEntropy] = s.entropy_mean;
  m[metric::kClipLow] = s.clip_ratio_low;
  m[metric::kClipHigh] = s.clip_ratio_high;
  m[metric::kClipRegion] = s.clip_ratio;
  m[metric::kPpoKl] = s.approx_kl;
  m[metric::kRatioMean] = s.ratio_mean;
  m[metric::kRatioMax] = s.ratio_max;
  m[metric::kTisMean] = s.tis_mean;
  m[metric::kTisClipRatio] = s.tis_clip_ratio;
  m[metric::kMismatchKl] = s.mismatch_kl;
  if (has_reference) m[metric::kKl] = s.kl_mean;
  if (moe) m[metric::kAuxLoss] = u.aux_loss_sum / updates;
  if (u.route_mismatch.recorded > 0) m[metric::kMoeRouteMismatch] = u.route_mismatch.rate();
}

}  // namespace r1kit::grpo
