// A model's recorded prompt format (see prompt_format.h).
#include "data/prompt_format.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <vector>

#include "core/atomic_file.h"
#include "core/json.h"
#include "core/logging.h"

namespace r1kit::data {
namespace {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

// The parts of the built-ins' Jinja versions. Every tag strips the whitespace around it,
// so the text comes from the expressions alone. `think` is the prefill (" <think>" or "").
constexpr std::string_view kJinjaAssistant = R"({%- elif message['role'] == 'assistant' -%}
        {{- assistant_header ~ think -}}
        {%- if message['content'] and message['content'][0] not in ' \t\n\r' -%}
            {{- ' ' -}}
        {%- endif -%}
        {{- message['content'] -}}
    {%- else -%}
        {{- raise_exception(template_name ~ ': unexpected role ' ~ message['role']) -}}
    {%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{- assistant_header ~ think -}}
{%- endif -%}
)";

constexpr std::string_view kJinjaUser = R"({%- for message in turns -%}
    {%- if message['role'] == 'user' -%}
        {%- if not loop.first -%}
            {{- raise_exception(template_name ~ ': one user message per conversation') -}}
        {%- endif -%}
)";

std::string r1_zero_jinja(std::string_view think) {
  return fmt::format(
             R"({{#- r1kit's built-in r1_zero template (DeepSeek-R1, Table 1) -#}}
{{%- set template_name = 'r1_zero' -%}}
{{%- set think = '{}' -%}}
{{%- set assistant_header = ' Assistant:' -%}}
{{%- if messages and messages[0]['role'] == 'system' -%}}
    {{%- set preamble = messages[0]['content'] -%}}
    {{%- set turns = messages[1:] -%}}
{{%- else -%}}
    {{%- set preamble = '{}' -%}}
    {{%- set turns = messages -%}}
{{%- endif -%}}
{{%- if preamble -%}}
    {{{{- preamble ~ ' ' -}}}}
{{%- endif -%}}
)",
             think, kR1ZeroPreamble) +
         std::string(kJinjaUser) + "        {{- 'User: ' ~ message['content'] ~ '.' -}}\n    " +
         std::string(kJinjaAssistant);
}

std::string plain_jinja(std::string_view think) {
  return fmt::format(R"({{#- r1kit's built-in plain template -#}}
{{%- set template_name = 'plain' -%}}
{{%- set think = '{}' -%}}
{{%- set assistant_header = '\nAssistant:' -%}}
{{%- set turns = messages -%}}
{{%- if messages and messages[0]['role'] == 'system' -%}}
    {{{{- messages[0]['content'] ~ '\n' -}}}}
    {{%- set turns = messages[1:] -%}}
{{%- endif -%}}
)",
                     think) +
         std::string(kJinjaUser) + "        {{- 'User: ' ~ message['content'] -}}\n    " +
         std::string(kJinjaAssistant);
}

// A top-level key of a JSON object's text and the byte range of its value.
struct KeySpan {
  std::string key;
  size_t value_begin = 0, value_end = 0;
};

size_t skip_ws(std::string_view t, size_t i) {
  while (i < t.size() && (t[i] == ' ' || t[i] == '\t' || t[i] == '\n' || t[i] == '\r')) ++i;
  return i;
}

// `i` at an opening quote; the index after the closing one.
size_t skip_string(std::string_view t, size_t i) {
  for (++i; i < t.size() && t[i] != '"'; ++i)
    if (t[i] == '\\') ++i;
  return i + 1;
}

// `i` at a value; the index after it.
size_t skip_value(std::string_view t, size_t i) {
  if (t[i] == '"') return skip_string(t, i);
  if (t[i] == '{' || t[i] == '[') {
    int depth = 0;
    while (i < t.size()) {
      if (t[i] == '"') {
        i = skip_string(t, i);
        continue;
      }
      if (t[i] == '{' || t[i] == '[') ++depth;
      if ((t[i] == '}' || t[i] == ']') && --depth == 0) return i + 1;
      ++i;
    }
    return i;
  }
  while (i < t.size() && t[i] != ',' && t[i] != '}' && t[i] != ']' && t[i] != ' ' && t[i] != '\n' &&
         t[i] != '\t' && t[i] != '\r')
    ++i;
  return i;
}

// The top-level keys of `t`, a valid JSON object's text (checked by the caller).
std::vector<KeySpan> top_level_keys(std::string_view t) {
  std::vector<KeySpan> out;
  size_t i = skip_ws(t, t.starts_with("\xEF\xBB\xBF") ? 3 : 0) + 1;  // after a BOM and '{'
  for (;;) {
    i = skip_ws(t, i);
    if (i >= t.size() || t[i] == '}') return out;
    if (t[i] == ',') i = skip_ws(t, i + 1);
    const size_t key_end = skip_string(t, i);
    KeySpan k;
    k.key = nlohmann::json::parse(t.substr(i, key_end - i)).get<std::string>();
    i = skip_ws(t, key_end) + 1;  // after ':'
    k.value_begin = skip_ws(t, i);
    k.value_end = skip_value(t, k.value_begin);
    i = k.value_end;
    out.push_back(std::move(k));
  }
}

bool is_jinja_path(std::string_view s) {
  return s.size() > 6 && s.ends_with(".jinja");
}

// The template text a .jinja file and a model directory hold, when both load.
bool same_template_text(std::string_view jinja_path, std::string_view model_dir) {
  auto file = JinjaChatTemplate::load_file(std::string(jinja_path));
  auto dir = JinjaChatTemplate::load_model_dir(std::string(model_dir));
  return !file.ok() || !dir.ok() || file->source() == dir->source();
}

// Whether a tokenizer_config.json chat_template value (a string, or a list of named
// templates) already is `source` (as its "default").
bool holds_template(const nlohmann::json& value, const std::string& source) {
  if (value.is_string()) return value.get<std::string>() == source;
  if (!value.is_array()) return false;
  return std::any_of(value.begin(), value.end(), [&source](const nlohmann::json& e) {
    return e.is_object() && e.value("name", "") == "default" && e.value("template", "") == source;
  });
}

std::string describe(std::string_view chat_template, bool prefill_think) {
  return fmt::format("{}{}", chat_template, prefill_think ? " with prefill_think" : "");
}

}  // namespace

ojson PromptFormat::to_json() const {
  ojson j = {{"chat_template", chat_template}, {"prefill_think", prefill_think}};
  if (!task.is_null()) j["task"] = ojson::parse(task.dump());
  return j;
}

StatusOr<PromptFormat> PromptFormat::from_json(const nlohmann::json& j) {
  if (!j.is_object()) return InvalidArgument("\"{}\": must be an object", kPromptFormatKey);
  PromptFormat f;
  const auto ct = j.find("chat_template");
  if (ct == j.end() || !ct->is_string() || (*ct != "r1_zero" && *ct != "plain" && *ct != "jinja"))
    return InvalidArgument("\"{}\".chat_template: must be \"r1_zero\", \"plain\" or \"jinja\"",
                           kPromptFormatKey);
  f.chat_template = ct->get<std::string>();
  if (const auto p = j.find("prefill_think"); p != j.end()) {
    if (!p->is_boolean())
      return InvalidArgument("\"{}\".prefill_think: must be true or false", kPromptFormatKey);
    f.prefill_think = p->get<bool>();
  }
  if (const auto t = j.find("task"); t != j.end()) {
    if (!t->is_object() && !t->is_null())
      return InvalidArgument("\"{}\".task: must be an object", kPromptFormatKey);
    f.task = *t;
  }
  return f;
}

PromptFormat prompt_format_of(const ChatTemplateOptions& opts, nlohmann::json task) {
  PromptFormat f;
  f.prefill_think = opts.prefill_think;
  f.task = std::move(task);
  if (opts.kind == ChatTemplateKind::kJinja && opts.jinja != nullptr) {
    f.chat_template = "jinja";
    f.jinja_source = opts.jinja->source();
  } else {
    f.chat_template = std::string(chat_template_kind_name(opts.kind));
  }
  return f;
}

StatusOr<std::string> builtin_chat_template_jinja(ChatTemplateKind kind, bool prefill_think) {
  const std::string_view think = prefill_think ? " <think>" : "";
  switch (kind) {
    case ChatTemplateKind::kR1Zero: return r1_zero_jinja(think);
    case ChatTemplateKind::kPlain: return plain_jinja(think);
    case ChatTemplateKind::kJinja: break;
  }
  return InvalidArgument("builtin_chat_template_jinja: a Jinja template is not a built-in");
}

StatusOr<std::string> merge_tokenizer_config(std::string_view existing,
                                             const PromptFormat& format) {
  std::string jinja = format.jinja_source;
  if (format.chat_template != "jinja") {
    ASSIGN_OR_RETURN(const ChatTemplateKind kind, parse_chat_template_kind(format.chat_template));
    ASSIGN_OR_RETURN(jinja, builtin_chat_template_jinja(kind, format.prefill_think));
  }
  std::string text = existing.empty() ? std::string("{}\n") : std::string(existing);
  const nlohmann::json parsed = parse_json_or_discarded(text);
  if (parsed.is_discarded() || !parsed.is_object())
    return DataLoss("tokenizer_config.json: not a JSON object");
  // Values indented one level, as the key they belong to.
  auto indented = [](std::string s) {
    for (size_t p = 0; (p = s.find('\n', p)) != std::string::npos; p += 3) s.replace(p, 1, "\n  ");
    return s;
  };
  const std::vector<std::pair<std::string, std::string>> add = {
      {"chat_template", nlohmann::json(jinja).dump()},
      {std::string(kPromptFormatKey), indented(format.to_json().dump(2))}};
  const std::vector<KeySpan> keys = top_level_keys(text);
  std::vector<std::pair<KeySpan, std::string>> replace;
  std::string append;
  for (const auto& [key_binding, value] : add) {
    const auto& key = key_binding;  // clang 14 cannot capture a structured binding
    const auto it =
        std::find_if(keys.begin(), keys.end(), [&key](const KeySpan& k) { return k.key == key; });
    if (it == keys.end()) {
      append += fmt::format("{}\n  {}: {}", keys.empty() && append.empty() ? "" : ",",
                            nlohmann::json(key).dump(), value);
    } else if (key != "chat_template" || !holds_template(parsed[key], jinja)) {
      replace.emplace_back(*it, value);  // (the same template already: its bytes stay)
    }
  }
  // Appended before the closing brace (after the last value), then replaced back to front.
  size_t close = text.rfind('}');
  size_t end_of_last = close;
  while (end_of_last > 0 &&
         std::string_view(" \t\n\r").find(text[end_of_last - 1]) != std::string_view::npos)
    --end_of_last;
  if (!append.empty()) text.replace(end_of_last, close - end_of_last, append + "\n");
  std::sort(replace.begin(), replace.end(),
            [](const auto& a, const auto& b) { return a.first.value_begin > b.first.value_begin; });
  for (const auto& [span, value] : replace)
    text.replace(span.value_begin, span.value_end - span.value_begin, value);
  return text;
}

StatusOr<std::optional<PromptFormat>> read_prompt_format(std::string_view model_dir) {
  const std::string path = (fs::path(model_dir) / "tokenizer_config.json").string();
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return std::optional<PromptFormat>();
  ASSIGN_OR_RETURN(const std::string text, read_file(path));
  const nlohmann::json j = parse_json_or_discarded(text);
  if (j.is_discarded() || !j.is_object()) return DataLoss("{}: not a JSON object", path);
  const auto it = j.find(kPromptFormatKey);
  if (it == j.end()) return std::optional<PromptFormat>();
  StatusOr<PromptFormat> f = PromptFormat::from_json(*it);
  if (!f.ok()) return f.status().with_context(path);
  return std::optional<PromptFormat>(std::move(f).value());
}

StatusOr<ResolvedPromptFormat> resolve_prompt_format(std::string_view requested, bool prefill_think,
                                                     std::string_view model_dir,
                                                     std::string_view fallback,
                                                     std::string_view what) {
  ResolvedPromptFormat r;
  r.prefill_think = prefill_think;
  if (!model_dir.empty()) {
    ASSIGN_OR_RETURN(r.recorded, read_prompt_format(model_dir));
  }
  const std::string config = fmt::format("{}/tokenizer_config.json", model_dir);
  if (!r.recorded) {
    r.chat_template = std::string(requested == kAutoChatTemplate ? fallback : requested);
    if (requested == kAutoChatTemplate && !model_dir.empty())
      r.note = fmt::format(
          "{}: {} records no r1kit prompt format (written before r1kit recorded one, or not by "
          "r1kit); using {}, the default without a record",
          what, model_dir, describe(r.chat_template, r.prefill_think));
    return r;
  }
  const PromptFormat& rec = *r.recorded;
  // A Jinja-trained model's template is its directory's own.
  const std::string recorded_spec = rec.chat_template == "jinja" ? "model" : rec.chat_template;
  r.prefill_think = prefill_think || rec.prefill_think;
  const std::string trained = describe(rec.chat_template, rec.prefill_think);
  if (requested == kAutoChatTemplate) {
    r.chat_template = recorded_spec;
    r.note = fmt::format("{}: {}, as {} records", what, trained, config);
  } else {
    r.chat_template = std::string(requested);
    bool same = requested == rec.chat_template;
    if (requested == "model") {
      // A built-in record: the built-in itself (its Jinja version renders the same).
      r.chat_template = recorded_spec;
      same = true;
    } else if (is_jinja_path(requested)) {
      same = rec.chat_template == "jinja" && same_template_text(requested, model_dir);
    }
    if (!same || (prefill_think && !rec.prefill_think)) {
      r.contradicts = true;
      r.note = fmt::format(
          "{} {} contradicts the model's record: {} was trained with {} ({}); its prompts will "
          "not look like the ones it learned",
          what, describe(requested, prefill_think), model_dir, trained, config);
    }
  }
  return r;
}

void log_prompt_format(const ResolvedPromptFormat& r) {
  if (r.note.empty()) return;
  if (r.contradicts)
    R1_LOG(warn, "{}", r.note);
  else
    R1_LOG(info, "{}", r.note);
}

}  // namespace r1kit::data
