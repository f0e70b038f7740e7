// Exact rationals on checked __int128 and sums of π^k·√s terms; see exact.h.
#include "reward/exact.h"

#include <algorithm>
#include <cmath>

namespace r1kit::reward {
namespace {

// |x| must stay below 2^126 so that negation and the sums in add() cannot overflow.
constexpr i128 kLimit = (static_cast<i128>(1) << 126);

bool in_limit(i128 x) {
  return x < kLimit && x > -kLimit;
}

i128 abs128(i128 x) {
  return x < 0 ? -x : x;
}

i128 gcd128(i128 a, i128 b) {
  a = abs128(a);
  b = abs128(b);
  while (b != 0) {
    i128 t = a % b;
    a = b;
    b = t;
  }
  return a;
}

bool checked_mul(i128 a, i128 b, i128* out) {
  if (__builtin_mul_overflow(a, b, out)) return false;
  return in_limit(*out);
}

std::string i128_to_string(i128 x) {
  if (x == 0) return "0";
  bool neg = x < 0;
  std::string s;
  while (x != 0) {
    int d = static_cast<int>(x % 10);
    s.push_back(static_cast<char>('0' + (d < 0 ? -d : d)));
    x /= 10;
  }
  if (neg) s.push_back('-');
  std::reverse(s.begin(), s.end());
  return s;
}

}  // namespace

std::optional<Rational> Rational::make(i128 num, i128 den) {
  if (den == 0 || !in_limit(num) || !in_limit(den)) return std::nullopt;
  if (den < 0) {
    num = -num;
    den = -den;
  }
  i128 g = gcd128(num, den);
  if (g > 1) {
    num /= g;
    den /= g;
  }
  return Rational{num, den};
}

bool Rational::operator<(const Rational& o) const {
  i128 l, r;
  if (checked_mul(num, o.den, &l) && checked_mul(o.num, den, &r)) return l < r;
  return static_cast<long double>(num) / static_cast<long double>(den) <
         static_cast<long double>(o.num) / static_cast<long double>(o.den);
}

std::string Rational::to_string() const {
  return den == 1 ? i128_to_string(num) : i128_to_string(num) + "/" + i128_to_string(den);
}

std::optional<Rational> add(const Rational& a, const Rational& b) {
  i128 g = gcd128(a.den, b.den);
  i128 l, r, d;
  if (!checked_mul(a.num, b.den / g, &l) || !checked_mul(b.num, a.den / g, &r) ||
      !checked_mul(a.den / g, b.den, &d)) {
    return std::nullopt;
  }
  return Rational::make(l + r, d);  // |l|,|r| < 2^126: the sum fits in i128
}

std::optional<Rational> sub(const Rational& a, const Rational& b) {
  return add(a, Rational{-b.num, b.den});
}

std::optional<Rational> mul(const Rational& a, const Rational& b) {
  // Cross-reduce first so that products of reduced fractions overflow late.
  i128 g1 = gcd128(a.num, b.den), g2 = gcd128(b.num, a.den);
  if (g1 == 0) g1 = 1;
  if (g2 == 0) g2 = 1;
  i128 n, d;
  if (!checked_mul(a.num / g1, b.num / g2, &n) || !checked_mul(a.den / g2, b.den / g1, &d)) {
    return std::nullopt;
  }
  return Rational::make(n, d);
}

std::optional<Rational> div(const Rational& a, const Rational& b) {
  if (b.num == 0) return std::nullopt;
  return mul(a, Rational{b.den, b.num});  // mul() normalises the sign
}

std::optional<Rational> pow(const Rational& a, int64_t e) {
  if (e > 256 || e < -256) return std::nullopt;
  Rational base = a;
  if (e < 0) {
    auto inv = div(Rational::integer(1), a);
    if (!inv) return std::nullopt;
    base = *inv;
    e = -e;
  }
  Rational out = Rational::integer(1);
  for (int64_t i = 0; i < e; ++i) {  // e <= 256: linear is fine and overflow stops it early
    auto next = mul(out, base);
    if (!next) return std::nullopt;
    out = *next;
  }
  return out;
}

// ---------------------------------------------------------------- ExactValue

namespace {

bool term_less(const Term& a, const Term& b) {
  if (a.pi_power != b.pi_power) return a.pi_power < b.pi_power;
  return a.radicand < b.radicand;
}

// Splits n (1 <= n <= 10^12) into out^2 * square_free. Trial division by d <= 10^4
// (the cube root of 10^12) leaves a cofactor with at most two prime factors, both
// above 10^4: it holds a square factor only when it is itself a perfect square.
void split_square(int64_t n, int64_t* out, int64_t* square_free) {
  int64_t o = 1, s = 1, m = n;
  for (int64_t d = 2; d <= 10'000 && d * d <= m; ++d) {
    while (m % d == 0) {
      m /= d;
      if (m % d == 0) {
        m /= d;
        o *= d;
      } else {
        s *= d;
      }
    }
  }
  int64_t r = static_cast<int64_t>(std::sqrt(static_cast<long double>(m)));
  while (r * r > m) --r;
  while ((r + 1) * (r + 1) <= m) ++r;
  if (m > 1 && r * r == m) {
    o *= r;
  } else {
    s *= m;
  }
  *out = o;
  *square_free = s;
}

}  // namespace

ExactValue ExactValue::rational(const Rational& r) {
  ExactValue v;
  if (!r.is_zero()) v.terms_.push_back(Term{r, 0, 1});
  return v;
}

ExactValue ExactValue::pi() {
  ExactValue v;
  v.terms_.push_back(Term{Rational::integer(1), 1, 1});
  return v;
}

std::optional<ExactValue> ExactValue::from_terms(std::vector<Term> terms) {
  std::sort(terms.begin(), terms.end(), term_less);
  ExactValue v;
  for (const Term& t : terms) {
    if (t.pi_power > 16 || t.pi_power < -16) return std::nullopt;
    if (!v.terms_.empty() && v.terms_.back().same_monomial(t)) {
      auto s = reward::add(v.terms_.back().coef, t.coef);
      if (!s) return std::nullopt;
      v.terms_.back().coef = *s;
    } else {
      v.terms_.push_back(t);
    }
  }
  std::erase_if(v.terms_, [](const Term& t) { return t.coef.is_zero(); });
  if (v.terms_.size() > 64) return std::nullopt;
  return v;
}

std::optional<ExactValue> ExactValue::add(const ExactValue& a, const ExactValue& b) {
  std::vector<Term> t = a.terms_;
  t.insert(t.end(), b.terms_.begin(), b.terms_.end());
  return from_terms(std::move(t));
}

std::optional<ExactValue> ExactValue::neg(const ExactValue& a) {
  ExactValue v = a;
  for (Term& t : v.terms_) t.coef.num = -t.coef.num;
  return v;
}

std::optional<ExactValue> ExactValue::mul(const ExactValue& a, const ExactValue& b) {
  if (a.terms_.size() * b.terms_.size() > 256) return std::nullopt;
  std::vector<Term> out;
  for (const Term& x : a.terms_) {
    for (const Term& y : b.terms_) {
      // √s1·√s2 = g·√(s1/g · s2/g) with g = gcd(s1, s2); the product stays square-free.
      int64_t g = std::__gcd(x.radicand, y.radicand);
      int64_t r1 = x.radicand / g, r2 = y.radicand / g, rad;
      if (__builtin_mul_overflow(r1, r2, &rad) || rad > 1'000'000'000'000LL) return std::nullopt;
      auto c = reward::mul(x.coef, y.coef);
      if (!c) return std::nullopt;
      c = reward::mul(*c, Rational::integer(g));
      if (!c) return std::nullopt;
      out.push_back(Term{*c, x.pi_power + y.pi_power, rad});
    }
  }
  return from_terms(std::move(out));
}

std::optional<ExactValue> ExactValue::div(const ExactValue& a, const ExactValue& b) {
  if (b.terms_.size() != 1) return std::nullopt;
  const Term& t = b.terms_[0];
  // 1/(c·π^k·√s) = (1/(c·s))·π^-k·√s
  auto inv_c = reward::div(Rational::integer(1), t.coef);
  if (!inv_c) return std::nullopt;
  inv_c = reward::div(*inv_c, Rational::integer(t.radicand));
  if (!inv_c) return std::nullopt;
  ExactValue inv;
  inv.terms_.push_back(Term{*inv_c, -t.pi_power, t.radicand});
  return mul(a, inv);
}

std::optional<ExactValue> ExactValue::sqrt(const ExactValue& a) {
  auto r = a.as_rational();
  if (!r || r->num < 0) return std::nullopt;
  if (r->is_zero()) return ExactValue();
  // √(p/q) = √(p·q)/q
  i128 pq;
  if (__builtin_mul_overflow(r->num, r->den, &pq) || pq > 1'000'000'000'000LL) return std::nullopt;
  int64_t outside, inside;
  split_square(static_cast<int64_t>(pq), &outside, &inside);
  auto c = Rational::make(outside, r->den);
  if (!c) return std::nullopt;
  ExactValue v;
  v.terms_.push_back(Term{*c, 0, inside});
  return v;
}

std::optional<ExactValue> ExactValue::pow(const ExactValue& a, int64_t e) {
  if (e > 64 || e < -64) return std::nullopt;
  if (e < 0) {
    auto p = pow(a, -e);
    if (!p) return std::nullopt;
    return div(rational(Rational::integer(1)), *p);
  }
  if (auto r = a.as_rational()) {
    auto p = reward::pow(*r, e);
    if (!p) return std::nullopt;
    return rational(*p);
  }
  ExactValue out = rational(Rational::integer(1));
  for (int64_t i = 0; i < e; ++i) {
    auto next = mul(out, a);
    if (!next) return std::nullopt;
    out = *next;
  }
  return out;
}

bool ExactValue::operator==(const ExactValue& o) const {
  if (terms_.size() != o.terms_.size()) return false;
  for (size_t i = 0; i < terms_.size(); ++i) {
    if (!terms_[i].same_monomial(o.terms_[i]) || !(terms_[i].coef == o.terms_[i].coef)) {
      return false;
    }
  }
  return true;
}

std::optional<Rational> ExactValue::as_rational() const {
  if (terms_.empty()) return Rational::integer(0);
  if (terms_.size() == 1 && terms_[0].pi_power == 0 && terms_[0].radicand == 1) {
    return terms_[0].coef;
  }
  return std::nullopt;
}

std::string ExactValue::to_string() const {
  if (terms_.empty()) return "0";
  std::string s;
  for (const Term& t : terms_) {
    if (!s.empty()) s += " + ";
    s += t.coef.to_string();
    if (t.pi_power != 0) s += "*pi^" + std::to_string(t.pi_power);
    if (t.radicand != 1) s += "*sqrt(" + std::to_string(t.radicand) + ")";
  }
  return s;
}

}  // namespace r1kit::reward
