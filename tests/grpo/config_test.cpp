// GrpoLossConfig (grpo/config.h): YAML binding, defaults, rejected combinations.
#include "grpo/config.h"

#include <gtest/gtest.h>

#include <string>

#include "core/config.h"

namespace r1kit::grpo {
namespace {

struct Recipe {
  GrpoLossConfig loss;
  void visit(ConfigVisitor& v) { v.section("loss", loss, "GRPO loss"); }
};

TEST(GrpoLossConfig, DefaultsValidateAndConvert) {
  GrpoLossConfig c;
  ASSERT_TRUE(validate_config(c).ok());
  EXPECT_FALSE(c.needs_reference());
  auto a = c.advantage_options();
  EXPECT_EQ(a.baseline, Baseline::kGroupMean);
  EXPECT_EQ(a.scale, RewardScale::kGroup);
  auto p = c.policy_loss_options();
  EXPECT_EQ(p.aggregation, LossAggregation::kTokenMean);
  EXPECT_EQ(p.ratio_level, RatioLevel::kToken);
  EXPECT_EQ(p.tis, TisLevel::kToken);
  EXPECT_EQ(p.kl_coef, 0.0);
  EXPECT_DOUBLE_EQ(p.eps_low, 0.2);
  EXPECT_DOUBLE_EQ(p.eps_high, 0.2);
}

TEST(GrpoLossConfig, LoadsDrGrpoAndDapoStyleRecipes) {
  auto dr = load_config_string<Recipe>(
      "loss: {scale_rewards: none, loss_aggregation: seq-mean-token-sum-norm}");
  ASSERT_TRUE(dr.ok()) << dr.status().to_string();
  EXPECT_EQ(dr->loss.advantage_options().scale, RewardScale::kNone);
  EXPECT_EQ(dr->loss.policy_loss_options().aggregation, LossAggregation::kSeqMeanTokenSumNorm);

  auto dapo = load_config_string<Recipe>(
      "loss: {eps_high: 0.28, dynamic_sampling: true, mask_truncated_completions: true}",
      {"loss.advantage_estimator=rloo", "loss.kl_coef=0.001", "loss.kl_placement=reward"});
  ASSERT_TRUE(dapo.ok()) << dapo.status().to_string();
  EXPECT_DOUBLE_EQ(dapo->loss.policy_loss_options().eps_high, 0.28);
  EXPECT_EQ(dapo->loss.advantage_options().baseline, Baseline::kLeaveOneOut);
  EXPECT_TRUE(dapo->loss.needs_reference());
  EXPECT_TRUE(dapo->loss.kl_in_reward());
  EXPECT_EQ(dapo->loss.policy_loss_options().kl_coef, 0.0);  // not in the loss

  auto gspo = load_config_string<Recipe>(
      "loss: {ratio_level: sequence, loss_aggregation: seq-mean-token-mean, kl_coef: 0.04}");
  ASSERT_TRUE(gspo.ok()) << gspo.status().to_string();
  EXPECT_EQ(gspo->loss.policy_loss_options().ratio_level, RatioLevel::kSequence);
  EXPECT_DOUBLE_EQ(gspo->loss.policy_loss_options().kl_coef, 0.04);
  EXPECT_EQ(gspo->loss.kl_estimator, KlEstimator::kK3);

  auto m1 = load_config_string<Recipe>(
      "loss: {surrogate: cispo, eps_low: 0.99, eps_high: 4, loss_aggregation: seq-mean-token-sum,"
      " advantage_estimator: reinforce++-baseline, scale_rewards: batch}");
  ASSERT_TRUE(m1.ok()) << m1.status().to_string();
  EXPECT_EQ(m1->loss.policy_loss_options().surrogate, Surrogate::kCispo);
  EXPECT_EQ(m1->loss.policy_loss_options().aggregation, LossAggregation::kSeqMeanTokenSum);
  EXPECT_EQ(m1->loss.advantage_options().baseline, Baseline::kReinforcePlusPlus);
}

void expect_rejected(const std::string& yaml, const std::string& key1, const std::string& key2) {
  auto r = load_config_string<Recipe>(yaml);
  ASSERT_FALSE(r.ok()) << yaml;
  const auto& m = r.status().message();
  EXPECT_NE(m.find(key1), std::string::npos) << m;
  EXPECT_NE(m.find(key2), std::string::npos) << m;
}

TEST(GrpoLossConfig, RejectsImpossibleCombinationsNamingBothKeys) {
  expect_rejected("loss: {dual_clip_c: 1.1, eps_high: 0.28}", "dual_clip_c", "eps_high");
  expect_rejected("loss: {ratio_level: sequence}", "ratio_level", "loss_aggregation");
  expect_rejected("loss: {kl_coef: 0.1, kl_estimator: k1}", "kl_estimator", "kl_placement");
  expect_rejected("loss: {surrogate: cispo, dual_clip_c: 3}", "surrogate", "dual_clip_c");
  expect_rejected("loss: {advantage_estimator: reinforce++-baseline}", "advantage_estimator",
                  "scale_rewards");
  // k1 is fine in the reward, and when the KL is off.
  EXPECT_TRUE(load_config_string<Recipe>("loss: {kl_coef: 0.1, kl_estimator: k1, "
                                         "kl_placement: reward}")
                  .ok());
  EXPECT_TRUE(load_config_string<Recipe>("loss: {kl_estimator: k1}").ok());
}

TEST(GrpoLossConfig, RejectsBadValues) {
  EXPECT_FALSE(load_config_string<Recipe>("loss: {eps_low: 1.5}").ok());
  EXPECT_FALSE(load_config_string<Recipe>("loss: {eps_low: 1.0}").ok());  // ratio floor 0
  EXPECT_FALSE(load_config_string<Recipe>("loss: {tis_cap: 0.5}").ok());
  EXPECT_FALSE(load_config_string<Recipe>("loss: {scale_rewards: yes}").ok());
  EXPECT_FALSE(load_config_string<Recipe>("loss: {loss_aggregation: mean}").ok());
  EXPECT_FALSE(load_config_string<Recipe>("loss: {epsilon: 0.2}").ok());  // unknown key
}

TEST(GrpoLossConfig, DumpRoundTrips) {
  Recipe r;
  r.loss.eps_high = 0.28;
  r.loss.tis = TisLevel::kSequence;
  auto back = load_config_string<Recipe>(dump_config(r));
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_DOUBLE_EQ(back->loss.eps_high, 0.28);
  EXPECT_EQ(back->loss.tis, TisLevel::kSequence);
}

}  // namespace
}  // namespace r1kit::grpo
