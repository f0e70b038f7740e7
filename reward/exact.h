// Exact arithmetic for answer checking: bounded rationals and sums of π^k·√s terms.
//
// The math verifier and the countdown checker decide equality exactly, never by float
// rounding (Math-Verify's numeric_precision gave the false positive 1/2004! == 1/2006!;
// docs/rewards.md, "Where other implementations go wrong"). Numbers live in __int128
// with every operation checked: overflow is an error value (the caller answers "not
// equal"), never undefined behaviour, so hostile answers such as 10^100000 or 1e999999
// cost nothing.
//
// ExactValue is a sum of terms c·π^k·√s (c rational, k a small integer, s a square-free
// positive integer), enough for answers like 3\sqrt{2}, \frac{\pi}{4}, 2+\sqrt{3}.
// Division is only by a single term; sqrt only of a non-negative rational. Anything
// else is "cannot represent", which the verifier treats as not equal.
//
// Thread-safety: plain values, no shared state.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace r1kit::reward {

using i128 = __int128;

// num/den in lowest terms, den > 0. Operations return nullopt on overflow or division
// by zero. Magnitudes stay below 2^126 so that every intermediate product is checked.
struct Rational {
  i128 num = 0;
  i128 den = 1;

  static std::optional<Rational> make(i128 num, i128 den);
  static Rational integer(int64_t v) { return Rational{v, 1}; }

  bool is_zero() const { return num == 0; }
  bool is_integer() const { return den == 1; }
  bool operator==(const Rational& o) const { return num == o.num && den == o.den; }
  bool operator<(const Rational& o) const;  // exact (may fall back to long double on overflow)
  std::string to_string() const;            // "3/4", "-2"
};

std::optional<Rational> add(const Rational& a, const Rational& b);
std::optional<Rational> sub(const Rational& a, const Rational& b);
std::optional<Rational> mul(const Rational& a, const Rational& b);
std::optional<Rational> div(const Rational& a, const Rational& b);
// a^e for |e| <= 256; nullopt on overflow, 0^negative, or a larger exponent.
std::optional<Rational> pow(const Rational& a, int64_t e);

// One term c·π^pi_power·√radicand.
struct Term {
  Rational coef;
  int pi_power = 0;      // π exponent, |pi_power| <= 16
  int64_t radicand = 1;  // square-free, >= 1
  bool same_monomial(const Term& o) const {
    return pi_power == o.pi_power && radicand == o.radicand;
  }
};

// A canonical sum of terms: like terms combined, zero terms dropped, sorted. Two values
// are equal exactly when their term lists are equal.
class ExactValue {
 public:
  ExactValue() = default;  // zero
  static ExactValue rational(const Rational& r);
  static ExactValue pi();

  static std::optional<ExactValue> add(const ExactValue& a, const ExactValue& b);
  static std::optional<ExactValue> neg(const ExactValue& a);
  static std::optional<ExactValue> mul(const ExactValue& a, const ExactValue& b);
  // Only when b is a single non-zero term.
  static std::optional<ExactValue> div(const ExactValue& a, const ExactValue& b);
  // Only when a is a non-negative rational whose reduced num*den is at most 10^12.
  static std::optional<ExactValue> sqrt(const ExactValue& a);
  // Integer exponent, |e| <= 64.
  static std::optional<ExactValue> pow(const ExactValue& a, int64_t e);

  bool operator==(const ExactValue& o) const;
  // The value when it is a plain rational.
  std::optional<Rational> as_rational() const;
  const std::vector<Term>& terms() const { return terms_; }
  std::string to_string() const;

 private:
  static std::optional<ExactValue> from_terms(std::vector<Term> terms);
  std::vector<Term> terms_;  // canonical: sorted by (pi_power, radicand), no zero coefs
};

}  // namespace r1kit::reward
