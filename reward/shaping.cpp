// Shaping rewards: length, repetition, language consistency; see shaping.h.
#include "reward/shaping.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <unordered_set>

namespace r1kit::reward {

Status OverlongOptions::validate() const {
  if (cache_length > max_length) {
    return InvalidArgument("cache_length={} must be <= max_length={}", cache_length, max_length);
  }
  return OkStatus();
}

namespace {

// Token length, or -1 when unknown (text without ids).
int64_t token_length(const Sample& s) {
  if (s.completion_ids.empty() && !s.completion.empty()) return -1;
  return static_cast<int64_t>(s.completion_ids.size());
}

}  // namespace

Scores OverlongReward::score(std::span<const Sample> group) const {
  std::vector<double> out;
  out.reserve(group.size());
  const double lmax = static_cast<double>(o_.max_length);
  const double lc = static_cast<double>(o_.cache_length);
  for (const Sample& s : group) {
    int64_t len = token_length(s);
    if (len < 0) {
      out.push_back(kNoScore);
      continue;
    }
    double l = static_cast<double>(len);
    if (l <= lmax - lc) {
      out.push_back(0.0);
    } else if (l <= lmax) {
      out.push_back((lmax - lc - l) / lc);  // lc > 0 here: l > lmax - lc and l <= lmax
    } else {
      out.push_back(-1.0);
    }
  }
  return out;
}

Scores CosineLengthReward::score(std::span<const Sample> group) const {
  const Scores inner = correctness_->score(group);  // its failures are this reward's too
  const std::vector<double>& correct = inner.values;
  std::vector<double> out;
  out.reserve(group.size());
  for (size_t i = 0; i < group.size(); ++i) {
    int64_t len = token_length(group[i]);
    if (len < 0 || is_no_score(correct[i])) {
      out.push_back(kNoScore);
      continue;
    }
    double progress = std::min(1.0, static_cast<double>(len) / static_cast<double>(o_.max_length));
    bool ok = correct[i] > 0.5;
    double lo = ok ? o_.correct_long : o_.wrong_long;
    double hi = ok ? o_.correct_short : o_.wrong_short;
    out.push_back(lo + 0.5 * (hi - lo) * (1.0 + std::cos(std::numbers::pi * progress)));
  }
  return {std::move(out), inner.failures};
}

Scores KimiLengthReward::score(std::span<const Sample> group) const {
  const Scores inner = correctness_->score(group);  // its failures are this reward's too
  const std::vector<double>& correct = inner.values;
  std::vector<double> out(group.size(), 0.0);
  int64_t lo = INT64_MAX, hi = INT64_MIN;
  for (size_t i = 0; i < group.size(); ++i) {
    int64_t len = token_length(group[i]);
    if (len < 0 || is_no_score(correct[i])) continue;
    lo = std::min(lo, len);
    hi = std::max(hi, len);
  }
  for (size_t i = 0; i < group.size(); ++i) {
    int64_t len = token_length(group[i]);
    if (len < 0 || is_no_score(correct[i])) {
      out[i] = kNoScore;
      continue;
    }
    if (hi == lo) continue;  // all lengths equal: 0
    double lambda = 0.5 - static_cast<double>(len - lo) / static_cast<double>(hi - lo);
    out[i] = correct[i] > 0.5 ? lambda : std::min(0.0, lambda);
  }
  return {std::move(out), inner.failures};
}

// ---------------------------------------------------------------- text helpers

char32_t next_code_point(std::string_view s, size_t* i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = byte(*i);
  int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
  if (len == 0 || *i + static_cast<size_t>(len) > s.size()) {
    ++*i;
    return 0xFFFD;
  }
  char32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
  for (int k = 1; k < len; ++k) {
    unsigned char b = byte(*i + static_cast<size_t>(k));
    if ((b >> 6) != 2) {
      ++*i;
      return 0xFFFD;
    }
    cp = (cp << 6) | (b & 0x3F);
  }
  *i += static_cast<size_t>(len);
  return cp;
}

namespace {

bool is_han(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
         (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0xF900 && c <= 0xFAFF);
}
bool is_kana(char32_t c) {
  return c >= 0x3040 && c <= 0x30FF;
}
// A character that is a word by itself (no spaces between words in these scripts).
bool is_ideographic(char32_t c) {
  return is_han(c) || is_kana(c);
}

bool is_space_cp(char32_t c) {
  return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == 0x3000 || c == 0xA0;
}

enum class Script { kNone, kLatin, kHan, kKana, kCyrillic, kArabic, kDevanagari, kHangul, kOther };

Script script_of(char32_t c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
      (c >= 0xC0 && c <= 0x24F && c != 0xD7 && c != 0xF7)) {
    return Script::kLatin;
  }
  if (c < 0x80) return Script::kNone;  // digits, punctuation
  if (is_han(c)) return Script::kHan;
  if (is_kana(c)) return Script::kKana;
  if (c >= 0x400 && c <= 0x52F) return Script::kCyrillic;
  if (c >= 0x600 && c <= 0x6FF) return Script::kArabic;
  if (c >= 0x900 && c <= 0x97F) return Script::kDevanagari;
  if (c >= 0xAC00 && c <= 0xD7AF) return Script::kHangul;
  if ((c >= 0x2000 && c <= 0x2BFF) || (c >= 0x3000 && c <= 0x303F) ||
      (c >= 0xFF00 && c <= 0xFF20)) {
    return Script::kNone;  // punctuation, symbols, full-width punctuation
  }
  return Script::kOther;
}

bool in_target(Script s, std::string_view target) {
  if (target == "latin") return s == Script::kLatin;
  if (target == "han") return s == Script::kHan;
  if (target == "japanese") return s == Script::kHan || s == Script::kKana;
  if (target == "cyrillic") return s == Script::kCyrillic;
  if (target == "arabic") return s == Script::kArabic;
  if (target == "devanagari") return s == Script::kDevanagari;
  if (target == "hangul") return s == Script::kHangul;
  return false;
}

// Calls f(word) for every word: whitespace-separated runs, with each ideograph alone.
template <class F>
void for_each_word(std::string_view text, F&& f) {
  size_t i = 0, start = 0;
  bool in_word = false;
  while (i < text.size()) {
    size_t at = i;
    char32_t c = next_code_point(text, &i);
    if (is_space_cp(c) || is_ideographic(c)) {
      if (in_word) f(text.substr(start, at - start));
      in_word = false;
      if (is_ideographic(c)) f(text.substr(at, i - at));
      continue;
    }
    if (!in_word) {
      start = at;
      in_word = true;
    }
  }
  if (in_word) f(text.substr(start));
}

}  // namespace

double RepetitionReward::score_one(std::string_view text) const {
  // Words hashed once (lower-cased ASCII), then n-grams hashed from word hashes.
  std::vector<uint64_t> words;
  for_each_word(text, [&](std::string_view w) {
    uint64_t h = 1469598103934665603ULL;  // FNV-1a
    for (char ch : w) {
      unsigned char c = static_cast<unsigned char>(ch);
      if (c >= 'A' && c <= 'Z') c = static_cast<unsigned char>(c - 'A' + 'a');
      h = (h ^ c) * 1099511628211ULL;
    }
    words.push_back(h);
  });
  const size_t n = static_cast<size_t>(o_.ngram_size);
  if (words.size() < n) return 0.0;
  std::unordered_set<uint64_t> unique;
  const size_t total = words.size() - n + 1;
  unique.reserve(total);
  for (size_t i = 0; i < total; ++i) {
    uint64_t h = 0x9E3779B97F4A7C15ULL;
    for (size_t k = 0; k < n; ++k) h = (h ^ words[i + k]) * 0x100000001B3ULL + (h >> 29);
    unique.insert(h);
  }
  double scaling = 1.0 - static_cast<double>(unique.size()) / static_cast<double>(total);
  return scaling * o_.max_penalty;
}

Scores RepetitionReward::score(std::span<const Sample> group) const {
  std::vector<double> out;
  out.reserve(group.size());
  for (const Sample& s : group) out.push_back(score_one(s.completion));
  return out;
}

double LanguageConsistencyReward::score_one(std::string_view c) const {
  std::string_view cot = c;
  size_t open = o_.prefilled_think ? 0 : c.find("<think>");
  size_t close = c.find("</think>");
  if (open != std::string_view::npos && close != std::string_view::npos && close >= open) {
    size_t from = o_.prefilled_think ? 0 : open + 7;
    if (close >= from) cot = c.substr(from, close - from);
  }
  size_t total = 0, target = 0;
  for_each_word(cot, [&](std::string_view w) {
    // The word's script: that of its first letter; words without letters are skipped,
    // and a word mixing the target with another script does not count as target.
    Script first = Script::kNone;
    bool mixed = false;
    size_t i = 0;
    while (i < w.size()) {
      Script s = script_of(next_code_point(w, &i));
      if (s == Script::kNone) continue;
      if (first == Script::kNone) {
        first = s;
      } else if (s != first && !(in_target(s, o_.script) && in_target(first, o_.script))) {
        mixed = true;
      }
    }
    if (first == Script::kNone) return;
    ++total;
    if (!mixed && in_target(first, o_.script)) ++target;
  });
  return total == 0 ? 0.0 : static_cast<double>(target) / static_cast<double>(total);
}

Scores LanguageConsistencyReward::score(std::span<const Sample> group) const {
  std::vector<double> out;
  out.reserve(group.size());
  for (const Sample& s : group) out.push_back(score_one(s.completion));
  return out;
}

}  // namespace r1kit::reward
