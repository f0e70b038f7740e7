// Tests of shared-library reward plug-ins: the example plug-in (reward/examples/) is
// loaded with dlopen, built by name with its args, scores a group (NaN passes through),
// and the load and argument errors name the culprit. Also the in-binary registration
// macro R1KIT_REGISTER_REWARD.
#include "reward/plugin.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>

#include "reward/rule_rewards.h"

namespace r1kit::reward {
namespace {

// The plug-in is built beside the test binary (CMAKE_LIBRARY_OUTPUT_DIRECTORY).
std::string plugin_path() {
  return (std::filesystem::read_symlink("/proc/self/exe").parent_path() /
          "libr1kit_example_reward_plugin.so")
      .string();
}

TEST(PluginTest, LoadsAndScores) {
  RewardRegistry registry;
  ASSERT_TRUE(load_reward_plugin(plugin_path(), registry).ok()) << plugin_path();
  EXPECT_TRUE(registry.contains("keyword_bonus"));
  auto r = registry.create("keyword_bonus", {{"keyword", "therefore"}, {"bonus", 0.5}});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  std::vector<Sample> g(3);
  g[0].completion = "and therefore 4";
  g[1].completion = "so 4";
  g[2].completion = "therefore";
  g[2].metadata = {{"skip", true}};
  std::vector<double> s = (*r)->score(g);
  EXPECT_EQ(s[0], 0.5);
  EXPECT_EQ(s[1], 0.0);
  EXPECT_TRUE(std::isnan(s[2]));
  // Invalid UTF-8 in a completion crosses the boundary (replaced), no exception.
  g[1].completion = std::string("\xff\xfe therefore");
  EXPECT_EQ((*r)->score(g)[1], 0.5);

  // Errors name the argument, the library, the duplicate.
  auto bad = registry.create("keyword_bonus", {{"keywrd", "x"}});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("keywrd"), std::string::npos);
  EXPECT_NE(bad.status().message().find("keyword_bonus"), std::string::npos);
  Status again = load_reward_plugin(plugin_path(), registry);
  EXPECT_EQ(again.code(), StatusCode::kAlreadyExists);
  Status missing = load_reward_plugin("/nonexistent/libnope.so", registry);
  EXPECT_EQ(missing.code(), StatusCode::kNotFound);
  EXPECT_NE(missing.message().find("/nonexistent/libnope.so"), std::string::npos);
  // A library without the symbol (libm).
  EXPECT_EQ(load_reward_plugin("libm.so.6", registry).code(), StatusCode::kInvalidArgument);

  // Through the recipe list, combined with a built-in.
  RewardRegistry with_builtins;
  register_builtin_rewards(with_builtins);
  ASSERT_TRUE(load_reward_plugins({plugin_path()}, with_builtins).ok());
  auto specs =
      parse_reward_specs("[{name: tag_count}, {name: keyword_bonus, weight: 2, keyword: so}]");
  ASSERT_TRUE(specs.ok());
  auto combined = build_rewards(*specs, with_builtins);
  ASSERT_TRUE(combined.ok()) << combined.status().to_string();
  std::vector<Sample> one(1);
  one[0].completion = "<think>so</think>";  // tag_count 0.5, keyword 1 * 2
  EXPECT_EQ(combined->score(one).total[0], 2.5);
}

// A reward compiled into this binary registers itself with the macro.
struct ConstOptions {
  double value = 0.25;
  void visit(ConfigVisitor& v) { v.field("value", value, "the constant score"); }
};
class ConstReward final : public Reward {
 public:
  explicit ConstReward(const ConstOptions& o) : o_(o) {}
  std::vector<double> score(std::span<const Sample> g) const override {
    return std::vector<double>(g.size(), o_.value);
  }

 private:
  ConstOptions o_;
};
R1KIT_REGISTER_REWARD(test_constant, ConstReward, ConstOptions, "a constant (test only)");

TEST(PluginTest, RegistrationMacro) {
  auto r = RewardRegistry::global().create("test_constant", {{"value", 0.75}});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  Sample s;
  EXPECT_EQ((*r)->score(std::span<const Sample>(&s, 1))[0], 0.75);
}

}  // namespace
}  // namespace r1kit::reward
