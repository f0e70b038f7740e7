// Normalizers of a Hugging Face tokenizer.json (data/hf_tokenizer.h), as the Rust
// `tokenizers` library defines them (https://huggingface.co/docs/tokenizers/components,
// "Normalizers"). A normalizer rewrites the text before pre-tokenization:
//   NFC, NFD, NFKC, NFKD   Unicode normalization forms (UAX #15), computed with utf8proc
//   Lowercase              each character's full lowercase mapping (Rust char::to_lowercase:
//                          the Unicode data's simple mapping, plus İ U+0130 -> "i̇")
//   Replace{pattern,content}  every match of pattern ({"String": s} literal or
//                          {"Regex": r} Oniguruma) becomes content
//   Prepend{prepend}       prepend the string, unless the text is empty
//   Sequence{normalizers}  apply each in order
// A JSON null means no normalizer. Any other type, or a missing/ill-typed field, is an
// InvalidArgument naming the component (`where`, e.g. "normalizer.normalizers[1]").
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "core/status.h"

namespace r1kit::data::hf {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  // Rewrites `text` (valid UTF-8) in place.
  virtual void normalize(std::string& text) const = 0;
};

// The normalizer described by `j` (null -> nullptr). `where` names it in errors.
StatusOr<std::unique_ptr<Normalizer>> parse_normalizer(const nlohmann::json& j,
                                                       const std::string& where);

// Helpers shared with the pre-tokenizers and decoders: the field `key` of the object `j`,
// with its type checked; InvalidArgument naming `where`.key otherwise.
StatusOr<std::string> json_string(const nlohmann::json& j, const char* key,
                                  const std::string& where);
StatusOr<bool> json_bool(const nlohmann::json& j, const char* key, const std::string& where,
                         bool fallback);
StatusOr<int64_t> json_int(const nlohmann::json& j, const char* key, const std::string& where);
// The "type" of a component object.
StatusOr<std::string> json_type(const nlohmann::json& j, const std::string& where);
// A single character given as a JSON string (e.g. Metaspace's replacement).
StatusOr<char32_t> json_char(const nlohmann::json& j, const char* key, const std::string& where);

class Pattern;
// A pattern object {"String": s} or {"Regex": r}.
StatusOr<std::shared_ptr<const Pattern>> parse_pattern(const nlohmann::json& j,
                                                       const std::string& where);

}  // namespace r1kit::data::hf
