// Reading JSON text. Every JSON document r1kit reads (safetensors headers, config.json,
// tokenizer files, JSONL lines, trainer state) goes through here, so that a hostile one
// costs nothing: nesting is bounded at kMaxJsonDepth before nlohmann::json parses it
// (its copies, dumps and error paths recurse once per level, and 100k levels overflow
// the stack). No real document nests deeper than a dozen levels.
#pragma once

#include <nlohmann/json.hpp>
#include <string_view>

#include "core/status.h"

namespace r1kit {

inline constexpr int kMaxJsonDepth = 64;

// InvalidArgument "`what`: JSON nested deeper than 64 levels" when an array or object of
// `text` opens more than kMaxJsonDepth levels deep (brackets in strings do not count).
Status check_json_depth(std::string_view text, std::string_view what);

// Whether `s` is valid UTF-8 by the rule nlohmann::json applies when it writes a string:
// text that fails it cannot be saved in any JSON file (a recipe in a checkpoint).
bool utf8_valid_for_json(std::string_view s);

// `text` parsed, or InvalidArgument naming `what`: nested too deep, or not valid JSON
// (with the parser's byte position).
template <class Json = nlohmann::json>
StatusOr<Json> parse_json(std::string_view text, std::string_view what) {
  RETURN_IF_ERROR(check_json_depth(text, what));
  try {
    return Json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    std::string why = e.what();
    const size_t at = why.find("parse error");  // drops the "[json.exception...] " prefix
    return InvalidArgument("{}: not valid JSON ({})", what, why.substr(at == why.npos ? 0 : at));
  }
}

// For callers with their own message: `text` parsed, or a discarded value
// (is_discarded()) when it is not valid JSON or nested too deep.
template <class Json = nlohmann::json>
Json parse_json_or_discarded(std::string_view text) {
  if (!check_json_depth(text, "").ok()) return Json(Json::value_t::discarded);
  return Json::parse(text, nullptr, /*allow_exceptions=*/false);
}

}  // namespace r1kit
