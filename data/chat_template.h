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
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "core/enum_names.h"
#include "core/status.h"

namespace r1kit::data {

enum class ChatTemplateKind {
  kR1Zero,  // "A conversation between User and Assistant. ... User: {q}. Assistant:"
  kPlain,   // "User: {q}\nAssistant:"
};
// Recipe and flag spellings.
inline constexpr EnumName<ChatTemplateKind> kChatTemplateNames[] = {
    {ChatTemplateKind::kR1Zero, "r1_zero"}, {ChatTemplateKind::kPlain, "plain"}};

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
  // default; "" drops it); for kPlain a first line before "User:" (none by default).
  std::optional<std::string> system_prompt;
};

// The prompt the model continues from:
//   kR1Zero: "{preamble} User: {question}. Assistant:"
//   kPlain:  "[{system}\n]User: {question}\nAssistant:"
// each followed by " <think>" when prefill_think.
std::string render_prompt(const ChatTemplateOptions& opts, std::string_view question);

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
SftExample render_sft_example(const ChatTemplateOptions& opts, std::string_view question,
                              std::string_view response);

// "r1_zero" -> kR1Zero, "plain" -> kPlain; InvalidArgument naming the value otherwise.
StatusOr<ChatTemplateKind> parse_chat_template_kind(std::string_view name);
// The inverse of parse_chat_template_kind.
std::string_view chat_template_kind_name(ChatTemplateKind kind);

}  // namespace r1kit::data
