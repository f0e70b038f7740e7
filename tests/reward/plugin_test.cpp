// Tests of shared-library reward plug-ins: the example plug-in (reward/examples/) is
// loaded with dlopen, built by name with its args, scores a group (NaN passes through),
// and the load and argument errors name the culprit. Also the in-binary registration
// macro R1KIT_REGISTER_REWARD.
#include "reward/plugin.h"

#include <dlfcn.h>
#include <gtest/gtest.h>
#include <link.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "reward/rule_rewards.h"
#include "tests/cli_util.h"

namespace r1kit::reward {
namespace {

// The absolute path of the libm this process uses: a real library without the symbol.
std::string libm_path() {
  void* h = dlopen("libm.so.6", RTLD_NOW | RTLD_NOLOAD);
  if (h == nullptr) h = dlopen("libm.so.6", RTLD_NOW);
  link_map* lm = nullptr;
  if (h == nullptr || dlinfo(h, RTLD_DI_LINKMAP, &lm) != 0 || lm == nullptr) return "";
  return lm->l_name;
}

// Runs with the current directory set to `dir`, then restores it.
class ScopedCwd {
 public:
  explicit ScopedCwd(const std::filesystem::path& dir) : old_(std::filesystem::current_path()) {
    std::filesystem::current_path(dir);
  }
  ~ScopedCwd() { std::filesystem::current_path(old_); }

 private:
  std::filesystem::path old_;
};

TEST(PluginTest, LoadsAndScores) {
  RewardRegistry registry;
  ASSERT_TRUE(load_reward_plugin(testing::example_reward_plugin(), registry).ok())
      << testing::example_reward_plugin();
  EXPECT_TRUE(registry.contains("keyword_bonus"));
  auto r = registry.create("keyword_bonus", {{"keyword", "therefore"}, {"bonus", 0.5}});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  std::vector<Sample> g(3);
  g[0].completion = "and therefore 4";
  g[1].completion = "so 4";
  g[2].completion = "therefore";
  g[2].metadata = {{"skip", true}};
  Scores scores = (*r)->score(g);
  const std::vector<double>& s = scores.values;
  EXPECT_EQ(s[0], 0.5);
  EXPECT_EQ(s[1], 0.0);
  EXPECT_TRUE(std::isnan(s[2]));
  EXPECT_EQ(scores.failures, 0);  // a NaN the plug-in chose: cannot judge, not a failure
  // A plug-in error (here its JSON type error on a non-bool "skip") fails the whole batch.
  std::vector<Sample> broken = g;
  broken[2].metadata = {{"skip", "yes"}};
  Scores failed = (*r)->score(broken);
  EXPECT_EQ(failed.failures, 3);
  for (double x : failed.values) EXPECT_TRUE(std::isnan(x));
  // Invalid UTF-8 in a completion crosses the boundary (replaced), no exception.
  g[1].completion = std::string("\xff\xfe therefore");
  EXPECT_EQ((*r)->score(g).values[1], 0.5);

  // Errors name the argument, the library, the duplicate.
  auto bad = registry.create("keyword_bonus", {{"keywrd", "x"}});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("keywrd"), std::string::npos);
  EXPECT_NE(bad.status().message().find("keyword_bonus"), std::string::npos);
  // Loading the same library again is harmless: OK, nothing added, the reward still works.
  const size_t n_rewards = registry.list().size();
  Status again = load_reward_plugin(testing::example_reward_plugin(), registry);
  EXPECT_TRUE(again.ok()) << again.to_string();
  EXPECT_TRUE(load_reward_plugins(
                  {testing::example_reward_plugin(), testing::example_reward_plugin()}, registry)
                  .ok());
  EXPECT_EQ(registry.list().size(), n_rewards);
  EXPECT_TRUE(registry.create("keyword_bonus", {{"keyword", "so"}}).ok());
  Status missing = load_reward_plugin("/nonexistent/libnope.so", registry);
  EXPECT_EQ(missing.code(), StatusCode::kNotFound);
  EXPECT_NE(missing.message().find("/nonexistent/libnope.so"), std::string::npos);
  // A library without the symbol (libm).
  const std::string libm = libm_path();
  ASSERT_FALSE(libm.empty());
  Status no_symbol = load_reward_plugin(libm, registry);
  EXPECT_EQ(no_symbol.code(), StatusCode::kInvalidArgument) << no_symbol.to_string();
  EXPECT_NE(no_symbol.message().find(libm), std::string::npos);
  // A file that is not a library.
  const std::string text =
      ::testing::TempDir() + "r1kit_not_a_plugin_" + std::to_string(::getpid()) + ".so";
  std::ofstream(text) << "not an ELF file\n";
  Status not_elf = load_reward_plugin(text, registry);
  EXPECT_EQ(not_elf.code(), StatusCode::kInvalidArgument) << not_elf.to_string();
  EXPECT_NE(not_elf.message().find(text), std::string::npos);
  std::filesystem::remove(text);

  // Through the recipe list, combined with a built-in.
  RewardRegistry with_builtins;
  register_builtin_rewards(with_builtins);
  ASSERT_TRUE(load_reward_plugins({testing::example_reward_plugin()}, with_builtins).ok());
  auto specs =
      parse_reward_specs("[{name: tag_count}, {name: keyword_bonus, weight: 2, keyword: so}]");
  ASSERT_TRUE(specs.ok());
  auto combined = build_rewards(*specs, with_builtins);
  ASSERT_TRUE(combined.ok()) << combined.status().to_string();
  std::vector<Sample> one(1);
  one[0].completion = "<think>so</think>";  // tag_count 0.5, keyword 1 * 2
  EXPECT_EQ(combined->score(one).total[0], 2.5);
}

// A relative path is the current directory's (as a recipe's paths are), never a search
// of the library path; the same file under another spelling is the same library.
TEST(PluginTest, RelativePathsResolveAgainstTheCurrentDirectory) {
  const std::filesystem::path bin_dir =
      std::filesystem::path(testing::example_reward_plugin()).parent_path();
  RewardRegistry registry;
  {
    ScopedCwd cwd(bin_dir);
    Status s = load_reward_plugin("libr1kit_example_reward_plugin.so", registry);
    ASSERT_TRUE(s.ok()) << s.to_string();
    EXPECT_TRUE(registry.contains("keyword_bonus"));
    EXPECT_TRUE(load_reward_plugin("./libr1kit_example_reward_plugin.so", registry).ok());
  }
  EXPECT_TRUE(load_reward_plugin(testing::example_reward_plugin(), registry)
                  .ok());  // absolute: same library
  {
    ScopedCwd cwd("/");
    // libm.so.6 is on the library path, but not in "/": not found, naming the path.
    Status s = load_reward_plugin("libm.so.6", registry);
    EXPECT_EQ(s.code(), StatusCode::kNotFound) << s.to_string();
    EXPECT_NE(s.message().find("libm.so.6"), std::string::npos);
  }
  // A fresh registry gets the rewards again (loaded once per registry).
  RewardRegistry other;
  EXPECT_TRUE(load_reward_plugin(testing::example_reward_plugin(), other).ok());
  EXPECT_TRUE(other.contains("keyword_bonus"));
}

// A reward compiled into this binary registers itself with the macro.
struct ConstOptions {
  double value = 0.25;
  void visit(ConfigVisitor& v) { v.field("value", value, "the constant score"); }
};
class ConstReward final : public Reward {
 public:
  explicit ConstReward(const ConstOptions& o) : o_(o) {}
  Scores score(std::span<const Sample> g) const override {
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
  EXPECT_EQ((*r)->score(std::span<const Sample>(&s, 1)).values[0], 0.75);
}

}  // namespace
}  // namespace r1kit::reward
