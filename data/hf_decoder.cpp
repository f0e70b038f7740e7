// Decoders and post-processors (see hf_decoder.h).
#include "data/hf_decoder.h"

#include "data/hf_normalizer.h"
#include "data/hf_pretokenizer.h"
#include "data/hf_text.h"

namespace r1kit::data::hf {
namespace {

using nlohmann::json;
using DecoderPtr = std::unique_ptr<Decoder>;
using Tokens = std::vector<std::string>;

// Appends the bytes token `t` stands for in the byte-level alphabet; false (nothing
// appended) when one of its characters is not in the alphabet.
bool byte_level_bytes(const std::string& t, std::string& out) {
  const size_t mark = out.size();
  for (size_t pos = 0, len = 0; pos < t.size(); pos += len) {
    const int b = char_to_byte(utf8_decode(t, pos, &len));
    if (b < 0) {
      out.resize(mark);
      return false;
    }
    out += static_cast<char>(b);
  }
  return true;
}

class ByteLevelDecoder final : public Decoder {
 public:
  Tokens decode_chain(Tokens tokens) const override {
    std::string bytes;
    for (const std::string& t : tokens) {
      if (!byte_level_bytes(t, bytes)) bytes += t;
    }
    return {utf8_replace_invalid(bytes)};
  }
};

// The "<0xXX>" byte of a token, or -1.
int fallback_byte(const std::string& t) {
  if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
  auto hex = [](char c) {
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                  : -1;
  };
  const int hi = hex(t[3]), lo = hex(t[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

class ByteFallbackDecoder final : public Decoder {
 public:
  Tokens decode_chain(Tokens tokens) const override {
    Tokens out;
    std::string bytes;
    auto flush = [&] {
      if (bytes.empty()) return;
      if (utf8_valid(bytes))
        out.push_back(bytes);
      else
        out.insert(out.end(), bytes.size(), "\xEF\xBF\xBD");
      bytes.clear();
    };
    for (std::string& t : tokens) {
      const int b = fallback_byte(t);
      if (b >= 0) {
        bytes += static_cast<char>(b);
        continue;
      }
      flush();
      out.push_back(std::move(t));
    }
    flush();
    return out;
  }
};

class MetaspaceDecoder final : public Decoder {
 public:
  MetaspaceDecoder(char32_t replacement, bool strip_first)
      : replacement_(replacement), strip_first_(strip_first) {}
  Tokens decode_chain(Tokens tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::string out;
      for (size_t pos = 0, len = 0; pos < tokens[i].size(); pos += len) {
        const char32_t c = utf8_decode(tokens[i], pos, &len);
        if (c != replacement_)
          out.append(tokens[i], pos, len);
        else if (i > 0 || !strip_first_)
          out += ' ';
      }
      tokens[i] = std::move(out);
    }
    return tokens;
  }

 private:
  char32_t replacement_;
  bool strip_first_;
};

class FuseDecoder final : public Decoder {
 public:
  Tokens decode_chain(Tokens tokens) const override {
    std::string all;
    for (const std::string& t : tokens) all += t;
    return {all};
  }
};

class StripDecoder final : public Decoder {
 public:
  StripDecoder(char32_t content, int64_t start, int64_t stop)
      : content_(content), start_(start), stop_(stop) {}
  Tokens decode_chain(Tokens tokens) const override {
    for (std::string& t : tokens) {
      std::vector<std::pair<size_t, char32_t>> chars;  // (byte offset, character)
      for (size_t pos = 0, len = 0; pos < t.size(); pos += len)
        chars.emplace_back(pos, utf8_decode(t, pos, &len));
      size_t begin = 0, end = chars.size();
      while (begin < end && static_cast<int64_t>(begin) < start_ && chars[begin].second == content_)
        ++begin;
      while (end > begin && static_cast<int64_t>(chars.size() - end) < stop_ &&
             chars[end - 1].second == content_)
        --end;
      const size_t b = begin < chars.size() ? chars[begin].first : t.size();
      const size_t e = end < chars.size() ? chars[end].first : t.size();
      t = t.substr(b, e - b);
    }
    return tokens;
  }

 private:
  char32_t content_;
  int64_t start_;
  int64_t stop_;
};

class ReplaceDecoder final : public Decoder {
 public:
  ReplaceDecoder(std::shared_ptr<const Pattern> pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  Tokens decode_chain(Tokens tokens) const override {
    for (std::string& t : tokens) t = replace_all(*pattern_, t, content_);
    return tokens;
  }

 private:
  std::shared_ptr<const Pattern> pattern_;
  std::string content_;
};

class SequenceDecoder final : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<DecoderPtr> parts) : parts_(std::move(parts)) {}
  Tokens decode_chain(Tokens tokens) const override {
    for (const auto& p : parts_) tokens = p->decode_chain(std::move(tokens));
    return tokens;
  }

 private:
  std::vector<DecoderPtr> parts_;
};

StatusOr<DecoderPtr> parse_metaspace_decoder(const json& j, const std::string& where) {
  ASSIGN_OR_RETURN(const char32_t rep, json_char(j, "replacement", where));
  std::string scheme = "always";
  if (j.contains("prepend_scheme")) {
    ASSIGN_OR_RETURN(scheme, json_string(j, "prepend_scheme", where));
  }
  if (scheme != "always" && scheme != "first" && scheme != "never")
    return InvalidArgument("{}: unknown prepend_scheme '{}' (always, first, never)", where, scheme);
  ASSIGN_OR_RETURN(const bool prefix, json_bool(j, "add_prefix_space", where, true));
  if (!prefix) scheme = "never";
  return DecoderPtr(new MetaspaceDecoder(rep, scheme != "never"));
}

StatusOr<DecoderPtr> parse_sequence_decoder(const json& j, const std::string& where) {
  if (!j.contains("decoders") || !j["decoders"].is_array())
    return InvalidArgument("{}: Sequence needs an array 'decoders'", where);
  std::vector<DecoderPtr> parts;
  for (size_t i = 0; i < j["decoders"].size(); ++i) {
    ASSIGN_OR_RETURN(auto part,
                     parse_decoder(j["decoders"][i], fmt::format("{}.decoders[{}]", where, i)));
    if (part != nullptr) parts.push_back(std::move(part));
  }
  return DecoderPtr(new SequenceDecoder(std::move(parts)));
}

// The ids of one template piece ({"SpecialToken": {"id": name}} or {"Sequence": {"id": "A"}});
// sets *is_sequence for the latter.
StatusOr<std::vector<int32_t>> template_piece(const json& piece, const json& specials,
                                              const std::string& where, bool* is_sequence) {
  *is_sequence = false;
  if (piece.is_object() && piece.contains("Sequence")) {
    const json& s = piece["Sequence"];
    if (!s.is_object() || s.value("id", "") != "A")
      return InvalidArgument("{}: the single template may only hold sequence A, got {}", where,
                             piece.dump());
    *is_sequence = true;
    return std::vector<int32_t>{};
  }
  if (!piece.is_object() || !piece.contains("SpecialToken") || !piece["SpecialToken"].is_object())
    return InvalidArgument("{}: template piece must be SpecialToken or Sequence, got {}", where,
                           piece.dump());
  ASSIGN_OR_RETURN(const std::string name, json_string(piece["SpecialToken"], "id", where));
  if (!specials.is_object() || !specials.contains(name) || !specials[name].contains("ids") ||
      !specials[name]["ids"].is_array())
    return InvalidArgument("{}: special token '{}' is not in special_tokens (or has no ids)", where,
                           name);
  std::vector<int32_t> ids;
  for (const json& id : specials[name]["ids"]) {
    if (!id.is_number_integer())
      return InvalidArgument("{}: '{}' has a non-integer id", where, name);
    ids.push_back(id.get<int32_t>());
  }
  return ids;
}

StatusOr<SpecialWrap> parse_template(const json& j, const std::string& where) {
  if (!j.contains("single") || !j["single"].is_array())
    return InvalidArgument("{}: TemplateProcessing needs a 'single' template as a list", where);
  const json specials = j.contains("special_tokens") ? j["special_tokens"] : json::object();
  SpecialWrap wrap;
  bool seen_sequence = false;
  for (size_t i = 0; i < j["single"].size(); ++i) {
    bool is_seq = false;
    ASSIGN_OR_RETURN(auto ids, template_piece(j["single"][i], specials,
                                              fmt::format("{}.single[{}]", where, i), &is_seq));
    if (is_seq && seen_sequence) return InvalidArgument("{}.single: sequence A twice", where);
    seen_sequence = seen_sequence || is_seq;
    auto& side = seen_sequence ? wrap.suffix : wrap.prefix;
    side.insert(side.end(), ids.begin(), ids.end());
  }
  if (!seen_sequence) return InvalidArgument("{}.single: no sequence A", where);
  return wrap;
}

}  // namespace

StatusOr<std::unique_ptr<Decoder>> parse_decoder(const json& j, const std::string& where) {
  if (j.is_null()) return DecoderPtr();
  ASSIGN_OR_RETURN(const std::string type, json_type(j, where));
  if (type == "ByteLevel") return DecoderPtr(new ByteLevelDecoder());
  if (type == "ByteFallback") return DecoderPtr(new ByteFallbackDecoder());
  if (type == "Fuse") return DecoderPtr(new FuseDecoder());
  if (type == "Metaspace") return parse_metaspace_decoder(j, where);
  if (type == "Sequence") return parse_sequence_decoder(j, where);
  if (type == "Strip") {
    ASSIGN_OR_RETURN(const char32_t content, json_char(j, "content", where));
    ASSIGN_OR_RETURN(const int64_t start, json_int(j, "start", where));
    ASSIGN_OR_RETURN(const int64_t stop, json_int(j, "stop", where));
    return DecoderPtr(new StripDecoder(content, start, stop));
  }
  if (type == "Replace") {
    if (!j.contains("pattern")) return InvalidArgument("{}: Replace needs a 'pattern'", where);
    ASSIGN_OR_RETURN(auto pattern, parse_pattern(j["pattern"], where + ".pattern"));
    ASSIGN_OR_RETURN(std::string content, json_string(j, "content", where));
    return DecoderPtr(new ReplaceDecoder(std::move(pattern), std::move(content)));
  }
  return InvalidArgument(
      "{}: unsupported decoder type '{}' (supported: ByteLevel, ByteFallback, Metaspace, Fuse, "
      "Strip, Replace, Sequence; docs/tokenizers.md)",
      where, type);
}

StatusOr<SpecialWrap> parse_post_processor(const json& j, const std::string& where) {
  if (j.is_null()) return SpecialWrap{};
  ASSIGN_OR_RETURN(const std::string type, json_type(j, where));
  if (type == "ByteLevel") return SpecialWrap{};
  if (type == "TemplateProcessing") return parse_template(j, where);
  if (type == "Sequence") {
    if (!j.contains("processors") || !j["processors"].is_array())
      return InvalidArgument("{}: Sequence needs an array 'processors'", where);
    SpecialWrap all;
    for (size_t i = 0; i < j["processors"].size(); ++i) {
      ASSIGN_OR_RETURN(
          SpecialWrap w,
          parse_post_processor(j["processors"][i], fmt::format("{}.processors[{}]", where, i)));
      all.prefix.insert(all.prefix.begin(), w.prefix.begin(), w.prefix.end());
      all.suffix.insert(all.suffix.end(), w.suffix.begin(), w.suffix.end());
    }
    return all;
  }
  return InvalidArgument(
      "{}: unsupported post_processor type '{}' (supported: TemplateProcessing, ByteLevel, "
      "Sequence; docs/tokenizers.md)",
      where, type);
}

}  // namespace r1kit::data::hf
