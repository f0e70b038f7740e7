#include "data/arithmetic.h"

#include <fmt/format.h>

#include "core/rng.h"

namespace r1kit::data {

TaskExample arithmetic_example(uint64_t seed, uint64_t index, const ArithmeticOptions& o) {
  uint64_t s = derive_seed(seed, {0x61726974ULL, index});
  auto draw = [&](int64_t lo, int64_t hi) {
    s = mix64(s);
    return lo + static_cast<int64_t>(s % static_cast<uint64_t>(hi - lo + 1));
  };
  const int64_t a = draw(2, o.max_a), b = draw(2, o.max_b), c = draw(0, o.max_c);
  TaskExample ex;
  ex.question = fmt::format("What is {}*{}+{}?", a, b, c);
  ex.answer = std::to_string(a * b + c);
  // The slip draws come from a stream of their own: the problems do not depend on them.
  uint64_t t = derive_seed(seed, {0x736c6970ULL, index});
  t = mix64(t);
  const bool slip = o.slip_rate > 0 && static_cast<double>(t >> 11) * 0x1.0p-53 < o.slip_rate;
  const int64_t ab = slip ? a * (b + ((mix64(t) & 1) ? 1 : -1)) : a * b, r = ab + c;
  // A slipped product is written whole ("7*8=63."), as a misremembered fact.
  const std::string product = o.trace == ArithmeticTrace::kColumns && !slip
                                  ? column_product_trace(a, b)
                                  : fmt::format("{}*{}={}.", a, b, ab);
  ex.trace = o.trace == ArithmeticTrace::kColumns
                 ? fmt::format("{} {}", product, column_sum_trace(ab, c))
                 : fmt::format("{} {}+{}={}.", product, ab, c, r);
  ex.trace_answer = std::to_string(r);
  return ex;
}

ArithmeticTrace parse_arithmetic_trace(const std::string& name) {
  return name == "columns" ? ArithmeticTrace::kColumns : ArithmeticTrace::kDirect;
}

namespace {
// Decimal digits of a non-negative x, least significant first (0 -> {0}).
std::vector<int64_t> digits_of(int64_t x) {
  std::vector<int64_t> d;
  do {
    d.push_back(x % 10);
    x /= 10;
  } while (x > 0);
  return d;
}
}  // namespace

std::string column_product_trace(int64_t x, int64_t y) {
  if (x < 10 || y < 0 || y > 9) return fmt::format("{}*{}={}.", x, y, x * y);
  // "23*7: 3*7=21, 2*7+2=16, so 161.": each digit of x times y plus the carry.
  std::string out = fmt::format("{}*{}:", x, y);
  const auto d = digits_of(x);
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
  // "161+5: 1+5=6, 6+0=6, 1+0=1, so 166.": digit pairs from the right, the shorter
  // number padded with 0, plus the carry of the column before.
  std::string out = fmt::format("{}+{}:", x, y);
  const auto dx = digits_of(x), dy = digits_of(y);
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

std::vector<TaskExample> arithmetic_examples(uint64_t seed, int64_t n, const ArithmeticOptions& o) {
  std::vector<TaskExample> out;
  out.reserve(n);
  for (int64_t i = 0; i < n; ++i) out.push_back(arithmetic_example(seed, i, o));
  return out;
}

}  // namespace r1kit::data
