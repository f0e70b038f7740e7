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
  const int64_t ab = a * b, r = ab + c;
  TaskExample ex;
  ex.question = fmt::format("What is {}*{}+{}?", a, b, c);
  ex.trace = fmt::format("{}*{}={}. {}+{}={}.", a, b, ab, ab, c, r);
  ex.answer = std::to_string(r);
  return ex;
}

std::vector<TaskExample> arithmetic_examples(uint64_t seed, int64_t n, const ArithmeticOptions& o) {
  std::vector<TaskExample> out;
  out.reserve(n);
  for (int64_t i = 0; i < n; ++i) out.push_back(arithmetic_example(seed, i, o));
  return out;
}

}  // namespace r1kit::data
