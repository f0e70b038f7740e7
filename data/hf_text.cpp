// UTF-8 helpers, character classes and split patterns (see hf_text.h).
#include "data/hf_text.h"

#include <oniguruma.h>
#include <utf8proc.h>

#include <algorithm>
#include <cctype>
#include <mutex>

namespace r1kit::data::hf {
namespace {

constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";  // U+FFFD

// The accepted range of the second byte after `lead` (Unicode ch. 3.9, table 3-7), or
// {0, 0} when `lead` cannot start a character.
std::pair<unsigned char, unsigned char> second_byte_range(unsigned char lead) {
  if (lead >= 0xC2 && lead <= 0xDF) return {0x80, 0xBF};
  if (lead == 0xE0) return {0xA0, 0xBF};
  if (lead == 0xED) return {0x80, 0x9F};
  if (lead >= 0xE1 && lead <= 0xEF) return {0x80, 0xBF};
  if (lead == 0xF0) return {0x90, 0xBF};
  if (lead >= 0xF1 && lead <= 0xF3) return {0x80, 0xBF};
  if (lead == 0xF4) return {0x80, 0x8F};
  return {0, 0};
}

// Length of the well-formed character at s[pos], or 0 with `*consumed` set to the length
// of the maximal ill-formed subpart to replace.
size_t valid_char_at(std::string_view s, size_t pos, size_t* consumed) {
  const auto lead = static_cast<unsigned char>(s[pos]);
  if (lead < 0x80) return 1;
  const auto [lo, hi] = second_byte_range(lead);
  *consumed = 1;
  if (lo == 0) return 0;
  const size_t need = utf8_len(lead);
  for (size_t k = 1; k < need; ++k) {
    if (pos + k >= s.size()) return 0;
    const auto b = static_cast<unsigned char>(s[pos + k]);
    const unsigned char min = k == 1 ? lo : 0x80, max = k == 1 ? hi : 0xBF;
    if (b < min || b > max) return 0;
    *consumed = k + 1;
  }
  return need;
}

std::once_flag onig_init_once;

void init_onig() {
  std::call_once(onig_init_once, [] {
    OnigEncoding encodings[1] = {ONIG_ENCODING_UTF8};
    onig_initialize(encodings, 1);
  });
}

std::vector<Match> matches_from_spans(std::string_view text,
                                      const std::vector<std::pair<size_t, size_t>>& spans) {
  std::vector<Match> out;
  if (text.empty()) return {{0, 0, false}};
  size_t prev = 0;
  for (const auto& [b, e] : spans) {
    if (prev != b) out.push_back({prev, b, false});
    out.push_back({b, e, true});
    prev = e;
  }
  if (prev != text.size()) out.push_back({prev, text.size(), false});
  return out;
}

}  // namespace

char32_t utf8_decode(std::string_view s, size_t pos, size_t* len) {
  const auto b0 = static_cast<unsigned char>(s[pos]);
  const size_t n = std::min(utf8_len(b0), s.size() - pos);
  *len = n;
  if (n == 1) return b0;
  char32_t cp = b0 & (n == 2 ? 0x1F : n == 3 ? 0x0F : 0x07);
  for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[pos + k]) & 0x3F);
  return cp;
}

void utf8_append(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

bool utf8_valid(std::string_view s) {
  size_t pos = 0, consumed = 0;
  while (pos < s.size()) {
    const size_t n = valid_char_at(s, pos, &consumed);
    if (n == 0) return false;
    pos += n;
  }
  return true;
}

std::string utf8_replace_invalid(std::string_view s) {
  if (utf8_valid(s)) return std::string(s);
  std::string out;
  out.reserve(s.size() + 8);
  size_t pos = 0;
  while (pos < s.size()) {
    size_t consumed = 0;
    const size_t n = valid_char_at(s, pos, &consumed);
    if (n > 0) {
      out.append(s.substr(pos, n));
      pos += n;
    } else {
      out += kReplacementChar;
      pos += consumed;
    }
  }
  return out;
}

bool is_rust_whitespace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

bool is_rust_numeric(char32_t c) {
  if (c < 0x80) return c >= '0' && c <= '9';
  const auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return cat == UTF8PROC_CATEGORY_ND || cat == UTF8PROC_CATEGORY_NL || cat == UTF8PROC_CATEGORY_NO;
}

bool is_rust_word(char32_t c) {
  if (c < 0x80) return std::isalnum(static_cast<int>(c)) || c == '_';
  if (c == 0x200C || c == 0x200D) return true;
  const auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_ME) ||
         cat == UTF8PROC_CATEGORY_ND || cat == UTF8PROC_CATEGORY_NL || cat == UTF8PROC_CATEGORY_PC;
}

StatusOr<std::shared_ptr<const Regex>> Regex::compile(std::string_view pattern) {
  init_onig();
  OnigRegex reg = nullptr;
  OnigErrorInfo info;
  const auto* begin = reinterpret_cast<const OnigUChar*>(pattern.data());
  const int r = onig_new(&reg, begin, begin + pattern.size(), ONIG_OPTION_NONE, ONIG_ENCODING_UTF8,
                         ONIG_SYNTAX_DEFAULT, &info);
  if (r != ONIG_NORMAL) {
    OnigUChar message[ONIG_MAX_ERROR_MESSAGE_LEN];
    onig_error_code_to_str(message, r, &info);
    return InvalidArgument("regex '{}' does not compile (Oniguruma: {})", pattern,
                           reinterpret_cast<const char*>(message));
  }
  std::shared_ptr<Regex> out(new Regex());
  out->regex_ = reg;
  return std::shared_ptr<const Regex>(std::move(out));
}

Regex::~Regex() {
  if (regex_ != nullptr) onig_free(static_cast<OnigRegex>(regex_));
}

void Regex::for_each_match(std::string_view text,
                           const std::function<void(size_t, size_t)>& fn) const {
  auto* reg = static_cast<OnigRegex>(regex_);
  OnigRegion* region = onig_region_new();
  const auto* str = reinterpret_cast<const OnigUChar*>(text.data());
  const OnigUChar* end = str + text.size();
  size_t last_end = 0;
  size_t last_match_end = std::string_view::npos;
  while (last_end <= text.size()) {
    const int r = onig_search(reg, str, end, str + last_end, end, region, ONIG_OPTION_NONE);
    if (r < 0) break;  // ONIG_MISMATCH (or an error: no more matches either way)
    const auto s = static_cast<size_t>(region->beg[0]);
    const auto e = static_cast<size_t>(region->end[0]);
    if (s == e && last_match_end == e) {
      last_end += last_end < text.size() ? utf8_len(static_cast<unsigned char>(text[last_end])) : 1;
      continue;
    }
    last_end = e;
    last_match_end = e;
    fn(s, e);
  }
  onig_region_free(region, 1);
}

std::vector<Match> Regex::find_matches(std::string_view text) const {
  std::vector<std::pair<size_t, size_t>> spans;
  if (!text.empty()) for_each_match(text, [&](size_t b, size_t e) { spans.emplace_back(b, e); });
  return matches_from_spans(text, spans);
}

std::vector<Match> LiteralPattern::find_matches(std::string_view text) const {
  if (literal_.empty()) return {{0, text.size(), false}};
  std::vector<std::pair<size_t, size_t>> spans;
  for (size_t at = text.find(literal_); at != std::string_view::npos;
       at = text.find(literal_, at + literal_.size())) {
    spans.emplace_back(at, at + literal_.size());
  }
  return matches_from_spans(text, spans);
}

std::vector<Match> CharPattern::find_matches(std::string_view text) const {
  if (text.empty()) return {{0, 0, false}};
  std::vector<Match> out;
  size_t last = 0;
  for (size_t pos = 0, len = 0; pos < text.size(); pos += len) {
    const char32_t c = utf8_decode(text, pos, &len);
    if (!pred_(c)) continue;
    if (last < pos) out.push_back({last, pos, false});
    out.push_back({pos, pos + len, true});
    last = pos + len;
  }
  if (last < text.size()) out.push_back({last, text.size(), false});
  return out;
}

std::vector<Match> invert_matches(std::vector<Match> matches) {
  for (Match& m : matches) m.is_match = !m.is_match;
  return matches;
}

std::string replace_all(const Pattern& pattern, std::string_view text, std::string_view content) {
  std::string out;
  out.reserve(text.size());
  for (const Match& m : pattern.find_matches(text)) {
    if (m.is_match) {
      out += content;
    } else {
      out.append(text.substr(m.begin, m.end - m.begin));
    }
  }
  return out;
}

}  // namespace r1kit::data::hf
