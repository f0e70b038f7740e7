// Pre-tokenizers (see hf_pretokenizer.h).
#include "data/hf_pretokenizer.h"

#include <array>

#include "data/hf_normalizer.h"

namespace r1kit::data::hf {
namespace {

using nlohmann::json;

constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// The pieces to keep, as byte ranges of the input, after applying `behavior`.
std::vector<Match> apply_behavior(const std::vector<Match>& matches, SplitBehavior behavior) {
  std::vector<Match> acc;
  bool previous = false;
  switch (behavior) {
    case SplitBehavior::kIsolated: return matches;
    case SplitBehavior::kRemoved:
      for (const Match& m : matches)
        if (!m.is_match) acc.push_back(m);
      return acc;
    case SplitBehavior::kContiguous:
      for (const Match& m : matches) {
        if (m.is_match == previous && !acc.empty())
          acc.back().end = m.end;
        else
          acc.push_back(m);
        previous = m.is_match;
      }
      return acc;
    case SplitBehavior::kMergedWithPrevious:
      for (const Match& m : matches) {
        if (m.is_match && !previous && !acc.empty())
          acc.back().end = m.end;
        else
          acc.push_back(m);
        previous = m.is_match;
      }
      return acc;
    case SplitBehavior::kMergedWithNext:
      for (auto it = matches.rbegin(); it != matches.rend(); ++it) {
        if (it->is_match && !previous && !acc.empty())
          acc.back().begin = it->begin;
        else
          acc.push_back(*it);
        previous = it->is_match;
      }
      return {acc.rbegin(), acc.rend()};
  }
  return acc;
}

// Runs `fn` on every piece and puts the non-empty results in its place.
template <typename Fn>
void split_each(std::vector<Piece>& pieces, Fn&& fn) {
  std::vector<Piece> out;
  out.reserve(pieces.size() * 2);
  for (const Piece& p : pieces) {
    for (Piece& q : fn(p)) {
      if (!q.text.empty()) out.push_back(std::move(q));
    }
  }
  pieces = std::move(out);
}

class SplitPreTokenizer final : public PreTokenizer {
 public:
  SplitPreTokenizer(std::shared_ptr<const Pattern> pattern, SplitBehavior behavior, bool invert)
      : pattern_(std::move(pattern)), behavior_(behavior), invert_(invert) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    split_each(pieces, [&](const Piece& p) {
      std::vector<Match> m = pattern_->find_matches(p.text);
      return split_piece(p, invert_ ? invert_matches(std::move(m)) : m, behavior_);
    });
  }

 private:
  std::shared_ptr<const Pattern> pattern_;
  SplitBehavior behavior_;
  bool invert_;
};

std::array<std::string, 256> make_byte_chars() {
  std::array<std::string, 256> out;
  int extra = 0;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    utf8_append(out[b], static_cast<char32_t>(printable ? b : 256 + extra++));
  }
  return out;
}

class ByteLevelPreTokenizer final : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, std::shared_ptr<const Regex> regex)
      : add_prefix_space_(add_prefix_space), regex_(std::move(regex)) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    split_each(pieces, [&](const Piece& p) {
      Piece q = p;
      if (add_prefix_space_ && !q.text.empty() && q.text[0] != ' ') q.text.insert(0, " ");
      if (regex_ == nullptr) return std::vector<Piece>{std::move(q)};
      return split_piece(q, regex_->find_matches(q.text), SplitBehavior::kIsolated);
    });
    for (Piece& p : pieces) {
      std::string mapped;
      mapped.reserve(p.text.size() * 2);
      for (const char c : p.text) mapped += byte_to_char(static_cast<unsigned char>(c));
      p.text = std::move(mapped);
    }
  }

 private:
  bool add_prefix_space_;
  std::shared_ptr<const Regex> regex_;  // null without use_regex
};

class PatternPreTokenizer final : public PreTokenizer {
 public:
  PatternPreTokenizer(std::shared_ptr<const Pattern> pattern, SplitBehavior behavior, bool invert)
      : inner_(std::move(pattern), behavior, invert) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override { inner_.pre_tokenize(pieces); }

 private:
  SplitPreTokenizer inner_;
};

enum class PrependScheme { kAlways, kFirst, kNever };

class MetaspacePreTokenizer final : public PreTokenizer {
 public:
  MetaspacePreTokenizer(char32_t replacement, PrependScheme scheme, bool split)
      : replacement_(replacement), scheme_(scheme), split_(split) {
    utf8_append(rep_, replacement);
  }
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    const CharPattern at_rep([r = replacement_](char32_t c) { return c == r; });
    const LiteralPattern space(" ");
    split_each(pieces, [&](const Piece& p) {
      Piece q{replace_all(space, p.text, rep_), p.at_start};
      const bool starts = q.text.compare(0, rep_.size(), rep_) == 0;
      const bool prepend =
          scheme_ == PrependScheme::kAlways || (scheme_ == PrependScheme::kFirst && q.at_start);
      if (prepend && !starts && !q.text.empty()) q.text.insert(0, rep_);
      if (!split_) return std::vector<Piece>{std::move(q)};
      return split_piece(q, at_rep.find_matches(q.text), SplitBehavior::kMergedWithNext);
    });
  }

 private:
  char32_t replacement_;
  std::string rep_;
  PrependScheme scheme_;
  bool split_;
};

class SequencePreTokenizer final : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> parts)
      : parts_(std::move(parts)) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    for (const auto& p : parts_) p->pre_tokenize(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

StatusOr<SplitBehavior> parse_behavior(const json& j, const std::string& where) {
  ASSIGN_OR_RETURN(const std::string b, json_string(j, "behavior", where));
  if (b == "Removed") return SplitBehavior::kRemoved;
  if (b == "Isolated") return SplitBehavior::kIsolated;
  if (b == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (b == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (b == "Contiguous") return SplitBehavior::kContiguous;
  return InvalidArgument(
      "{}: unknown Split behavior '{}' (Removed, Isolated, MergedWithPrevious, MergedWithNext, "
      "Contiguous)",
      where, b);
}

using PreTokenizerPtr = std::unique_ptr<PreTokenizer>;

StatusOr<PreTokenizerPtr> parse_split(const json& j, const std::string& where) {
  if (!j.contains("pattern")) return InvalidArgument("{}: Split needs a 'pattern'", where);
  ASSIGN_OR_RETURN(auto pattern, parse_pattern(j["pattern"], where + ".pattern"));
  ASSIGN_OR_RETURN(const SplitBehavior behavior, parse_behavior(j, where));
  ASSIGN_OR_RETURN(const bool invert, json_bool(j, "invert", where, false));
  return PreTokenizerPtr(new SplitPreTokenizer(std::move(pattern), behavior, invert));
}

StatusOr<PreTokenizerPtr> parse_byte_level(const json& j, const std::string& where) {
  ASSIGN_OR_RETURN(const bool prefix, json_bool(j, "add_prefix_space", where, true));
  ASSIGN_OR_RETURN(const bool use_regex, json_bool(j, "use_regex", where, true));
  RETURN_IF_ERROR(json_bool(j, "trim_offsets", where, true).status());
  std::shared_ptr<const Regex> regex;
  if (use_regex) {
    ASSIGN_OR_RETURN(regex, Regex::compile(kGpt2Pattern));
  }
  return PreTokenizerPtr(new ByteLevelPreTokenizer(prefix, std::move(regex)));
}

StatusOr<PreTokenizerPtr> parse_metaspace(const json& j, const std::string& where) {
  ASSIGN_OR_RETURN(const char32_t rep, json_char(j, "replacement", where));
  PrependScheme scheme = PrependScheme::kAlways;
  if (j.contains("prepend_scheme")) {
    ASSIGN_OR_RETURN(const std::string s, json_string(j, "prepend_scheme", where));
    if (s == "first")
      scheme = PrependScheme::kFirst;
    else if (s == "never")
      scheme = PrependScheme::kNever;
    else if (s != "always")
      return InvalidArgument("{}: unknown prepend_scheme '{}' (always, first, never)", where, s);
  }
  ASSIGN_OR_RETURN(const bool prefix, json_bool(j, "add_prefix_space", where, true));
  if (!prefix) {
    if (scheme != PrependScheme::kNever)
      return InvalidArgument("{}: add_prefix_space=false contradicts prepend_scheme", where);
    scheme = PrependScheme::kNever;
  }
  ASSIGN_OR_RETURN(const bool split, json_bool(j, "split", where, true));
  return PreTokenizerPtr(new MetaspacePreTokenizer(rep, scheme, split));
}

StatusOr<PreTokenizerPtr> parse_pre_tokenizer_sequence(const json& j, const std::string& where) {
  if (!j.contains("pretokenizers") || !j["pretokenizers"].is_array())
    return InvalidArgument("{}: Sequence needs an array 'pretokenizers'", where);
  std::vector<PreTokenizerPtr> parts;
  for (size_t i = 0; i < j["pretokenizers"].size(); ++i) {
    const std::string at = fmt::format("{}.pretokenizers[{}]", where, i);
    ASSIGN_OR_RETURN(auto part, parse_pre_tokenizer(j["pretokenizers"][i], at));
    if (part != nullptr) parts.push_back(std::move(part));
  }
  return PreTokenizerPtr(new SequencePreTokenizer(std::move(parts)));
}

}  // namespace

std::vector<Piece> split_piece(const Piece& piece, const std::vector<Match>& matches,
                               SplitBehavior behavior) {
  std::vector<Piece> out;
  for (const Match& m : apply_behavior(matches, behavior)) {
    if (m.end <= m.begin) continue;
    out.push_back({piece.text.substr(m.begin, m.end - m.begin), piece.at_start && m.begin == 0});
  }
  return out;
}

const std::string& byte_to_char(unsigned char b) {
  static const std::array<std::string, 256> table = make_byte_chars();
  return table[b];
}

int char_to_byte(char32_t c) {
  static const std::array<int, 512> table = [] {
    std::array<int, 512> t;
    t.fill(-1);
    for (int b = 0; b < 256; ++b) {
      size_t len = 0;
      t[utf8_decode(byte_to_char(static_cast<unsigned char>(b)), 0, &len)] = b;
    }
    return t;
  }();
  return c < 512 ? table[c] : -1;
}

StatusOr<std::unique_ptr<PreTokenizer>> parse_pre_tokenizer(const json& j,
                                                            const std::string& where) {
  if (j.is_null()) return PreTokenizerPtr();
  ASSIGN_OR_RETURN(const std::string type, json_type(j, where));
  if (type == "Split") return parse_split(j, where);
  if (type == "ByteLevel") return parse_byte_level(j, where);
  if (type == "Metaspace") return parse_metaspace(j, where);
  if (type == "Sequence") return parse_pre_tokenizer_sequence(j, where);
  if (type == "Digits") {
    ASSIGN_OR_RETURN(const bool each, json_bool(j, "individual_digits", where, false));
    return PreTokenizerPtr(new PatternPreTokenizer(
        std::make_shared<CharPattern>(is_rust_numeric),
        each ? SplitBehavior::kIsolated : SplitBehavior::kContiguous, false));
  }
  if (type == "Whitespace") {
    ASSIGN_OR_RETURN(auto re, Regex::compile(R"(\w+|[^\w\s]+)"));
    return PreTokenizerPtr(new PatternPreTokenizer(re, SplitBehavior::kRemoved, true));
  }
  if (type == "WhitespaceSplit")
    return PreTokenizerPtr(new PatternPreTokenizer(
        std::make_shared<CharPattern>(is_rust_whitespace), SplitBehavior::kRemoved, false));
  return InvalidArgument(
      "{}: unsupported pre_tokenizer type '{}' (supported: Split, ByteLevel, Digits, Metaspace, "
      "Whitespace, WhitespaceSplit, Sequence; docs/tokenizers.md)",
      where, type);
}

}  // namespace r1kit::data::hf
