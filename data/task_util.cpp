// Worked column arithmetic and the Countdown search for the task traces; see task_util.h.
#include "data/task_util.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>

namespace r1kit::data {

std::vector<int64_t> decimal_digits(int64_t x) {
  std::vector<int64_t> d;
  do {
    d.push_back(x % 10);
    x /= 10;
  } while (x > 0);
  return d;
}

std::string column_product_trace(int64_t x, int64_t y) {
  if (x < 10 || y < 0 || y > 9) return fmt::format("{}*{}={}.", x, y, x * y);
  // "23*7: 3*7=21, 2*7+2=16, so 161.": each digit of x times y plus the carry.
  std::string out = fmt::format("{}*{}:", x, y);
  const auto d = decimal_digits(x);
  int64_t carry = 0;
  for (size_t i = 0; i < d.size(); ++i) {
    const int64_t s = d[i] * y + carry;
    out += carry > 0 ? fmt::format(" {}*{}+{}={}", d[i], y, carry, s)
                     : fmt::format(" {}*{}={}", d[i], y, s);
    out += i + 1 < d.size() ? "," : "";
    carry = s / 10;
  }
  return out + fmt::format(", so {}.", x * y);
}

std::string column_sum_trace(int64_t x, int64_t y) {
  std::string out = fmt::format("{}+{}:", x, y);
  const auto dx = decimal_digits(x), dy = decimal_digits(y);
  const size_t n = std::max(dx.size(), dy.size());
  int64_t carry = 0;
  for (size_t i = 0; i < n; ++i) {
    const int64_t p = i < dx.size() ? dx[i] : 0, q = i < dy.size() ? dy[i] : 0;
    const int64_t s = p + q + carry;
    out +=
        carry > 0 ? fmt::format(" {}+{}+{}={}", p, q, carry, s) : fmt::format(" {}+{}={}", p, q, s);
    out += i + 1 < n ? "," : "";
    carry = s / 10;
  }
  return out + fmt::format(", so {}.", x + y);
}

// ---------------------------------------------------------------- the search trace

std::vector<std::pair<int64_t, std::string>> countdown_pair_results(int64_t a, int64_t b) {
  if (a < b) std::swap(a, b);
  std::vector<std::pair<int64_t, std::string>> out = {{a + b, fmt::format("{} + {}", a, b)}};
  if (a > b) out.push_back({a - b, fmt::format("{} - {}", a, b)});
  out.push_back({a * b, fmt::format("{} * {}", a, b)});
  if (b > 1 && a % b == 0) out.push_back({a / b, fmt::format("{} / {}", a, b)});
  return out;
}

// Combining two of them at a time reaches every expression tree.
std::set<int64_t> countdown_made_values(const std::vector<int64_t>& nums) {
  if (nums.size() == 1) return {nums[0]};
  std::set<int64_t> made;
  for (size_t i = 0; i < nums.size(); ++i)
    for (size_t j = i + 1; j < nums.size(); ++j) {
      std::vector<int64_t> rest;
      for (size_t k = 0; k < nums.size(); ++k)
        if (k != i && k != j) rest.push_back(nums[k]);
      rest.push_back(0);
      for (const auto& [v, e] : countdown_pair_results(nums[i], nums[j])) {
        rest.back() = v;
        const std::set<int64_t> more = countdown_made_values(rest);
        made.insert(more.begin(), more.end());
      }
    }
  return made;
}

namespace {

std::string parenthesised(const std::string& e) {
  return e.find(' ') == std::string::npos ? e : "(" + e + ")";
}

// Searches `t` from `nums` (at least 2), appending the trace's sentences to `out`;
// returns the expression found. An inner node of three or more numbers states the
// largest value they make and stops there when `t` is above it.
std::optional<std::string> search(const std::vector<int64_t>& nums, int64_t t, bool top,
                                  std::vector<std::string>& out) {
  if (nums.size() == 2) {  // a check: what the two make
    std::string made;
    std::optional<std::string> found;
    for (const auto& [v, e] : countdown_pair_results(nums[0], nums[1])) {
      made += (made.empty() ? "" : " ") + std::to_string(v);
      if (v == t && !found) found = e;
    }
    out.push_back(fmt::format("{} from {} ({}) {}", t, fmt::join(nums, " "), made,
                              found ? fmt::format("yes, {} = {}.", *found, t) : "no."));
    return found;
  }
  if (top) {
    out.push_back(fmt::format("{} from {}.", t, fmt::join(nums, " ")));
  } else {
    const int64_t most = *countdown_made_values(nums).rbegin();
    const bool above = t > most;
    out.push_back(
        fmt::format("{} from {} (max {}){}", t, fmt::join(nums, " "), most, above ? " no." : "."));
    if (above) return std::nullopt;
  }
  // Numbers largest first, each value once; the rest keeps the problem's order.
  std::vector<size_t> order(nums.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return nums[a] > nums[b]; });
  std::vector<int64_t> tried;
  for (size_t i : order) {
    const int64_t n = nums[i];
    if (std::find(tried.begin(), tried.end(), n) != tried.end()) continue;
    tried.push_back(n);
    std::vector<int64_t> rest = nums;
    rest.erase(rest.begin() + static_cast<std::ptrdiff_t>(i));
    // t = x op n (or n op x): the x each op needs, when a positive integer.
    struct Split {
      int64_t x;
      const char* form;  // how t is written, {0} = x, {1} = n
    };
    std::vector<Split> splits;
    if (n > 1 && t % n == 0) splits.push_back({t / n, "{0} * {1}"});
    if (t - n > 0) splits.push_back({t - n, "{0} + {1}"});
    if (n - t > 0) splits.push_back({n - t, "{1} - {0}"});
    splits.push_back({t + n, "{0} - {1}"});
    if (n > 1) splits.push_back({t * n, "{0} / {1}"});
    for (const Split& sp : splits) {
      out.push_back(fmt::format("{} = {}:", t, fmt::format(fmt::runtime(sp.form), "x", n)));
      std::optional<std::string> e = search(rest, sp.x, /*top=*/false, out);
      if (!e) continue;
      const std::string full = fmt::format(fmt::runtime(sp.form), parenthesised(*e), n);
      out.push_back(fmt::format("{} = {}.", t, full));
      return full;
    }
  }
  out.push_back("none.");
  return std::nullopt;
}

}  // namespace

std::optional<CountdownSearch> countdown_search(const std::vector<int64_t>& numbers,
                                                int64_t target) {
  if (numbers.size() < 2) return std::nullopt;
  std::vector<std::string> sentences;
  std::optional<std::string> found = search(numbers, target, /*top=*/true, sentences);
  if (!found) return std::nullopt;
  CountdownSearch out;
  for (const std::string& s : sentences) out.trace += (out.trace.empty() ? "" : " ") + s;
  out.expression = *found;
  return out;
}

}  // namespace r1kit::data
