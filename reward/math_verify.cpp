// Math answer extraction, normalisation and exact equivalence; see math_verify.h.
#include "reward/math_verify.h"

#include <algorithm>
#include <cctype>
#include <optional>

#include "reward/exact.h"

namespace r1kit::reward {

using data::gsm8k_answer;
using data::match_brace;

namespace {

// Answers longer than this are not parsed as math (string comparison still applies).
constexpr size_t kMaxParseChars = 512;
// Answers longer than this never match (no final answer is 4 KB); checked before any
// normalisation, so a 100 KB answer costs one comparison.
constexpr size_t kMaxAnswerChars = 4096;
// Nesting depth of the parser; deeper input is unparseable, not a stack overflow.
constexpr int kMaxDepth = 64;
// \sqrt evaluations per answer (each may cost ~10^4 steps).
constexpr int kMaxSqrt = 16;

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// Replaces every occurrence of `from` with `to` (left to right, no rescanning).
void replace_all(std::string& s, std::string_view from, std::string_view to) {
  if (from.empty()) return;
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (true) {
    size_t j = s.find(from, i);
    if (j == std::string::npos) break;
    out.append(s, i, j - i);
    out.append(to);
    i = j + from.size();
  }
  out.append(s, i, std::string::npos);
  s = std::move(out);
}

// Removes the LaTeX command `cmd` (e.g. "\\left") where it is not the prefix of a longer
// command name (so "\\left" does not eat "\\leftarrow").
void remove_command(std::string& s, std::string_view cmd) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    if (s.compare(i, cmd.size(), cmd) == 0 &&
        (i + cmd.size() >= s.size() || !is_alpha(s[i + cmd.size()]))) {
      i += cmd.size();
      continue;
    }
    out.push_back(s[i++]);
  }
  s = std::move(out);
}

// Case-insensitive rfind of an ASCII needle.
size_t rfind_icase(std::string_view hay, std::string_view needle) {
  if (needle.size() > hay.size()) return std::string_view::npos;
  for (size_t i = hay.size() - needle.size() + 1; i-- > 0;) {
    bool ok = true;
    for (size_t k = 0; k < needle.size() && ok; ++k) {
      ok = std::tolower(static_cast<unsigned char>(hay[i + k])) == needle[k];
    }
    if (ok) return i;
  }
  return std::string_view::npos;
}

}  // namespace

// ---------------------------------------------------------------- extraction

std::vector<AnswerSource> default_answer_sources() {
  return {AnswerSource::kAnswerTag, AnswerSource::kBoxed, AnswerSource::kFinalAnswer,
          AnswerSource::kGsm8k};
}

namespace {

// Checks several \boxed answers: distinct values are a hedge. More than 16 distinct
// box contents is a hedge outright, which also bounds the comparisons.
bool boxed_hedged(const std::vector<std::string>& all) {
  if (all.size() < 2) return false;
  const std::string& last = all.back();
  std::vector<std::string_view> distinct;
  for (const std::string& b : all) {
    if (b == last) continue;
    if (std::find(distinct.begin(), distinct.end(), b) != distinct.end()) continue;
    if (distinct.size() >= 16) return true;
    distinct.push_back(b);
  }
  for (std::string_view b : distinct) {
    if (!answers_match(last, b)) return true;
  }
  return false;
}

// The text of the last "final answer is X" up to the end of its sentence or line.
std::optional<std::string> final_answer_is(std::string_view text) {
  size_t p = rfind_icase(text, "final answer is");
  if (p == std::string_view::npos) return std::nullopt;
  std::string_view rest = text.substr(p + 15);
  if (!rest.empty() && rest[0] == ':') rest.remove_prefix(1);
  size_t end = rest.find('\n');
  if (end != std::string_view::npos) rest = rest.substr(0, end);
  // The sentence ends at ". " (a period before a space) or "I hope".
  size_t dot = rest.find(". ");
  if (dot != std::string_view::npos) rest = rest.substr(0, dot + 1);
  size_t hope = rest.find("I hope");
  if (hope != std::string_view::npos) rest = rest.substr(0, hope);
  return std::string(trim(rest));
}

}  // namespace

ExtractedAnswer extract_answer(std::string_view completion,
                               const std::vector<AnswerSource>& sources) {
  ExtractedAnswer out;
  for (AnswerSource src : sources) {
    std::optional<std::string> text;
    switch (src) {
      case AnswerSource::kAnswerTag: {
        size_t open = completion.rfind("<answer>");
        if (open == std::string_view::npos) break;
        size_t close = completion.find("</answer>", open);
        if (close == std::string_view::npos) break;
        std::string_view inner = completion.substr(open + 8, close - open - 8);
        std::vector<std::string> all;
        std::string boxed = last_boxed(inner, &all);
        if (!all.empty()) {
          out.hedged = boxed_hedged(all);
          text = boxed;
        } else {
          text = std::string(inner);
        }
        break;
      }
      case AnswerSource::kBoxed: {
        std::vector<std::string> all;
        std::string boxed = last_boxed(completion, &all);
        if (all.empty()) break;
        out.hedged = boxed_hedged(all);
        text = boxed;
        break;
      }
      case AnswerSource::kFinalAnswer: text = final_answer_is(completion); break;
      case AnswerSource::kGsm8k: text = gsm8k_answer(completion); break;
    }
    if (text) {
      out.found = !trim(*text).empty();
      out.text = std::string(trim(*text));
      out.source = src;
      return out;  // the first source that is present decides, even when empty
    }
  }
  return out;
}

// ---------------------------------------------------------------- normalisation

namespace {

// Drops trailing \text{...} units after a quantity and unwraps the rest of \text{}.
void handle_text(std::string& s) {
  static constexpr std::string_view kTextCmds[] = {"\\text", "\\textbf", "\\mathrm",
                                                   "\\mbox", "\\textrm", "\\mathbf"};
  // Units: a \text{...} group that ends the answer and follows a quantity.
  for (int round = 0; round < 4; ++round) {
    std::string_view t = trim(s);
    if (t.empty() || t.back() != '}') break;
    size_t cut = std::string::npos;
    for (std::string_view cmd : kTextCmds) {
      size_t p = t.rfind(std::string(cmd) + "{");
      if (p == std::string_view::npos) continue;
      if (match_brace(t, p + cmd.size()) != t.size()) continue;
      std::string_view before = trim(t.substr(0, p));
      if (!before.empty() && (is_digit(before.back()) || before.back() == '}' ||
                              before.back() == ')' || before.back() == '.')) {
        cut = std::max(cut == std::string::npos ? 0 : cut, p);
      }
    }
    if (cut == std::string::npos) break;
    s = std::string(trim(t.substr(0, cut)));
  }
  // Unwrap the remaining ones: \text{Monday} -> Monday.
  for (std::string_view cmd : kTextCmds) {
    std::string key = std::string(cmd) + "{";
    size_t p;
    int guard = 0;
    while ((p = s.find(key)) != std::string::npos && guard++ < 64) {
      size_t end = match_brace(s, p + cmd.size());
      if (end == std::string::npos) break;
      s = s.substr(0, p) + s.substr(p + key.size(), end - 1 - p - key.size()) + s.substr(end);
    }
  }
}

// "1,234,567.5" (optionally signed) -> true: commas are thousands separators.
bool is_thousands_number(std::string_view s) {
  size_t i = 0;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
  size_t lead = 0;
  while (i < s.size() && is_digit(s[i])) ++i, ++lead;
  if (lead < 1 || lead > 3) return false;
  int groups = 0;
  while (i < s.size() && s[i] == ',') {
    for (size_t k = 1; k <= 3; ++k) {
      if (i + k >= s.size() || !is_digit(s[i + k])) return false;
    }
    i += 4;
    ++groups;
  }
  if (groups == 0) return false;
  if (i < s.size() && s[i] == '.') {
    ++i;
    if (i >= s.size()) return false;
    while (i < s.size() && is_digit(s[i])) ++i;
  }
  return i == s.size();
}

}  // namespace

std::string normalize_answer(std::string_view answer) {
  std::string s(trim(answer));
  // Unicode look-alikes of ASCII operators and symbols.
  replace_all(s, "\xE2\x88\x92", "-");         // U+2212 minus
  replace_all(s, "\xC3\x97", "*");             // U+00D7 ×
  replace_all(s, "\xC2\xB7", "*");             // U+00B7 ·
  replace_all(s, "\xC3\xB7", "/");             // U+00F7 ÷
  replace_all(s, "\xCF\x80", "\\pi ");         // U+03C0 π
  replace_all(s, "\xE2\x88\x9E", "\\infty ");  // U+221E ∞
  replace_all(s, "\xC2\xB0", "");              // U+00B0 °
  replace_all(s, "\n", " ");
  replace_all(s, "\\$", "");
  replace_all(s, "$", "");
  replace_all(s, "\\dfrac", "\\frac");
  replace_all(s, "\\tfrac", "\\frac");
  replace_all(s, "^{\\circ}", "");
  replace_all(s, "^\\circ", "");
  replace_all(s, "\\%", "");
  replace_all(s, "%", "");
  replace_all(s, "{,}", "");  // LaTeX thousands separator 1{,}000
  for (std::string_view cmd : {"\\left", "\\right", "\\displaystyle", "\\quad", "\\qquad", "\\bigl",
                               "\\bigr", "\\Bigl", "\\Bigr", "\\circ"}) {
    remove_command(s, cmd);
  }
  for (std::string_view sp : {"\\!", "\\,", "\\;", "\\:", "\\ "}) replace_all(s, sp, "");
  handle_text(s);
  // Drop whitespace.
  std::erase_if(s, [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; });
  // A sentence's final period: "72." -> "72" (but keep "\\ldots").
  while (!s.empty() && s.back() == '.' && !(s.size() >= 2 && s[s.size() - 2] == '.')) s.pop_back();
  if (is_thousands_number(s)) std::erase(s, ',');
  return s;
}

// ---------------------------------------------------------------- parsing

namespace {

// Recursive descent over a normalised (space-free) answer; every failure -> nullopt.
class ExprParser {
 public:
  explicit ExprParser(std::string_view s) : s_(s) {}

  std::optional<ExactValue> parse_all() {
    if (s_.empty() || s_.size() > kMaxParseChars) return std::nullopt;
    auto v = expr(0);
    if (!v || pos_ != s_.size()) return std::nullopt;
    return v;
  }

 private:
  bool eat(std::string_view tok) {
    if (s_.compare(pos_, tok.size(), tok) != 0) return false;
    // A command must not continue with letters: "\pi" is not the start of "\pix".
    if (tok[0] == '\\' && is_alpha(tok.back()) && pos_ + tok.size() < s_.size() &&
        is_alpha(s_[pos_ + tok.size()])) {
      return false;
    }
    pos_ += tok.size();
    return true;
  }
  bool at_end() const { return pos_ >= s_.size(); }
  char peek() const { return at_end() ? '\0' : s_[pos_]; }

  std::optional<ExactValue> expr(int depth) {
    if (depth > kMaxDepth) return std::nullopt;
    auto v = term(depth + 1);
    while (v && !at_end()) {
      if (eat("+")) {
        auto r = term(depth + 1);
        if (!r) return std::nullopt;
        v = ExactValue::add(*v, *r);
      } else if (eat("-")) {
        auto r = term(depth + 1);
        if (!r) return std::nullopt;
        auto n = ExactValue::neg(*r);
        v = n ? ExactValue::add(*v, *n) : std::nullopt;
      } else {
        break;
      }
    }
    return v;
  }

  // Whether the next character can begin a factor (for implicit multiplication).
  bool starts_factor() const {
    if (at_end()) return false;
    char c = peek();
    if (c == '(' || c == '{' || is_digit(c)) return true;
    if (c == '\\') {
      return s_.compare(pos_, 5, "\\frac") == 0 || s_.compare(pos_, 5, "\\sqrt") == 0 ||
             s_.compare(pos_, 3, "\\pi") == 0;
    }
    return false;
  }

  std::optional<ExactValue> term(int depth) {
    if (depth > kMaxDepth) return std::nullopt;
    auto v = unary(depth + 1);
    while (v && !at_end()) {
      if (eat("*") || eat("\\cdot") || eat("\\times")) {
        auto r = unary(depth + 1);
        if (!r) return std::nullopt;
        v = ExactValue::mul(*v, *r);
      } else if (eat("/") || eat("\\div")) {
        auto r = unary(depth + 1);
        if (!r) return std::nullopt;
        v = ExactValue::div(*v, *r);
      } else if (starts_factor()) {
        auto r = power(depth + 1);
        if (!r) return std::nullopt;
        v = ExactValue::mul(*v, *r);
      } else {
        break;
      }
    }
    return v;
  }

  std::optional<ExactValue> unary(int depth) {
    if (depth > kMaxDepth) return std::nullopt;
    if (eat("-")) {
      auto v = unary(depth + 1);
      if (!v) return std::nullopt;
      return ExactValue::neg(*v);
    }
    if (eat("+")) return unary(depth + 1);
    return power(depth + 1);
  }

  std::optional<ExactValue> power(int depth) {
    if (depth > kMaxDepth) return std::nullopt;
    auto base = atom(depth + 1);
    if (!base) return std::nullopt;
    if (!eat("^")) return base;
    // Exponent: a group, a parenthesised expression, a signed integer, or another
    // power (right-associative: 10^10^10 is 10^(10^10)).
    std::optional<ExactValue> e;
    if (peek() == '{' || peek() == '(') {
      e = atom(depth + 1);
    } else {
      bool neg = eat("-");
      e = number_token(/*single_digit=*/false);
      if (e && neg) e = ExactValue::neg(*e);
    }
    if (e && eat("^")) {
      auto e2 = unary(depth + 1);
      if (!e2) return std::nullopt;
      auto r = e->as_rational();
      auto r2 = e2->as_rational();
      if (!r || !r2 || !r2->is_integer()) return std::nullopt;
      if (r2->num > 64 || r2->num < -64) return std::nullopt;
      auto p = reward::pow(*r, static_cast<int64_t>(r2->num));
      if (!p) return std::nullopt;
      e = ExactValue::rational(*p);
    }
    if (!e) return std::nullopt;
    auto r = e->as_rational();
    if (!r) return std::nullopt;
    if (r->is_integer()) {
      if (r->num > 64 || r->num < -64) return std::nullopt;
      return ExactValue::pow(*base, static_cast<int64_t>(r->num));
    }
    if (r->num == 1 && r->den == 2 && sqrt_budget_-- > 0) return ExactValue::sqrt(*base);
    return std::nullopt;
  }

  // A brace group, or the single token LaTeX allows without braces (\frac12, \sqrt3).
  std::optional<ExactValue> group(int depth) {
    if (peek() == '{') return atom(depth);
    if (is_digit(peek())) return number_token(/*single_digit=*/true);
    if (eat("\\pi")) return ExactValue::pi();
    return std::nullopt;
  }

  std::optional<ExactValue> atom(int depth) {
    if (depth > kMaxDepth) return std::nullopt;
    if (eat("(")) {
      auto v = expr(depth + 1);
      if (!v || !eat(")")) return std::nullopt;
      return v;
    }
    if (eat("{")) {
      auto v = expr(depth + 1);
      if (!v || !eat("}")) return std::nullopt;
      return v;
    }
    if (eat("\\frac")) {
      auto n = group(depth + 1);
      if (!n) return std::nullopt;
      auto d = group(depth + 1);
      if (!d) return std::nullopt;
      return ExactValue::div(*n, *d);
    }
    if (eat("\\sqrt")) {
      std::optional<int64_t> index;
      if (eat("[")) {
        auto k = number_token(false);
        if (!k || !eat("]")) return std::nullopt;
        auto kr = k->as_rational();
        if (!kr || !kr->is_integer() || kr->num != 2) return std::nullopt;  // square roots only
      }
      std::optional<ExactValue> arg;
      if (peek() == '(') {
        arg = atom(depth + 1);  // \sqrt(2): the reading Math-Verify missed
      } else {
        arg = group(depth + 1);
      }
      if (!arg || sqrt_budget_-- <= 0) return std::nullopt;
      return ExactValue::sqrt(*arg);
    }
    if (eat("\\pi")) return ExactValue::pi();
    if (is_digit(peek()) || peek() == '.') return number_token(false);
    return std::nullopt;
  }

  // Integer, decimal or scientific literal ("12", "0.5", ".5", "1.5e-3", "2E10").
  std::optional<ExactValue> number_token(bool single_digit) {
    if (single_digit) {
      if (!is_digit(peek())) return std::nullopt;
      return ExactValue::rational(Rational::integer(s_[pos_++] - '0'));
    }
    i128 mant = 0;
    int frac_digits = 0, digits = 0;
    bool dot = false, overflow = false;
    size_t start = pos_;
    while (!at_end() && (is_digit(peek()) || (peek() == '.' && !dot))) {
      if (peek() == '.') {
        // A '.' must be followed by a digit to be a decimal point.
        if (pos_ + 1 >= s_.size() || !is_digit(s_[pos_ + 1])) break;
        dot = true;
        ++pos_;
        continue;
      }
      if (mant != 0 || peek() != '0') ++digits;
      if (digits > 36) overflow = true;
      if (!overflow) mant = mant * 10 + (peek() - '0');
      if (dot) ++frac_digits;
      ++pos_;
    }
    if (pos_ == start || overflow || frac_digits > 36) return std::nullopt;
    int64_t exp10 = -frac_digits;
    // Scientific notation: e/E, an optional sign, digits.
    if (!at_end() && (peek() == 'e' || peek() == 'E')) {
      size_t q = pos_ + 1;
      bool neg = false;
      if (q < s_.size() && (s_[q] == '+' || s_[q] == '-')) neg = s_[q++] == '-';
      if (q < s_.size() && is_digit(s_[q])) {
        int64_t e = 0;
        while (q < s_.size() && is_digit(s_[q])) {
          if (e < 1'000'000) e = e * 10 + (s_[q] - '0');
          ++q;
        }
        pos_ = q;
        exp10 += neg ? -e : e;
      }
    }
    if (exp10 > 76 || exp10 < -76) return std::nullopt;
    auto scale = reward::pow(Rational::integer(10), exp10);
    if (!scale) return std::nullopt;
    auto v = reward::mul(Rational{mant, 1}, *scale);
    if (!v) return std::nullopt;
    return ExactValue::rational(*v);
  }

  std::string_view s_;
  size_t pos_ = 0;
  int sqrt_budget_ = kMaxSqrt;
};

std::optional<ExactValue> parse_value(std::string_view s) {
  return ExprParser(s).parse_all();
}

// Top-level structure of an answer.
struct Structured {
  enum class Kind { kScalar, kBracketed, kSet, kList } kind = Kind::kScalar;
  char open = 0, close = 0;        // kBracketed: '(' or '[' and ')' or ']'
  std::vector<std::string> items;  // normalised items (kScalar: one)
};

// Splits at top-level commas (outside (), [], {}).
std::vector<std::string> split_top(std::string_view s) {
  std::vector<std::string> out;
  int depth = 0;
  size_t start = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '(' || c == '[' || c == '{') ++depth;
    if (c == ')' || c == ']' || c == '}') --depth;
    if (c == ',' && depth == 0) {
      out.emplace_back(s.substr(start, i - start));
      start = i + 1;
    }
  }
  out.emplace_back(s.substr(start));
  return out;
}

// Whether s[0] opens a bracket whose match is the last character.
bool wraps_whole(std::string_view s) {
  int depth = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '(' || c == '[' || c == '{') ++depth;
    if (c == ')' || c == ']' || c == '}') --depth;
    if (depth == 0 && i + 1 < s.size()) return false;
  }
  return depth == 0;
}

Structured structure(const std::string& s) {
  Structured st;
  if (s.size() >= 4 && s.compare(0, 2, "\\{") == 0 && s.compare(s.size() - 2, 2, "\\}") == 0) {
    st.kind = Structured::Kind::kSet;
    st.items = split_top(std::string_view(s).substr(2, s.size() - 4));
    return st;
  }
  if (s.size() >= 2 && (s.front() == '(' || s.front() == '[') &&
      (s.back() == ')' || s.back() == ']')) {
    // Balanced as one group when brackets of either kind are treated alike: "[1,2)".
    if (wraps_whole(s)) {
      auto items = split_top(std::string_view(s).substr(1, s.size() - 2));
      if (items.size() >= 2) {
        st.kind = Structured::Kind::kBracketed;
        st.open = s.front();
        st.close = s.back();
        st.items = std::move(items);
        return st;
      }
    }
  }
  auto items = split_top(s);
  if (items.size() >= 2) {
    st.kind = Structured::Kind::kList;
    st.items = std::move(items);
    return st;
  }
  st.items = {s};
  return st;
}

// Canonical infinity spellings.
std::string canon_item(std::string s) {
  if (s == "+\\infty" || s == "\\infty" || s == "inf" || s == "+inf") return "\\infty";
  if (s == "-inf") return "-\\infty";
  return s;
}

bool items_equal(const std::string& gold, const std::string& pred) {
  std::string g = canon_item(gold), p = canon_item(pred);
  if (g.empty() || p.empty()) return false;
  auto gv = parse_value(g);
  if (gv) {
    auto pv = parse_value(p);
    return pv && *gv == *pv;
  }
  return g == p;  // not arithmetic (a word, a variable expression): exact text
}

// Multiset matching for sets and unordered lists (greedy is exact: equality is an
// equivalence relation).
bool unordered_equal(const std::vector<std::string>& g, const std::vector<std::string>& p) {
  if (g.size() != p.size() || g.size() > 64) return false;
  std::vector<bool> used(p.size(), false);
  for (const std::string& x : g) {
    bool found = false;
    for (size_t j = 0; j < p.size() && !found; ++j) {
      if (!used[j] && items_equal(x, p[j])) used[j] = found = true;
    }
    if (!found) return false;
  }
  return true;
}

bool structured_equal(const std::string& gold, const std::string& pred) {
  Structured g = structure(gold), p = structure(pred);
  using K = Structured::Kind;
  switch (g.kind) {
    case K::kScalar: return p.kind == K::kScalar && items_equal(g.items[0], p.items[0]);
    case K::kBracketed:
      if (p.kind != K::kBracketed || p.open != g.open || p.close != g.close ||
          p.items.size() != g.items.size()) {
        return false;
      }
      for (size_t i = 0; i < g.items.size(); ++i) {
        if (!items_equal(g.items[i], p.items[i])) return false;
      }
      return true;
    case K::kSet:
    case K::kList:
      // Sets and bare lists of solutions compare unordered, with each other.
      if (p.kind != K::kSet && p.kind != K::kList) return false;
      return unordered_equal(g.items, p.items);
  }
  return false;
}

// Index of the first top-level relation ('=' or "\in") in s, with its length.
std::pair<size_t, size_t> find_relation(std::string_view s) {
  int depth = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '(' || c == '[' || c == '{') ++depth;
    if (c == ')' || c == ']' || c == '}') --depth;
    if (depth != 0) continue;
    if (c == '=') return {i, 1};
    if (s.compare(i, 3, "\\in") == 0 && (i + 3 >= s.size() || !is_alpha(s[i + 3]))) {
      return {i, 3};
    }
  }
  return {std::string_view::npos, 0};
}

// A variable name: letters (or one \command such as \theta), optional _sub.
bool is_variable(std::string_view s) {
  if (s.empty() || s.size() > 16) return false;
  size_t i = 0;
  if (s[0] == '\\') {
    ++i;
    while (i < s.size() && is_alpha(s[i])) ++i;
    if (i == 1) return false;
  } else {
    while (i < s.size() && is_alpha(s[i])) ++i;
    if (i == 0 || i > 3) return false;  // x, xy, abc; not a sentence
  }
  if (i < s.size() && s[i] == '_') {
    ++i;
    if (i < s.size() && s[i] == '{') {
      size_t end = match_brace(s, i);
      if (end == std::string_view::npos) return false;
      i = end;
    } else if (i < s.size()) {
      ++i;
    }
  }
  return i == s.size();
}

}  // namespace

bool answers_match(std::string_view gold_raw, std::string_view pred_raw) {
  if (gold_raw.size() > kMaxAnswerChars || pred_raw.size() > kMaxAnswerChars) return false;
  std::string gold = normalize_answer(gold_raw);
  std::string pred = normalize_answer(pred_raw);
  if (gold.empty() || pred.empty()) return false;
  auto [gi, glen] = find_relation(gold);
  auto [pi, plen] = find_relation(pred);
  if (gi == std::string::npos) {
    if (pi != std::string::npos) {
      // Prediction "x = 3" (or "x \in [1,2]") against gold "3": only a variable on the
      // left and exactly one relation, so "3 = 4" or "x = 3 = 4" do not pass.
      std::string lhs = pred.substr(0, pi);
      std::string rhs = pred.substr(pi + plen);
      if (!is_variable(lhs) || find_relation(rhs).first != std::string::npos) return false;
      pred = rhs;
    }
    return structured_equal(gold, pred);
  }
  // Gold is an equation: the prediction needs the same left side and an equal right.
  if (pi == std::string::npos) {
    // Gold "x = 3" and a bare "3" match only when the gold's left side is a variable.
    if (!is_variable(gold.substr(0, gi))) return false;
    return structured_equal(gold.substr(gi + glen), pred);
  }
  if (gold.substr(0, gi) != pred.substr(0, pi)) return false;
  return structured_equal(gold.substr(gi + glen), pred.substr(pi + plen));
}

}  // namespace r1kit::reward
