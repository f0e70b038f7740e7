// Table-driven tests of the math verifier and exact arithmetic: extraction, normalisation,
// equivalence, the bugs and reward-hacking cases of docs/rewards.md ("Where other
// implementations go wrong"), and hostile inputs (huge powers, deep nesting, 1 MB answers).
#include "reward/math_verify.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "reward/exact.h"

namespace r1kit::reward {
namespace {

TEST(ExactTest, RationalArithmetic) {
  // 1/3 + 1/6 = 2/6 + 1/6 = 3/6 = 1/2
  auto s = add(*Rational::make(1, 3), *Rational::make(1, 6));
  ASSERT_TRUE(s);
  EXPECT_EQ(s->to_string(), "1/2");
  // (2/3) / (-4/9) = (2/3) * (-9/4) = -18/12 = -3/2
  auto d = div(*Rational::make(2, 3), *Rational::make(-4, 9));
  ASSERT_TRUE(d);
  EXPECT_EQ(d->to_string(), "-3/2");
  EXPECT_FALSE(div(Rational::integer(1), Rational::integer(0)));
  // 10^37 fits (< 2^126 ~ 8.5e37); 10^38 does not.
  EXPECT_TRUE(pow(Rational::integer(10), 37));
  EXPECT_FALSE(pow(Rational::integer(10), 38));
  EXPECT_FALSE(pow(Rational::integer(10), 100000));
  EXPECT_FALSE(pow(Rational::integer(0), -1));
}

TEST(ExactTest, SqrtAndPi) {
  // sqrt(8) = 2 sqrt(2); sqrt(8)/2 == sqrt(2)
  auto s8 = ExactValue::sqrt(ExactValue::rational(Rational::integer(8)));
  auto s2 = ExactValue::sqrt(ExactValue::rational(Rational::integer(2)));
  ASSERT_TRUE(s8 && s2);
  auto half = ExactValue::div(*s8, ExactValue::rational(Rational::integer(2)));
  ASSERT_TRUE(half);
  EXPECT_TRUE(*half == *s2);
  // sqrt(2)*sqrt(2) = 2
  auto two = ExactValue::mul(*s2, *s2);
  ASSERT_TRUE(two);
  EXPECT_TRUE(*two == ExactValue::rational(Rational::integer(2)));
  // sqrt(6)*sqrt(10) = sqrt(60) = 2 sqrt(15)
  auto p = ExactValue::mul(*ExactValue::sqrt(ExactValue::rational(Rational::integer(6))),
                           *ExactValue::sqrt(ExactValue::rational(Rational::integer(10))));
  ASSERT_TRUE(p);
  EXPECT_EQ(p->to_string(), "2*sqrt(15)");
  // sqrt of a large prime square: 999983^2 = 999966000289 -> 999983
  auto big = ExactValue::sqrt(ExactValue::rational(Rational::integer(999966000289LL)));
  ASSERT_TRUE(big);
  EXPECT_EQ(big->to_string(), "999983");
  // pi/pi = 1; pi - pi = 0
  auto one = ExactValue::div(ExactValue::pi(), ExactValue::pi());
  ASSERT_TRUE(one);
  EXPECT_TRUE(*one == ExactValue::rational(Rational::integer(1)));
  EXPECT_FALSE(ExactValue::sqrt(ExactValue::rational(Rational::integer(-4))));
}

struct ExtractCase {
  const char* completion;
  bool found;
  bool hedged;
  const char* text;
};

TEST(MathVerifyTest, ExtractAnswer) {
  const ExtractCase cases[] = {
      {"<think>x</think> <answer> 42 </answer>", true, false, "42"},
      {"<answer>1</answer> then <answer>2</answer>", true, false, "2"},  // the last tag
      {"<answer>\\boxed{7}</answer>", true, false, "7"},
      {"so \\boxed{\\frac{1}{2}} done", true, false, "\\frac{1}{2}"},
      {"\\boxed{1} ... \\boxed{2}", true, true, "2"},       // hedge
      {"\\boxed{2} ... \\boxed{2.0}", true, false, "2.0"},  // same value twice: fine
      {"\\boxed{{nested}{braces}}", true, false, "{nested}{braces}"},
      {"\\boxed{unclosed", false, false, ""},
      {"\\fbox{5}", true, false, "5"},
      {"The final answer is $18$. I hope it is correct.", true, false, "$18$."},
      {"Thus the Final Answer is: 3.\nMore text", true, false, "3."},
      {"work\n#### 72\n", true, false, "72"},
      {"<answer></answer>", false, false, ""},                // empty answer tag: found nothing
      {"<answer>   </answer> \\boxed{3}", false, false, ""},  // the tag decides
      {"no answer at all: 42", false, false, ""},             // no whole-text fallback
      {"<answer>5", false, false, ""},                        // unclosed tag: not an answer
  };
  for (const auto& c : cases) {
    ExtractedAnswer a = extract_answer(c.completion);
    EXPECT_EQ(a.found, c.found) << c.completion;
    EXPECT_EQ(a.hedged, c.hedged) << c.completion;
    if (c.found) {
      EXPECT_EQ(a.text, c.text) << c.completion;
    }
  }
}

TEST(MathVerifyTest, GoldAnswerText) {
  EXPECT_EQ(gold_answer_text("Natalia sold 48/2 = 24 clips.\n#### 72"), "72");
  EXPECT_EQ(gold_answer_text("so $x = \\boxed{\\frac{3}{4}}$."), "\\frac{3}{4}");
  EXPECT_EQ(gold_answer_text(" 17 "), "17");
}

struct NormCase {
  const char* in;
  const char* out;
};

TEST(MathVerifyTest, Normalize) {
  const NormCase cases[] = {
      {"\\$1,234.", "1234"},
      {"1{,}000", "1000"},
      {"\\left( 1, 2 \\right)", "(1,2)"},
      {"\\dfrac{1}{2}", "\\frac{1}{2}"},
      {"\\tfrac12", "\\frac12"},
      {"90^\\circ", "90"},
      {"90^{\\circ}", "90"},
      {"50\\%", "50"},
      {"50%", "50"},
      {"5 \\text{ cm}", "5"},
      {"5\\text{ m}^2", "5m^2"},  // unit with a power: not trailing, only unwrapped
      {"\\text{Monday}", "Monday"},
      {"\\text{(A)}", "(A)"},
      {"72.", "72"},
      {"$\\frac{\\pi}{2}$", "\\frac{\\pi}{2}"},
      {"1,2", "1,2"},      // not a thousands number: a list
      {"12,34", "12,34"},  // group of 2 digits: a list
      {"\xE2\x88\x92"
       "5",
       "-5"},  // U+2212 minus sign
      {"\\leftarrow", "\\leftarrow"},
  };
  for (const auto& c : cases) EXPECT_EQ(normalize_answer(c.in), c.out) << c.in;
}

struct MatchCase {
  const char* gold;
  const char* pred;
  bool match;
};

TEST(MathVerifyTest, Equivalence) {
  const MatchCase cases[] = {
      // Numbers: exact, not string equality (verl's strip_string misses these).
      {"10", "10.0", true},
      {"0.25", "\\frac14", true},
      {"0.25", "\\frac{1}{4}", true},
      {"1/4", "0.25", true},
      {"72", "72.", true},
      {"72", "$72", true},
      {"1234", "1,234", true},
      {"1234", "1{,}234", true},
      {"-3", "−3", true},
      {"1.5e3", "1500", true},
      {"1500", "1.5\\times10^3", true},
      {"1500", "1.5\\times10^{3}", true},
      {"3", "3.0001", false},
      {"0.333", "\\frac13", false},  // exact: no float rounding
      {"\\frac{1}{3}", "0.3333333333", false},
      {"\\frac{2}{4}", "\\frac{1}{2}", true},
      {"\\dfrac{3}{4}", "\\tfrac{3}{4}", true},
      {"-\\frac{1}{2}", "\\frac{-1}{2}", true},
      {"\\frac{1}{2}", "-\\frac{1}{2}", false},
      // Expressions.
      {"2\\sqrt{2}", "\\sqrt{8}", true},
      {"\\sqrt{2}/2", "\\frac{1}{\\sqrt{2}}", true},
      {"4\\sqrt{2}", "4\\sqrt(2)", true},  // Math-Verify read this as 4
      {"4\\sqrt{2}", "4", false},
      {"\\sqrt{17}", "4.1231", false},
      {"\\sqrt3", "\\sqrt{3}", true},
      {"\\frac{\\pi}{2}", "\\pi/2", true},
      {"\\frac{\\pi}{2}", "0.5\\pi", true},
      {"\\pi", "3.14", false},  // prime_math's lenient pi == 3.14 is wrong
      {"2\\pi", "2 \\cdot \\pi", true},
      {"6", "2 \\times 3", true},
      {"8", "2^3", true},
      {"8", "2^{3}", true},
      {"\\frac{1}{8}", "2^{-3}", true},
      {"1+\\sqrt{3}", "\\sqrt{3}+1", true},
      {"1+\\sqrt{3}", "1-\\sqrt{3}", false},
      {"90", "90^\\circ", true},
      {"50", "50\\%", true},
      {"5", "5 \\text{ cm}", true},
      {"13", "\\text{13}", true},  // Math-Verify before 0.8.0: not equal
      // Equations: asymmetric roles.
      {"3", "x = 3", true},
      {"3", "x=4", false},
      {"3", "3 = 3", false},      // not a variable on the left
      {"3", "x = 3 = 4", false},  // a chain of relations
      {"3", "x = 3, y = 4", false},
      {"x = 3", "x = 3", true},
      {"x=3", "3", true},
      {"y = 2x + 1", "y=2x+1", true},
      {"y = 2x + 1", "y = 2x + 2", false},
      {"k = 5", "m = 5", false},
      // Tuples (ordered), sets (unordered), intervals (brackets matter).
      {"(1, 2)", "(1,2)", true},
      {"(1, 2)", "(2, 1)", false},
      {"(1, 2)", "\\left(1, 2\\right)", true},
      {"(\\frac12, 3)", "(0.5, 3)", true},
      {"\\{1, 2, 3\\}", "\\{3, 1, 2\\}", true},
      {"\\{1, 2, 3\\}", "\\{1, 2\\}", false},
      {"1, 2, 3", "3, 2, 1", true},
      {"2, 3, 4", "1, 2, 3", false},  // a Math-Verify false positive
      {"[1, 2)", "[1, 2)", true},
      {"[1, 2)", "[1, 2]", false},
      {"[1, 2)", "(1, 2)", false},
      {"(-\\infty, 3]", "(-\\infty,3]", true},
      {"(-\\infty, 3]", "(-∞, 3]", true},
      {"x \\in [2, 5)", "x \\in [2,5)", true},
      {"[2, 5)", "x \\in [2, 5)", true},
      // Text answers: exact after normalisation, never substring.
      {"\\text{Monday}", "Monday", true},
      {"Monday", "monday", false},
      {"(A)", "\\text{(A)}", true},
      {"2021", "\\pm 2021", false},  // a Math-Verify false positive
      {"1/2004!", "1/2006!", false},
      // Reward hacking: empty, substrings, hedges.
      {"3", "", false},
      {"3", " ", false},
      {"", "3", false},
      {"12", "1", false},
      {"1", "12", false},
      {"3", "3 or 4", false},
      {"3", "3, 4", false},
      {"3", "3 \\text{ or } 4", false},
      {"3", "\\{3, 4\\}", false},
      // Unicode digits are not ASCII digits.
      {"3", "\xD9\xA3", false},      // Arabic-Indic three
      {"3", "\xEF\xBC\x93", false},  // full-width three
  };
  for (const auto& c : cases) {
    EXPECT_EQ(answers_match(c.gold, c.pred), c.match) << "gold=" << c.gold << " pred=" << c.pred;
  }
}

TEST(MathVerifyTest, HostileInputsAreBoundedAndFast) {
  const std::string deep_open(100000, '{');
  std::string deep(5000, '(');
  deep.append("1").append(5000, ')');
  const std::string long_digits(200000, '9');
  const std::string hostile[] = {
      "10^100000",
      "10^10^10",
      "1e999999",
      "1e-999999",
      "2^{2^{2^{2^{2}}}}",
      "(2^{64})^{64}",
      deep_open,
      deep,
      long_digits,
      "\\sqrt{\\sqrt{\\sqrt{\\sqrt{\\sqrt{\\sqrt{\\sqrt{\\sqrt{\\sqrt{\\sqrt{\\sqrt{\\sqrt{"
      "\\sqrt{\\sqrt{\\sqrt{\\sqrt{\\sqrt{\\sqrt{2}}}}}}}}}}}}}}}}}}",
      "\\sqrt{999999999989}",
      "1/0",
      "\\frac{1}{0}",
      "0^{-1}",
      "\\frac{\\frac{\\frac{1}{2}}{3}}{4}",
  };
  for (const std::string& h : hostile) {
    auto t0 = std::chrono::steady_clock::now();
    bool m = answers_match("1", h);
    double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_FALSE(m) << h.substr(0, 40);
    EXPECT_LT(ms, 50.0) << h.substr(0, 40);
  }
  // A 1 MB completion with many boxes and tags scores in bounded time.
  std::string big;
  while (big.size() < (1 << 20)) big += "<answer> \\boxed{1} </think> {{{ ";
  auto t0 = std::chrono::steady_clock::now();
  ExtractedAnswer a = extract_answer(big);
  double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(ms, 500.0);
  (void)a;
  // Many boxes before a 4 KB last box: bounded (at most 16 distinct are compared).
  std::string boxes;
  for (int i = 0; i < 10000; ++i) boxes += "\\boxed{" + std::to_string(i % 50) + "}";
  boxes += "\\boxed{" + std::string(4000, '1') + "}";
  t0 = std::chrono::steady_clock::now();
  ExtractedAnswer many = extract_answer(boxes);
  ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_TRUE(many.hedged);
  EXPECT_LT(ms, 200.0);
  // 17 distinct boxes are a hedge even if the last one repeats; 3 equal values are not.
  std::string seventeen;
  for (int i = 0; i < 17; ++i) seventeen += "\\boxed{" + std::to_string(i) + "} ";
  EXPECT_TRUE(extract_answer(seventeen).hedged);
  EXPECT_FALSE(extract_answer("\\boxed{2} \\boxed{2.0} \\boxed{\\frac{4}{2}}").hedged);
  // An answer beyond 4096 characters never matches, even against itself.
  const std::string long_answer(5000, '7');
  EXPECT_FALSE(answers_match(long_answer, long_answer));
  // 1/24 == (1/2)/3/4 exactly: the last hostile case is fine arithmetic.
  EXPECT_TRUE(answers_match("\\frac{1}{24}", "\\frac{\\frac{\\frac{1}{2}}{3}}{4}"));
}

}  // namespace
}  // namespace r1kit::reward
