// Reward throughput: format + math_accuracy on realistic ~1 KB completions, the worst
// case on 100 KB adversarial completions, and sandboxed code executions per second.
//
// Targets: >= 20,000 completions/s/core for format + math_accuracy on 1 KB;
// <= 5 ms per 100 KB adversarial sample, linear in the input. Figures go to
// bench/RESULTS.md. Single-threaded: the per-core figure is items_per_second.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "reward/code_execution.h"
#include "reward/reward.h"
#include "reward/rule_rewards.h"

namespace r1kit::reward {
namespace {

// A ~1 KB R1-style completion: reasoning steps, then a boxed LaTeX answer in <answer>.
std::string realistic_completion(int i) {
  std::string s = "<think>\nWe need the value of the expression. ";
  while (s.size() < 900) {
    s += "Step " + std::to_string(s.size() % 7) + ": multiply " + std::to_string(i % 97) +
         " by 3 and add the remainder, which gives an intermediate value. ";
  }
  s += "\n</think>\n<answer>\nThe answer is $\\boxed{\\frac{" + std::to_string(i % 13 + 1) +
       "}{4}}$.\n</answer>";
  return s;
}

void BM_FormatPlusMathAccuracy1KB(benchmark::State& state) {
  auto specs = parse_reward_specs("[{name: format}, {name: math_accuracy}]");
  auto combined = build_rewards(*specs);
  std::vector<Sample> group(16);
  for (int i = 0; i < 16; ++i) {
    group[i].completion = realistic_completion(i);
    group[i].metadata = {{"answer", i % 2 ? std::to_string(i % 13 + 1) + "/4" : "0.5"}};
  }
  for (auto _ : state) {
    GroupScores s = combined->score(group);
    benchmark::DoNotOptimize(s);
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(group.size()));
  state.SetBytesProcessed(state.iterations() * 16 *
                          static_cast<int64_t>(group[0].completion.size()));
}
BENCHMARK(BM_FormatPlusMathAccuracy1KB);

// Adversarial inputs of `state.range(0)` bytes; arg 1 picks the shape.
std::string adversarial(size_t n, int kind) {
  std::string s;
  switch (kind) {
    case 0:  // deep nesting inside a box
      s = "\\boxed{" + std::string(n / 2, '{') + std::string(n / 2, '}') + "}";
      break;
    case 1:  // many boxes with distinct values (hedge detection compares them)
      while (s.size() < n) s += "\\boxed{" + std::to_string(s.size()) + "} ";
      break;
    case 2:  // a huge answer of digits and powers
      s = "<answer>";
      while (s.size() < n) s += "10^10^10*1e999999+";
      s += "1</answer>";
      break;
    case 3:  // unbalanced tags and braces everywhere
      while (s.size() < n) s += "<answer>{<think>\\boxed{</answer>";
      break;
    case 4:  // thousands of boxes, then a 4 KB last box
      while (s.size() + 4200 < n) s += "\\boxed{" + std::to_string(s.size() % 97) + "}";
      s += "\\boxed{" + std::string(4000, '1') + "}";
      break;
    default:  // one long parenthesised expression
      s = "<answer>" + std::string(n / 2, '(') + "1" + std::string(n / 2, ')') + "</answer>";
  }
  return s;
}

void BM_Adversarial(benchmark::State& state) {
  auto combined = build_rewards(*parse_reward_specs("[{name: format}, {name: math_accuracy}]"));
  Sample s;
  s.completion = adversarial(static_cast<size_t>(state.range(0)), static_cast<int>(state.range(1)));
  s.metadata = {{"answer", "1"}};
  for (auto _ : state) {
    GroupScores g = combined->score(std::span<const Sample>(&s, 1));
    benchmark::DoNotOptimize(g);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Adversarial)
    ->ArgsProduct({{10'000, 100'000}, {0, 1, 2, 3, 4, 5}})
    ->Unit(benchmark::kMillisecond);

void BM_CodeExecution(benchmark::State& state) {
  CodeExecutionReward r{CodeExecutionOptions{}};
  Sample s;
  s.completion = "```python\nprint(sum(map(int, input().split())))\n```";
  s.metadata = {{"tests", {{{"input", "1 2\n"}, {"output", "3\n"}}}}};
  for (auto _ : state) benchmark::DoNotOptimize(r.score_one(s));
  state.SetItemsProcessed(state.iterations());
  state.SetLabel(sandbox_mode());
}
BENCHMARK(BM_CodeExecution)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace r1kit::reward

BENCHMARK_MAIN();
