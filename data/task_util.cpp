// Worked column arithmetic for the task traces; see task_util.h.
#include "data/task_util.h"

#include <fmt/format.h>

#include <algorithm>

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

}  // namespace r1kit::data
