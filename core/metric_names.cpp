#include "core/metric_names.h"

#include <string_view>
#include <utility>

namespace r1kit::metric {

std::string_view known_metric_group(std::string_view name) {
  static constexpr std::pair<const char*, const char*> kGroups[] = {
      {kReward, "Reward"},
      {kRewardStd, "Reward"},
      {kRemoteRewardFailures, "Reward"},
      {kAccuracy, "Accuracy and evaluation"},
      {kEvalGreedyAccuracy, "Accuracy and evaluation"},
      {kEvalPassAt1, "Accuracy and evaluation"},
      {kEvalFormat, "Accuracy and evaluation"},
      {kEvalMeanLength, "Accuracy and evaluation"},
      {kEvalSampleMeanLength, "Accuracy and evaluation"},
      {kKl, "KL"},
      {kPpoKl, "KL"},
      {kReverseKl, "KL"},
      {kEvalReverseKl, "KL"},
      {kEntropy, "Entropy"},
      {kMeanLength, "Completion length"},
      {kMinLength, "Completion length"},
      {kMaxLength, "Completion length"},
      {kClippedRatio, "Clip ratios"},
      {kClipLow, "Clip ratios"},
      {kClipHigh, "Clip ratios"},
      {kClipRegion, "Clip ratios"},
      {kTisClipRatio, "Clip ratios"},
      {kLoss, "Loss"},
      {kPgLoss, "Loss"},
      {kAuxLoss, "Loss"},
      {kMtpLoss, "Loss"},
      {kEvalLoss, "Loss"},
      {kLr, "Other"},
      {kGradNorm, "Other"},
      {kTokensPerS, "Other"},
      {kEpoch, "Other"},
      {kLossTokens, "Other"},
      {kFracRewardZeroStd, "Other"},
      {kNumTokens, "Other"},
      {kRatioMean, "Other"},
      {kRatioMax, "Other"},
      {kTisMean, "Other"},
      {kSkippedFrac, "Other"},
      {kSkippedSteps, "Other"},
      {kRejectedGroups, "Other"},
      {kMoeMaxLoadOverMean, "Other"},
      {kStaleness, "Other"},
      {kLogprobMaxAbsDiff, "Other"},
      {kPolicyVersion, "Other"},
      {kDynPassRate, "Other"},
      {kDynRounds, "Other"},
      {kDynGroupsKept, "Other"},
      {kStepTime, "Other"},
      {kTimeGenerate, "Other"},
      {kTimeReward, "Other"},
      {kTimeReference, "Other"},
      {kTimeTrain, "Other"},
      {kTimeSync, "Other"},
      {kTimeEval, "Other"},
      {kTimeTeacher, "Other"},
  };
  for (const auto& [key, group] : kGroups)
    if (name == key) return group;
  return "";
}

}  // namespace r1kit::metric
