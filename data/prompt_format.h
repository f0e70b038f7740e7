// A model's prompt format, recorded beside its tokenizer: every model r1kit writes
// carries the chat template and task it was trained with, so generate, eval, distill,
// GRPO and the pipeline's evaluations render prompts the way the model learned them
// without being told (docs/chat_templates.md, "The prompt format a model records").
//
// The record lives in the model directory's tokenizer_config.json, the Hugging Face way:
//   "chat_template": a Jinja template (the built-ins' Jinja versions below, or the Jinja
//                    template trained with), so transformers' apply_chat_template renders
//                    the prompts the model was trained on;
//   "r1kit": {"chat_template": "r1_zero" | "plain" | "jinja", "prefill_think": bool,
//             "task": the recipe's task section (name, seed, eval_size, its own keys)}.
// Every other key of a tokenizer_config.json that came with a Hugging Face checkpoint is
// kept byte for byte (merge_tokenizer_config).
//
// Readers resolve a requested template against the record (resolve_prompt_format):
// `auto` (the default everywhere) takes the recorded one, or the caller's fallback when
// the model has none (older checkpoints), logged; an explicit value that contradicts the
// record is used, with a WARNING naming both.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"
#include "data/chat_template.h"

namespace r1kit::data {

// The key of r1kit's own facts in tokenizer_config.json.
inline constexpr std::string_view kPromptFormatKey = "r1kit";
// The chat_template spelling that means "the model's recorded template".
inline constexpr std::string_view kAutoChatTemplate = "auto";

// What a model was trained with.
struct PromptFormat {
  // "r1_zero", "plain", or "jinja" (a Jinja template: jinja_source).
  std::string chat_template = "r1_zero";
  bool prefill_think = false;
  std::string jinja_source;                // chat_template "jinja": the template's text
  nlohmann::json task = nlohmann::json();  // the task section (config_to_json), or null

  // {"chat_template", "prefill_think", "task"} (task only when not null).
  nlohmann::ordered_json to_json() const;
  // The inverse; InvalidArgument naming the bad key. jinja_source is left empty (the
  // template is tokenizer_config.json's own chat_template).
  static StatusOr<PromptFormat> from_json(const nlohmann::json& j);
};

// The PromptFormat of loaded template options: the built-in's name, or "jinja" with the
// template's source. `task` as given.
PromptFormat prompt_format_of(const ChatTemplateOptions& opts, nlohmann::json task);

// The Jinja version of a built-in template (kR1Zero, kPlain): rendering
// [system,] user with add_generation_prompt=true gives try_render_prompt's prompt (a
// system message is ChatTemplateOptions::system_prompt), and [system,] user,
// assistant(response) with add_generation_prompt=false gives render_sft_example's text.
// With prefill_think the generation prompt ends in " <think>" and an assistant message
// is what follows it. A second user message raises (the built-ins have one question).
// InvalidArgument for kJinja.
StatusOr<std::string> builtin_chat_template_jinja(ChatTemplateKind kind, bool prefill_think);

// `existing` (a tokenizer_config.json's text; "" for none) with "chat_template" and
// "r1kit" set for `format`: the Jinja version of a built-in, or format.jinja_source. The
// rest of the text is kept byte for byte: a key present is replaced where it stands, a
// missing one appended before the closing brace. DataLoss when `existing` is not a JSON
// object.
StatusOr<std::string> merge_tokenizer_config(std::string_view existing, const PromptFormat& format);

// The record in DIR/tokenizer_config.json; nullopt when the file or its "r1kit" key is
// missing (a model written before the record, or not by r1kit). DataLoss when the file
// is not JSON, InvalidArgument when the record is malformed.
StatusOr<std::optional<PromptFormat>> read_prompt_format(std::string_view model_dir);

// A requested template resolved against a model's record.
struct ResolvedPromptFormat {
  std::string chat_template;  // what to render with: r1_zero | plain | model | FILE.jinja | ...
  bool prefill_think = false;
  std::optional<PromptFormat> recorded;  // the model's record, if any
  std::string note;                      // what was decided, for the log ("" when nothing to say)
  bool contradicts = false;  // an explicit choice differs from the record (note says how)
};

// Resolves `requested` (a chat_template spelling, or "auto") for the model in
// `model_dir` ("" = no model: the fallback, silently):
// - "auto": the record's template and prefill_think (a Jinja record: "model", the
//   directory's own template); without a record `fallback`, and the note says so;
// - otherwise `requested`; when it contradicts the record (another built-in, a built-in
//   for a Jinja-trained model, a .jinja file whose text differs from the recorded one, or
//   `fallback`-less raw text) the note names both. "model" on a model with a built-in
//   record is that built-in (its Jinja version renders the same bytes).
// prefill_think is `prefill_think` or the record's; asking for it when the record says
// false is a contradiction. `what` names the setting in the note ("--chat-template",
// "task.chat_template").
StatusOr<ResolvedPromptFormat> resolve_prompt_format(std::string_view requested, bool prefill_think,
                                                     std::string_view model_dir,
                                                     std::string_view fallback,
                                                     std::string_view what);

// Logs `r.note`: a WARNING when it contradicts the record, else info. Nothing when empty.
void log_prompt_format(const ResolvedPromptFormat& r);

}  // namespace r1kit::data
