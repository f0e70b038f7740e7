// Chat templates (see chat_template.h): plain string assembly, no tokenizer involved.
#include "data/chat_template.h"

#include <stdexcept>

namespace r1kit::data {

StatusOr<std::string> try_render_prompt(const ChatTemplateOptions& opts,
                                        std::string_view question) {
  std::string out;
  switch (opts.kind) {
    case ChatTemplateKind::kR1Zero: {
      const std::string_view preamble =
          opts.system_prompt ? std::string_view(*opts.system_prompt) : kR1ZeroPreamble;
      if (!preamble.empty()) {
        out.append(preamble);
        out += ' ';
      }
      out += "User: ";
      out.append(question);
      out += ". Assistant:";
      break;
    }
    case ChatTemplateKind::kPlain:
      if (opts.system_prompt) {
        out.append(*opts.system_prompt);
        out += '\n';
      }
      out += "User: ";
      out.append(question);
      out += "\nAssistant:";
      break;
    case ChatTemplateKind::kJinja: {
      if (opts.jinja == nullptr)
        return FailedPrecondition("chat template: a Jinja template was chosen but not loaded");
      nlohmann::ordered_json messages = nlohmann::ordered_json::array();
      if (opts.system_prompt && !opts.system_prompt->empty())
        messages.push_back({{"role", "system"}, {"content", *opts.system_prompt}});
      messages.push_back({{"role", "user"}, {"content", std::string(question)}});
      ASSIGN_OR_RETURN(out, opts.jinja->render(messages, true, opts.jinja_vars));
      if (opts.prefill_think) out += "<think>\n";
      return out;
    }
  }
  if (opts.prefill_think) out += " <think>";
  return out;
}

StatusOr<std::string> try_render_conversation_prompt(const ChatTemplateOptions& opts,
                                                     const nlohmann::json& messages,
                                                     std::string_view question) {
  if (opts.kind != ChatTemplateKind::kJinja) return try_render_prompt(opts, question);
  if (opts.jinja == nullptr)
    return FailedPrecondition("chat template: a Jinja template was chosen but not loaded");
  if (!messages.is_array()) return InvalidArgument("chat template: messages must be an array");
  size_t end = messages.size();
  if (end > 0 && messages.back().is_object() && messages.back().value("role", "") == "assistant")
    --end;
  nlohmann::ordered_json turns = nlohmann::ordered_json::array();
  const bool has_system =
      end > 0 && messages.front().is_object() && messages.front().value("role", "") == "system";
  if (!has_system && opts.system_prompt && !opts.system_prompt->empty())
    turns.push_back({{"role", "system"}, {"content", *opts.system_prompt}});
  for (size_t i = 0; i < end; ++i)
    turns.push_back(nlohmann::ordered_json::parse(messages[i].dump()));
  ASSIGN_OR_RETURN(std::string out, opts.jinja->render(turns, true, opts.jinja_vars));
  if (opts.prefill_think) out += "<think>\n";
  return out;
}

std::string render_prompt(const ChatTemplateOptions& opts, std::string_view question) {
  StatusOr<std::string> out = try_render_prompt(opts, question);
  if (!out.ok()) throw std::runtime_error(out.status().to_string());
  return std::move(out).value();
}

SftExample render_sft_example(const ChatTemplateOptions& opts, std::string_view question,
                              std::string_view response) {
  if (opts.kind == ChatTemplateKind::kJinja) {
    StatusOr<SftExample> ex = render_jinja_sft_example(opts, question, response);
    if (!ex.ok()) throw std::runtime_error(ex.status().to_string());
    return std::move(ex).value();
  }
  SftExample ex;
  ex.text = render_prompt(opts, question);
  ex.response_offset = ex.text.size();
  const bool starts_with_space =
      !response.empty() && (response.front() == ' ' || response.front() == '\n' ||
                            response.front() == '\t' || response.front() == '\r');
  if (!response.empty() && !starts_with_space) ex.text += ' ';
  ex.text.append(response);
  return ex;
}

StatusOr<ChatTemplateKind> parse_chat_template_kind(std::string_view name) {
  ChatTemplateKind kind = ChatTemplateKind::kR1Zero;
  if (enum_from_name<ChatTemplateKind>(name, kChatTemplateNames, &kind)) return kind;
  return InvalidArgument("chat template '{}': unknown (use r1_zero or plain)", name);
}

std::string_view chat_template_kind_name(ChatTemplateKind kind) {
  const std::string_view name = enum_name<ChatTemplateKind>(kind, kChatTemplateNames);
  return name.empty() ? "unknown" : name;
}

}  // namespace r1kit::data
