// Task `countdown` (TinyZero's): reach a target from 2 to 8 numbers with + - * /, each
// number used once, checked by the `countdown` reward (the expression must use exactly
// the given numbers and hit the target).
//
// Different on purpose: targets come from a random expression tree over the drawn
// numbers, so every problem is solvable (TinyZero's own gen_dataset drew targets
// independently and produced mostly unsolvable tasks); intermediate values stay
// positive integers.
//
// Traces (`trace`):
//   forward  the generating expression's steps, each but the last naming the numbers
//            left, so a step copies its operands from the line before:
//            "3 + 1 = 4, left 5 6 4. 6 + 5 = 11, left 4 11. 11 - 4 = 7."
//            It does not say how its first step was chosen: the model must guess.
//   search   a goal-directed search with its dead ends written out, as a solver finds
//            it: the target is split as "t = x op n" for a number n (largest first;
//            ops in the order * + - (n - x) /), and x is searched for in the numbers
//            left the same way; two numbers are checked by listing what they make
//            (sum, difference, product, exact quotient):
//            "7 from 3 1 5 6. 7 = x * 6: ... 7 = x + 6: 1 from 3 1 5. 1 = x * 5: ...
//             1 = x - 5: 6 from 3 1 (4 2 3) no. 1 = 5 - x: 4 from 3 1 (4 2 3) yes,
//             3 + 1 = 4. 1 = 5 - (3 + 1). 7 = (5 - (3 + 1)) + 6."
//            Every "no" is true, and the answer is the expression the search found
//            (metadata "trace_answer" when it differs from the generating one). A
//            problem only a split into two groups of two solves (0.4% of 3-4 numbers
//            in 1..6) has no such search: its trace is the forward one. At most 4
//            numbers (the search grows as 4^n).
// metadata: {"numbers": [..], "target": n, "answer": "<an expression that works>"}.
#include <fmt/format.h>

#include <algorithm>
#include <optional>

#include "core/rng.h"
#include "data/task.h"
#include "data/task_util.h"

namespace r1kit::data {
namespace {

enum class CountdownTrace { kForward, kSearch };
inline constexpr EnumName<CountdownTrace> kCountdownTraceNames[] = {
    {CountdownTrace::kForward, "forward"}, {CountdownTrace::kSearch, "search"}};

struct CountdownTaskOptions {
  int64_t min_numbers = 3;   // operands per problem, fewest
  int64_t max_numbers = 4;   // operands per problem, most
  int64_t max_number = 99;   // operands in [1, max_number]
  int64_t max_target = 999;  // targets in [1, max_target]
  CountdownTrace trace = CountdownTrace::kForward;

  void visit(ConfigVisitor& v) {
    v.field("min_numbers", min_numbers, "fewest operands", Range::between(2, 8));
    v.field("max_numbers", max_numbers, "most operands", Range::between(2, 8));
    v.field("max_number", max_number, "operands in [1, max_number]", Range::at_least(1));
    v.field("max_target", max_target, "targets in [1, max_target]", Range::at_least(1));
    v.field("trace", trace,
            "the SFT trace: forward (the generating steps) or search (a goal-directed search "
            "with its dead ends written out; at most 4 numbers)",
            kCountdownTraceNames);
  }
  Status validate() const {
    if (min_numbers > max_numbers)
      return InvalidArgument("task.min_numbers={} > task.max_numbers={}", min_numbers, max_numbers);
    if (trace == CountdownTrace::kSearch && max_numbers > 4)
      return InvalidArgument("task.trace=search: at most 4 numbers (task.max_numbers={})",
                             max_numbers);
    return OkStatus();
  }
};

TaskSample countdown_problem(const CountdownTaskOptions& o, uint64_t seed, uint64_t index) {
  Draw d{derive_seed(seed, {0x636f756e74ULL, index})};
  const int lo_n = static_cast<int>(std::clamp<int64_t>(o.min_numbers, 2, 8));
  const int hi_n = static_cast<int>(std::clamp<int64_t>(o.max_numbers, lo_n, 8));
  const int64_t max_number = std::max<int64_t>(1, o.max_number);
  const int64_t max_target = std::max<int64_t>(1, o.max_target);
  struct Item {
    int64_t value;
    std::string expr;  // fully parenthesised except at the top
  };
  for (int attempt = 0;; ++attempt) {
    const int k = static_cast<int>(d.in(lo_n, hi_n));
    std::vector<int64_t> numbers;
    std::vector<Item> items;
    for (int i = 0; i < k; ++i) {
      numbers.push_back(d.in(1, max_number));
      items.push_back({numbers.back(), std::to_string(numbers.back())});
    }
    std::vector<std::string> steps;
    bool ok = true;
    while (items.size() > 1 && ok) {
      // Pick two items and an operator whose result is a positive integer.
      size_t i = static_cast<size_t>(d.in(0, static_cast<int64_t>(items.size()) - 1));
      size_t j = static_cast<size_t>(d.in(0, static_cast<int64_t>(items.size()) - 2));
      if (j >= i) ++j;
      Item a = items[i], b = items[j];
      if (a.value < b.value) std::swap(a, b);
      std::vector<char> ops = {'+', '*'};
      if (a.value > b.value) ops.push_back('-');
      if (b.value > 1 && a.value % b.value == 0) ops.push_back('/');
      char op = ops[d.next() % ops.size()];
      int64_t v = op == '+'   ? a.value + b.value
                  : op == '-' ? a.value - b.value
                  : op == '*' ? a.value * b.value
                              : a.value / b.value;
      if (v > 1'000'000) {
        ok = false;
        break;
      }
      Item c{v, fmt::format("({} {} {})", a.expr, op, b.expr)};
      items.erase(items.begin() + static_cast<std::ptrdiff_t>(std::max(i, j)));
      items.erase(items.begin() + static_cast<std::ptrdiff_t>(std::min(i, j)));
      items.push_back(std::move(c));
      // Each step but the last names the numbers left, so that the next step copies its
      // operands from the line before it rather than tracking the pool over the trace.
      std::string step = fmt::format("{} {} {} = {}", a.value, op, b.value, v);
      if (items.size() > 1) {
        step += ", left";
        for (const Item& it : items) step += " " + std::to_string(it.value);
      }
      steps.push_back(std::move(step));
    }
    if (!ok) continue;
    const int64_t target = items[0].value;
    if ((target < 1 || target > max_target) && attempt < 1000) continue;
    std::string expr = items[0].expr;
    if (expr.size() > 2 && expr.front() == '(') expr = expr.substr(1, expr.size() - 2);
    TaskSample t;
    t.question = fmt::format(
        "Using the numbers [{}], create an equation that equals {}. You can use basic "
        "arithmetic operations (+, -, *, /) and each number can only be used once",
        fmt::join(numbers, ", "), target);
    std::string trace;
    for (const std::string& s : steps) trace += (trace.empty() ? "" : " ") + s + ".";
    t.trace = trace;
    t.metadata = {{"numbers", numbers}, {"target", target}, {"answer", expr}};
    std::vector<int64_t> sorted = numbers;  // the same problem in any order of its numbers
    std::sort(sorted.begin(), sorted.end());
    t.key = fmt::format("countdown {} -> {}", fmt::join(sorted, " "), target);
    if (o.trace == CountdownTrace::kSearch) {
      if (std::optional<CountdownSearch> found = countdown_search(numbers, target)) {
        t.trace = found->trace;
        if (found->expression != expr) t.metadata["trace_answer"] = found->expression;
      }
    }
    return t;
  }
}

std::vector<reward::RewardSpec> countdown_rewards(const CountdownTaskOptions&, bool prefill) {
  return checker_and_format("countdown", prefill);
}

}  // namespace

void register_countdown_task(TaskRegistry& registry) {
  add_procedural_task<CountdownTaskOptions>(
      registry, "countdown", {countdown_problem, countdown_rewards},
      "reach a target from the given numbers with + - * /, each used once; checker: "
      "countdown");
}

}  // namespace r1kit::data
