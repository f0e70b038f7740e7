// What the task files of data/tasks/ share: a seeded stream of draws, and worked
// column-by-column arithmetic (the traces of the arithmetic and multiplication tasks).
//
// Thread-safety: pure functions; a Draw is one caller's.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/rng.h"

namespace r1kit::data {

// A seeded stream of draws: next() is splitmix64's, in(lo, hi) uniform-ish in [lo, hi]
// (modulo bias, negligible for the small ranges the tasks draw from).
struct Draw {
  uint64_t s;  // the state
  uint64_t next() { return s = mix64(s); }
  int64_t in(int64_t lo, int64_t hi) {
    return lo + static_cast<int64_t>(next() % static_cast<uint64_t>(hi - lo + 1));
  }
};

// Decimal digits of a non-negative x, least significant first (0 -> {0}).
std::vector<int64_t> decimal_digits(int64_t x);

// The column-by-column solution of x*y for a one-digit y, each step a one-digit fact
// plus the carry: "23*7: 3*7=21, 2*7+2=16, so 161."; for x < 10 or y > 9 the direct
// "x*y=p.".
std::string column_product_trace(int64_t x, int64_t y);
// The column-by-column solution of x+y (x, y >= 0): digit pairs from the right, the
// shorter number padded with 0, plus the carry: "161+5: 1+5=6, 6+0=6, 1+0=1, so 166.".
std::string column_sum_trace(int64_t x, int64_t y);

// Countdown's search trace (data/tasks/countdown.cpp, `trace: search`): a goal-directed
// search for `target` from `numbers` (2 to 4), "t = x op n" for each number n (largest
// first, each value once; ops *, +, n - x, x - n, x / n) with x searched for in the numbers
// left, two numbers checked by listing what they make, three or more by first stating the
// largest value they make ("(max 16)") and giving up at once when x is above it, every
// dead end written out:
//   {4, 6, 1}, 24 -> "24 from 4 6 1. 24 = x * 6: 4 from 4 1 (5 3 4) yes, 4 * 1 = 4.
//                     24 = (4 * 1) * 6."   expression "(4 * 1) * 6"
// nullopt when no such search reaches the target (a split into two pairs may).
struct CountdownSearch {
  std::string trace;
  std::string expression;  // what the search found, as the answer
};
std::optional<CountdownSearch> countdown_search(const std::vector<int64_t>& numbers,
                                                int64_t target);

// What two numbers make, in the order the search lists them: a + b, a - b (a > b), a * b,
// a / b (exact, b > 1), a the larger; each with its expression "a op b".
std::vector<std::pair<int64_t, std::string>> countdown_pair_results(int64_t a, int64_t b);
// Every value `numbers` make with + - * /, each number used once, in any bracketing
// (positive integers only, as the search's rules).
std::set<int64_t> countdown_made_values(const std::vector<int64_t>& numbers);

}  // namespace r1kit::data
