// Normalizers and the JSON field helpers (see hf_normalizer.h).
#include "data/hf_normalizer.h"

#include <utf8proc.h>

#include <cstdlib>
#include <vector>

#include "data/hf_text.h"

namespace r1kit::data::hf {
namespace {

using nlohmann::json;

bool all_ascii(std::string_view s) {
  for (const char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

// NFC/NFD/NFKC/NFKD with utf8proc. ASCII text is in every form already.
class UnicodeNormalizer final : public Normalizer {
 public:
  explicit UnicodeNormalizer(int options) : options_(options) {}
  void normalize(std::string& text) const override {
    if (all_ascii(text)) return;
    utf8proc_uint8_t* out = nullptr;
    const auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                                static_cast<utf8proc_ssize_t>(text.size()), &out,
                                static_cast<utf8proc_option_t>(options_));
    if (n >= 0) text.assign(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
    std::free(out);  // on error (not reached for valid UTF-8) the text stays as it was
  }

 private:
  int options_;
};

class LowercaseNormalizer final : public Normalizer {
 public:
  void normalize(std::string& text) const override {
    std::string out;
    out.reserve(text.size());
    for (size_t pos = 0, len = 0; pos < text.size(); pos += len) {
      const char32_t c = utf8_decode(text, pos, &len);
      if (c == 0x130) {  // SpecialCasing.txt: İ -> i + U+0307 COMBINING DOT ABOVE
        out += "i\xCC\x87";
        continue;
      }
      utf8_append(out, static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))));
    }
    text = std::move(out);
  }
};

class ReplaceNormalizer final : public Normalizer {
 public:
  ReplaceNormalizer(std::shared_ptr<const Pattern> pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void normalize(std::string& text) const override {
    text = replace_all(*pattern_, text, content_);
  }

 private:
  std::shared_ptr<const Pattern> pattern_;
  std::string content_;
};

class PrependNormalizer final : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prepend) : prepend_(std::move(prepend)) {}
  void normalize(std::string& text) const override {
    if (!text.empty()) text.insert(0, prepend_);
  }

 private:
  std::string prepend_;
};

class SequenceNormalizer final : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> parts)
      : parts_(std::move(parts)) {}
  void normalize(std::string& text) const override {
    for (const auto& p : parts_) p->normalize(text);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> parts_;
};

StatusOr<std::unique_ptr<Normalizer>> parse_normalizer_sequence(const json& j,
                                                                const std::string& where) {
  if (!j.contains("normalizers") || !j["normalizers"].is_array())
    return InvalidArgument("{}: Sequence needs an array 'normalizers'", where);
  std::vector<std::unique_ptr<Normalizer>> parts;
  for (size_t i = 0; i < j["normalizers"].size(); ++i) {
    const std::string at = fmt::format("{}.normalizers[{}]", where, i);
    ASSIGN_OR_RETURN(auto part, parse_normalizer(j["normalizers"][i], at));
    if (part != nullptr) parts.push_back(std::move(part));
  }
  return std::unique_ptr<Normalizer>(std::make_unique<SequenceNormalizer>(std::move(parts)));
}

}  // namespace

StatusOr<std::string> json_string(const json& j, const char* key, const std::string& where) {
  if (!j.contains(key) || !j[key].is_string())
    return InvalidArgument("{}: field '{}' must be a string", where, key);
  return j[key].get<std::string>();
}

StatusOr<bool> json_bool(const json& j, const char* key, const std::string& where, bool fallback) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_boolean()) return InvalidArgument("{}: field '{}' must be a boolean", where, key);
  return j[key].get<bool>();
}

StatusOr<int64_t> json_int(const json& j, const char* key, const std::string& where) {
  if (!j.contains(key) || !j[key].is_number_integer())
    return InvalidArgument("{}: field '{}' must be an integer", where, key);
  return j[key].get<int64_t>();
}

StatusOr<std::string> json_type(const json& j, const std::string& where) {
  if (!j.is_object()) return InvalidArgument("{}: must be an object or null", where);
  return json_string(j, "type", where);
}

StatusOr<char32_t> json_char(const json& j, const char* key, const std::string& where) {
  ASSIGN_OR_RETURN(std::string s, json_string(j, key, where));
  size_t len = 0;
  if (s.empty() || !utf8_valid(s) || (utf8_decode(s, 0, &len), len != s.size()))
    return InvalidArgument("{}: field '{}' must be one character, got '{}'", where, key, s);
  return utf8_decode(s, 0, &len);
}

StatusOr<std::shared_ptr<const Pattern>> parse_pattern(const json& j, const std::string& where) {
  if (j.is_object() && j.size() == 1 && j.contains("String") && j["String"].is_string())
    return std::shared_ptr<const Pattern>(
        std::make_shared<LiteralPattern>(j["String"].get<std::string>()));
  if (j.is_object() && j.size() == 1 && j.contains("Regex") && j["Regex"].is_string()) {
    auto re = Regex::compile(j["Regex"].get<std::string>());
    if (!re.ok()) return re.status().with_context(where);
    return std::shared_ptr<const Pattern>(*re);
  }
  return InvalidArgument("{}: pattern must be {{\"String\": ...}} or {{\"Regex\": ...}}, got {}",
                         where, j.dump());
}

StatusOr<std::unique_ptr<Normalizer>> parse_normalizer(const json& j, const std::string& where) {
  if (j.is_null()) return std::unique_ptr<Normalizer>();
  ASSIGN_OR_RETURN(const std::string type, json_type(j, where));
  const int stable = UTF8PROC_STABLE;
  if (type == "NFC")
    return std::unique_ptr<Normalizer>(new UnicodeNormalizer(stable | UTF8PROC_COMPOSE));
  if (type == "NFD")
    return std::unique_ptr<Normalizer>(new UnicodeNormalizer(stable | UTF8PROC_DECOMPOSE));
  if (type == "NFKC")
    return std::unique_ptr<Normalizer>(
        new UnicodeNormalizer(stable | UTF8PROC_COMPOSE | UTF8PROC_COMPAT));
  if (type == "NFKD")
    return std::unique_ptr<Normalizer>(
        new UnicodeNormalizer(stable | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT));
  if (type == "Lowercase") return std::unique_ptr<Normalizer>(new LowercaseNormalizer());
  if (type == "Sequence") return parse_normalizer_sequence(j, where);
  if (type == "Prepend") {
    ASSIGN_OR_RETURN(std::string prepend, json_string(j, "prepend", where));
    return std::unique_ptr<Normalizer>(new PrependNormalizer(std::move(prepend)));
  }
  if (type == "Replace") {
    if (!j.contains("pattern")) return InvalidArgument("{}: Replace needs a 'pattern'", where);
    ASSIGN_OR_RETURN(auto pattern, parse_pattern(j["pattern"], where + ".pattern"));
    ASSIGN_OR_RETURN(std::string content, json_string(j, "content", where));
    return std::unique_ptr<Normalizer>(
        new ReplaceNormalizer(std::move(pattern), std::move(content)));
  }
  return InvalidArgument(
      "{}: unsupported normalizer type '{}' (supported: NFC, NFD, NFKC, NFKD, Lowercase, "
      "Replace, Prepend, Sequence; docs/tokenizers.md)",
      where, type);
}

}  // namespace r1kit::data::hf
