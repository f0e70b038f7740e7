// Jinja chat templates (see chat_template.h): loading a checkpoint's template, rendering
// a conversation as transformers does, and the assistant spans SFT trains on.
#include <filesystem>

#include "core/atomic_file.h"
#include "core/json.h"
#include "data/chat_template.h"

namespace r1kit::data {
namespace {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

// The special tokens transformers passes to templates (special_tokens_map), from a
// tokenizer_config.json: each a string or an AddedToken object {"content": ...}.
StatusOr<ojson> special_tokens_of(const ojson& config, const std::string& where) {
  ojson out = ojson::object();
  for (const char* key : {"bos_token", "eos_token", "unk_token", "pad_token"}) {
    if (!config.contains(key) || config[key].is_null()) continue;
    const ojson& t = config[key];
    if (t.is_string()) {
      out[key] = t;
    } else if (t.is_object() && t.contains("content") && t["content"].is_string()) {
      out[key] = t["content"];
    } else {
      return InvalidArgument("{}: \"{}\" must be a string or {{\"content\": ...}}", where, key);
    }
  }
  return out;
}

StatusOr<ojson> read_tokenizer_config(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, read_file(path));
  ojson j = parse_json_or_discarded<ojson>(text);
  if (j.is_discarded() || !j.is_object()) return InvalidArgument("{}: not a JSON object", path);
  return j;
}

// tokenizer_config.json's chat_template: a string, or [{"name", "template"}, ...].
StatusOr<std::string> chat_template_of(const ojson& config, const std::string& where) {
  if (!config.contains("chat_template") || config["chat_template"].is_null())
    return NotFound("{}: no \"chat_template\"", where);
  const ojson& t = config["chat_template"];
  if (t.is_string()) return t.get<std::string>();
  if (t.is_array()) {
    std::string names;
    for (const ojson& e : t) {
      if (!e.is_object() || !e.contains("name") || !e.contains("template") ||
          !e["name"].is_string() || !e["template"].is_string())
        return InvalidArgument(
            "{}: \"chat_template\" list items must be {{\"name\", \"template\"}}", where);
      if (e["name"] == "default") return e["template"].get<std::string>();
      names += (names.empty() ? "" : ", ") + e["name"].get<std::string>();
    }
    return NotFound("{}: \"chat_template\" has no template named \"default\" (it has: {})", where,
                    names);
  }
  return InvalidArgument("{}: \"chat_template\" must be a string or a list", where);
}

bool starts_with_text(const std::string& p, const std::string& s) {
  return p.size() <= s.size() && s.compare(0, p.size(), p) == 0;
}

// The first byte where a and b differ, for error messages.
size_t first_difference_at(const std::string& a, const std::string& b) {
  size_t i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
  return i;
}

ojson first_messages(const ojson& messages, size_t n) {
  ojson out = ojson::array();
  for (size_t i = 0; i < n; ++i) out.push_back(messages[i]);
  return out;
}

Status check_conversation(const ojson& messages) {
  if (!messages.is_array()) return InvalidArgument("messages must be a JSON array");
  for (size_t i = 0; i < messages.size(); ++i)
    if (!messages[i].is_object() || !messages[i].contains("role") ||
        !messages[i]["role"].is_string())
      return InvalidArgument("messages[{}] must be an object with a string \"role\"", i);
  return OkStatus();
}

bool is_assistant_message(const ojson& m) {
  return m["role"] == "assistant";
}

// The span of assistant message i by prefix rendering: [len(P), len(F)).
StatusOr<jinja::Span> assistant_prefix_span(const JinjaChatTemplate& tmpl, const ojson& messages,
                                            size_t i, const ojson& extra, std::string* through) {
  ASSIGN_OR_RETURN(std::string prompt, tmpl.render(first_messages(messages, i), true, extra));
  ASSIGN_OR_RETURN(std::string no_prompt, tmpl.render(first_messages(messages, i), false, extra));
  if (prompt == no_prompt)
    return FailedPrecondition(
        "{}: the template renders messages[:{}] the same with and without "
        "add_generation_prompt, so the end of an assistant turn cannot be told from the next "
        "generation prompt",
        tmpl.name(), i);
  ASSIGN_OR_RETURN(*through, tmpl.render(first_messages(messages, i + 1), false, extra));
  if (!starts_with_text(prompt, *through))
    return FailedPrecondition(
        "{}: the generation prompt before assistant message {} is not a prefix of the "
        "conversation through it (they differ at byte {})",
        tmpl.name(), i, first_difference_at(prompt, *through));
  return jinja::Span{prompt.size(), through->size()};
}

}  // namespace

StatusOr<JinjaChatTemplate> JinjaChatTemplate::from_source(std::string_view source,
                                                           std::string name,
                                                           const ojson& special_tokens) {
  if (!special_tokens.is_object())
    return InvalidArgument("{}: special tokens must be a JSON object", name);
  JinjaChatTemplate t;
  ASSIGN_OR_RETURN(t.special_tokens_, special_tokens_of(special_tokens, name));
  ASSIGN_OR_RETURN(t.tmpl_, jinja::Template::parse(source, std::move(name)));
  t.source_ = std::string(source);
  return t;
}

StatusOr<JinjaChatTemplate> JinjaChatTemplate::load_model_dir(const std::string& dir) {
  const std::string config_path = (fs::path(dir) / "tokenizer_config.json").string();
  const std::string jinja_path = (fs::path(dir) / "chat_template.jinja").string();
  std::error_code ec;
  const bool has_config = fs::is_regular_file(config_path, ec);
  ojson config = ojson::object();
  if (has_config) {
    ASSIGN_OR_RETURN(config, read_tokenizer_config(config_path));
  }
  if (fs::is_regular_file(jinja_path, ec)) {
    ASSIGN_OR_RETURN(std::string source, read_file(jinja_path));
    return from_source(source, jinja_path, config);
  }
  if (!has_config)
    return NotFound("{}: no chat template (neither tokenizer_config.json nor chat_template.jinja)",
                    dir);
  ASSIGN_OR_RETURN(std::string source, chat_template_of(config, config_path));
  return from_source(source, config_path + " chat_template", config);
}

StatusOr<JinjaChatTemplate> JinjaChatTemplate::load_file(const std::string& path) {
  ASSIGN_OR_RETURN(std::string source, read_file(path, "chat template"));
  const std::string config_path = (fs::path(path).parent_path() / "tokenizer_config.json").string();
  std::error_code ec;
  ojson config = ojson::object();
  if (fs::is_regular_file(config_path, ec)) {
    ASSIGN_OR_RETURN(config, read_tokenizer_config(config_path));
  }
  return from_source(source, path, config);
}

StatusOr<std::string> JinjaChatTemplate::render(const ojson& messages, bool add_generation_prompt,
                                                const ojson& extra,
                                                std::vector<jinja::Span>* generation) const {
  RETURN_IF_ERROR(check_conversation(messages).with_context(name()));
  if (!extra.is_object())
    return InvalidArgument("{}: extra variables must be a JSON object", name());
  jinja::DictData vars;
  vars.set("messages", jinja::Value::from_json(messages));
  vars.set("tools", jinja::Value::none());
  vars.set("documents", jinja::Value::none());
  vars.set("add_generation_prompt", jinja::Value::boolean(add_generation_prompt));
  for (auto it = special_tokens_.begin(); it != special_tokens_.end(); ++it)
    vars.set(it.key(), jinja::Value::from_json(it.value()));
  for (auto it = extra.begin(); it != extra.end(); ++it) {
    if (it.key() == "messages" || it.key() == "add_generation_prompt")
      return InvalidArgument("{}: extra variable '{}' is set by the renderer", name(), it.key());
    vars.set(it.key(), jinja::Value::from_json(it.value()));
  }
  return tmpl_.render(vars, generation);
}

Status check_chat_template(const ChatTemplateOptions& opts) {
  return try_render_prompt(opts, "What is 1 + 1?").status();
}

StatusOr<ChatTemplateSpec> parse_chat_template_spec(std::string_view value) {
  ChatTemplateSpec spec;
  if (value == "model") {
    spec.kind = ChatTemplateKind::kJinja;
    spec.from_model = true;
    return spec;
  }
  if (value.size() > 6 && value.substr(value.size() - 6) == ".jinja") {
    spec.kind = ChatTemplateKind::kJinja;
    spec.path = std::string(value);
    return spec;
  }
  if (enum_from_name<ChatTemplateKind>(value, kChatTemplateNames, &spec.kind)) return spec;
  return InvalidArgument(
      "chat template '{}': unknown (use r1_zero, plain, model or a path to a .jinja file)", value);
}

StatusOr<ChatTemplateOptions> resolve_chat_template(const ChatTemplateSpec& spec,
                                                    std::string_view model_dir,
                                                    bool prefill_think) {
  ChatTemplateOptions opts;
  opts.kind = spec.kind;
  opts.prefill_think = prefill_think;
  if (spec.kind != ChatTemplateKind::kJinja) return opts;
  if (spec.from_model) {
    if (model_dir.empty())
      return FailedPrecondition(
          "chat template 'model': no checkpoint directory to read tokenizer_config.json from "
          "(set model.from, or name a .jinja file)");
    ASSIGN_OR_RETURN(auto t, JinjaChatTemplate::load_model_dir(std::string(model_dir)));
    opts.jinja = std::make_shared<const JinjaChatTemplate>(std::move(t));
  } else {
    ASSIGN_OR_RETURN(auto t, JinjaChatTemplate::load_file(spec.path));
    opts.jinja = std::make_shared<const JinjaChatTemplate>(std::move(t));
  }
  RETURN_IF_ERROR(check_chat_template(opts));
  return opts;
}

StatusOr<SftExample> render_jinja_sft_example(const ChatTemplateOptions& opts,
                                              std::string_view question,
                                              std::string_view response) {
  ASSIGN_OR_RETURN(std::string prompt, try_render_prompt(opts, question));
  ojson messages = ojson::array();
  if (opts.system_prompt && !opts.system_prompt->empty())
    messages.push_back({{"role", "system"}, {"content", *opts.system_prompt}});
  messages.push_back({{"role", "user"}, {"content", std::string(question)}});
  const std::string content = (opts.prefill_think ? "<think>\n" : "") + std::string(response);
  messages.push_back({{"role", "assistant"}, {"content", content}});
  SftExample ex;
  ASSIGN_OR_RETURN(ex.text, opts.jinja->render(messages, false, opts.jinja_vars));
  if (!starts_with_text(prompt, ex.text))
    return FailedPrecondition(
        "{}: the prompt is not a prefix of the rendered conversation (they differ at byte {})",
        opts.jinja->name(), first_difference_at(prompt, ex.text));
  ex.response_offset = prompt.size();
  return ex;
}

StatusOr<RenderedConversation> render_assistant_spans(const JinjaChatTemplate& tmpl,
                                                      const ojson& messages, const ojson& extra) {
  RenderedConversation out;
  ASSIGN_OR_RETURN(out.text, tmpl.render(messages, false, extra, &out.assistant_spans));
  if (!out.assistant_spans.empty()) return out;  // the template marks them itself
  for (size_t i = 0; i < messages.size(); ++i) {
    if (!is_assistant_message(messages[i])) continue;
    std::string through;
    ASSIGN_OR_RETURN(jinja::Span span, assistant_prefix_span(tmpl, messages, i, extra, &through));
    if (!starts_with_text(through, out.text))
      return FailedPrecondition(
          "{}: not prefix-stable: the conversation through assistant message {} renders "
          "differently inside the whole conversation (at byte {}); the template rewrites "
          "earlier turns, so train one example per turn (render_assistant_turns)",
          tmpl.name(), i, first_difference_at(through, out.text));
    out.assistant_spans.push_back(span);
  }
  return out;
}

StatusOr<std::vector<RenderedConversation>> render_assistant_turns(const JinjaChatTemplate& tmpl,
                                                                   const ojson& messages,
                                                                   const ojson& extra) {
  RETURN_IF_ERROR(check_conversation(messages).with_context(tmpl.name()));
  std::vector<RenderedConversation> out;
  for (size_t i = 0; i < messages.size(); ++i) {
    if (!is_assistant_message(messages[i])) continue;
    RenderedConversation turn;
    ASSIGN_OR_RETURN(jinja::Span span, assistant_prefix_span(tmpl, messages, i, extra, &turn.text));
    turn.assistant_spans.push_back(span);
    out.push_back(std::move(turn));
  }
  return out;
}

}  // namespace r1kit::data
