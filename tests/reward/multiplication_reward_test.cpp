// The `multiplication` task's checker (its default accuracy reward, `arithmetic`) on its
// answers: exact for products up to 18 digits, a near miss is wrong, and a completion
// of the task's own trace and answer is right and well-formed.
#include <gtest/gtest.h>

#include "data/task_source.h"
#include "reward/reward.h"

namespace r1kit::reward {
namespace {

TEST(MultiplicationRewardTest, TheCheckerIsExactOnLongProducts) {
  auto sec =
      load_config_string<data::TaskSection>("{name: multiplication, min_digits: 7, max_digits: 9}");
  ASSERT_TRUE(sec.ok()) << sec.status().to_string();
  auto rewards = build_task_rewards({}, sec->default_rewards());
  ASSERT_TRUE(rewards.ok()) << rewards.status().to_string();
  const int64_t acc = rewards->role_index(kRoleAccuracy);
  const int64_t format = rewards->role_index(kRoleFormat);
  ASSERT_GE(acc, 0);
  ASSERT_GE(format, 0);
  for (uint64_t i = 0; i < 200; ++i) {
    const data::TaskSample p = sec->task().generate(1, i);
    const std::string answer = p.metadata["answer"].get<std::string>();
    std::string near = answer;
    near.back() = near.back() == '9' ? '8' : static_cast<char>(near.back() + 1);  // off by one
    std::vector<Sample> group(3);
    group[0].completion = "<think> " + p.trace + " </think> <answer> " + answer + " </answer>";
    group[1].completion = "<think> x </think> <answer> " + near + " </answer>";
    group[2].completion = "<think> x </think> <answer> many </answer>";
    for (auto& s : group) s.metadata = p.metadata;
    const GroupScores g = rewards->score(group);
    ASSERT_EQ(g.components[acc][0], 1.0) << p.question << " " << answer;
    EXPECT_EQ(g.components[format][0], 1.0);
    EXPECT_EQ(g.components[acc][1], 0.1) << near;  // a wrong number: format_score only
    EXPECT_EQ(g.components[acc][2], 0.0);
  }
}

}  // namespace
}  // namespace r1kit::reward
