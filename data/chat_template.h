// Chat templates: the text a policy continues from, for a question.
//
// kR1Zero is the DeepSeek-R1-Zero template, word for word from the paper's Table 1
// (DeepSeek-R1 §2.2.3), including its "User: {prompt}. Assistant:" — the period
// follows the question even when it ends in "?", as in the paper. kPlain is a minimal
// "User: ...\nAssistant:" turn for models trained without a preamble.
// Differences from the sources: prefill_think appends " <think>" (one space after
// "Assistant:", the paper's spacing between tags) where TinyZero and Logic-RL prefill
// "\n<think>" after a fixed sentence; and SFT examples join prompt and response with
// one space (see render_sft_example).
//
// A checkpoint's own template (kJinja): the Jinja `chat_template` of its
// tokenizer_config.json, or a .jinja file, rendered by data/jinja.h exactly as
// transformers' apply_chat_template renders it (JinjaChatTemplate below). A question
// becomes the conversation [{"role": "system", ...} when system_prompt is non-empty,
// {"role": "user", "content": question}] rendered with add_generation_prompt=true
// (docs/chat_templates.md).
#pragma once

#include <cstddef>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/enum_names.h"
#include "core/status.h"
#include "data/jinja.h"

namespace r1kit::data {

enum class ChatTemplateKind {
  kR1Zero,  // "A conversation between User and Assistant. ... User: {q}. Assistant:"
  kPlain,   // "User: {q}\nAssistant:"
  kJinja,   // a Jinja chat template (ChatTemplateOptions::jinja)
};
// Recipe and flag spellings of the built-in templates (a recipe's chat_template may
// also be `model` or a .jinja path: parse_chat_template_spec).
inline constexpr EnumName<ChatTemplateKind> kChatTemplateNames[] = {
    {ChatTemplateKind::kR1Zero, "r1_zero"}, {ChatTemplateKind::kPlain, "plain"}};

// A Hugging Face chat template: Jinja source plus the special tokens the template reads
// (bos_token, eos_token, unk_token, pad_token as tokenizer_config.json spells them, a
// string or {"content": ...}). Rendering passes what transformers passes: messages,
// add_generation_prompt, tools=None, documents=None, the special tokens, then the
// caller's extra variables (enable_thinking, tools, ...).
// Thread-safety: immutable; render() may be called concurrently.
class JinjaChatTemplate {
 public:
  // From a checkpoint directory: DIR/chat_template.jinja when present (transformers
  // prefers it), else tokenizer_config.json's "chat_template" — a string, or a list of
  // {"name", "template"} of which "default" is used. Special tokens from
  // tokenizer_config.json. NotFound when the directory has no template.
  static StatusOr<JinjaChatTemplate> load_model_dir(const std::string& dir);
  // From a .jinja file; special tokens from a tokenizer_config.json beside it, if any.
  static StatusOr<JinjaChatTemplate> load_file(const std::string& path);
  // From source text; `name` starts error messages; `special_tokens` an object such as
  // {"bos_token": "<s>"} (values: strings or {"content": ...}).
  static StatusOr<JinjaChatTemplate> from_source(
      std::string_view source, std::string name,
      const nlohmann::ordered_json& special_tokens = nlohmann::ordered_json::object());

  // Renders `messages` (a JSON array of {"role", "content", ...}); `extra` (a JSON
  // object) adds variables. `generation`, when given, receives the spans the
  // template's {% generation %} blocks produced.
  StatusOr<std::string> render(
      const nlohmann::ordered_json& messages, bool add_generation_prompt,
      const nlohmann::ordered_json& extra = nlohmann::ordered_json::object(),
      std::vector<jinja::Span>* generation = nullptr) const;

  const std::string& name() const { return tmpl_.name(); }
  const std::string& source() const { return source_; }
  // The special token strings, e.g. "bos_token" -> "<|begin_of_text|>".
  const nlohmann::ordered_json& special_tokens() const { return special_tokens_; }

 private:
  jinja::Template tmpl_;
  std::string source_;
  nlohmann::ordered_json special_tokens_ = nlohmann::ordered_json::object();
};

// The R1-Zero preamble, everything before " User:" (Table 1 of the R1 paper).
inline constexpr std::string_view kR1ZeroPreamble =
    "A conversation between User and Assistant. The user asks a question, and the "
    "Assistant solves it. The assistant first thinks about the reasoning process in the "
    "mind and then provides the user with the answer. The reasoning process and answer "
    "are enclosed within <think> </think> and <answer> </answer> tags, respectively, "
    "i.e., <think> reasoning process here </think> <answer> answer here </answer>.";

struct ChatTemplateOptions {
  ChatTemplateKind kind = ChatTemplateKind::kR1Zero;  // which template
  // End the prompt with " <think>", so the model starts inside its reasoning (TinyZero,
  // Logic-RL). The completion then must not repeat <think>; the format reward must know.
  bool prefill_think = false;
  // Replaces the preamble: for kR1Zero the text before " User:" (kR1ZeroPreamble by
  // default; "" drops it); for kPlain a first line before "User:" (none by default);
  // for kJinja a system message (none when unset or "").
  std::optional<std::string> system_prompt;
  // kJinja: the template, and extra template variables (e.g. {"enable_thinking": false}).
  std::shared_ptr<const JinjaChatTemplate> jinja;
  nlohmann::ordered_json jinja_vars = nlohmann::ordered_json::object();
};

// The prompt the model continues from:
//   kR1Zero: "{preamble} User: {question}. Assistant:"
//   kPlain:  "[{system}\n]User: {question}\nAssistant:"
//   kJinja:  the template's rendering of [system,] user with add_generation_prompt
// the first two followed by " <think>" when prefill_think, kJinja by "<think>\n" (as
// DeepSeek-R1's own template ends its generation prompt).
// Errors only for kJinja: the template raised, or `jinja` is null.
StatusOr<std::string> try_render_prompt(const ChatTemplateOptions& opts, std::string_view question);
// try_render_prompt for callers that checked the template (check_chat_template): a
// failure throws std::runtime_error with the message.
std::string render_prompt(const ChatTemplateOptions& opts, std::string_view question);
// The prompt for a problem that came as a conversation (a dataset's "messages"): under
// kJinja, every turn before the final assistant turn (all of them when the last turn is
// not the assistant's), rendered with add_generation_prompt, the system prompt option
// first when the conversation has no system message, "<think>\n" after it when
// prefill_think; so a system message and earlier turns reach the model as the template
// lays them out. The built-in templates have one question and no turns: they render
// `question` as try_render_prompt does. InvalidArgument when `messages` is not an array.
StatusOr<std::string> try_render_conversation_prompt(const ChatTemplateOptions& opts,
                                                     const nlohmann::json& messages,
                                                     std::string_view question);
// Renders a probe question, so a template that cannot render a one-question prompt
// fails when it is chosen rather than in the middle of a run.
Status check_chat_template(const ChatTemplateOptions& opts);

// What a recipe's or flag's chat_template names: a built-in (r1_zero, plain), the
// checkpoint's own template (model), or a .jinja file (a path ending in ".jinja").
struct ChatTemplateSpec {
  ChatTemplateKind kind = ChatTemplateKind::kR1Zero;
  bool from_model = false;  // kJinja from the checkpoint's directory
  std::string path;         // kJinja from this file
};
StatusOr<ChatTemplateSpec> parse_chat_template_spec(std::string_view value);
// Options for `spec`: the template loaded (kJinja; `model_dir` is the checkpoint's
// directory, needed for `model`) and checked. FailedPrecondition when `model` is named
// without a directory.
StatusOr<ChatTemplateOptions> resolve_chat_template(const ChatTemplateSpec& spec,
                                                    std::string_view model_dir, bool prefill_think);

// A prompt and its response as one text for SFT. text[response_offset:] is the part
// the loss covers (the separator, response and nothing else), text[:response_offset]
// the prompt that gets masked.
struct SftExample {
  std::string text;        // prompt + separator + response
  size_t response_offset;  // byte offset in `text` where the trained span starts
};

// Joins render_prompt(opts, question) and `response`, with one space between them
// unless the response is empty or starts with whitespace. The space belongs to the
// response span: a model sampling after "Assistant:" emits it too. With prefill_think,
// `response` is what follows "<think>" ("reasoning </think> <answer> 4 </answer>").
// kJinja: [system,] user, assistant(response) rendered by the template, the span
// starting after the generation prompt (render_jinja_sft_example; a failure throws
// std::runtime_error with its message).
SftExample render_sft_example(const ChatTemplateOptions& opts, std::string_view question,
                              std::string_view response);
// The kJinja case of render_sft_example: the text is the template's rendering of the
// conversation (add_generation_prompt=false) and response_offset the end of
// try_render_prompt's prompt, which must be a prefix of it (FailedPrecondition
// otherwise). With prefill_think the assistant message is "<think>\n" + response.
StatusOr<SftExample> render_jinja_sft_example(const ChatTemplateOptions& opts,
                                              std::string_view question, std::string_view response);

// A conversation rendered for SFT with the byte spans of the assistant turns the loss
// covers: text[span.begin, span.end) is an assistant message as the model would
// generate it after the template's generation prompt, through the template's end of
// turn (e.g. "...<|im_end|>\n"; the closing tokens are trained, so the model learns
// to stop).
struct RenderedConversation {
  std::string text;
  std::vector<jinja::Span> assistant_spans;  // in order, one per trained assistant turn
};

// Renders `messages` (add_generation_prompt=false) and finds each assistant turn:
//   - templates with {% generation %} blocks: those blocks' spans (transformers'
//     return_assistant_tokens_mask);
//   - otherwise by rendering prefixes (as Megatron-Bridge and others do): for assistant
//     message i, P = render(messages[:i], add_generation_prompt=true) and
//     F = render(messages[:i+1]); the span is [len(P), len(F)). Each P must be a
//     prefix of F and each F a prefix of the whole text; a template that rewrites
//     earlier turns (Qwen3 drops the reasoning of turns before the last user message)
//     is not prefix-stable and gets FailedPrecondition naming the turn — use
//     render_assistant_turns then.
StatusOr<RenderedConversation> render_assistant_spans(
    const JinjaChatTemplate& tmpl, const nlohmann::ordered_json& messages,
    const nlohmann::ordered_json& extra = nlohmann::ordered_json::object());

// One example per assistant message i: messages[:i+1] rendered, with the single span of
// message i. Works for every template (each example is exactly what the model sees when
// it generates turn i), at the cost of repeating the earlier turns.
StatusOr<std::vector<RenderedConversation>> render_assistant_turns(
    const JinjaChatTemplate& tmpl, const nlohmann::ordered_json& messages,
    const nlohmann::ordered_json& extra = nlohmann::ordered_json::object());

// "r1_zero" -> kR1Zero, "plain" -> kPlain; InvalidArgument naming the value otherwise.
// (Built-ins only; parse_chat_template_spec also reads `model` and .jinja paths.)
StatusOr<ChatTemplateKind> parse_chat_template_kind(std::string_view name);
// The inverse of parse_chat_template_kind.
std::string_view chat_template_kind_name(ChatTemplateKind kind);

}  // namespace r1kit::data
