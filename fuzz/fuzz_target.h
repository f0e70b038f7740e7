// Fuzz targets: one function per parser that reads files or text r1kit did not write
// itself (docs/testing.md, "Fuzzing"). Each takes arbitrary bytes and runs its parser the
// way r1kit's commands do, then checks what the parser promises about what it accepted.
//
// The same functions run in two places:
// - fuzz/libfuzzer_main.cpp wraps one of them as LLVMFuzzerTestOneInput, one binary per
//   target (clang, -DR1KIT_FUZZ=ON, scripts/fuzz.sh);
// - tests/fuzz/corpus_replay_test.cpp feeds them every file of fuzz/corpus/<target>/ in
//   the regular g++ build, so CI checks that each committed input still parses or fails
//   cleanly.
//
// What counts as a bug (the libFuzzer binary aborts; the replay test fails):
// - a memory error or undefined behaviour (AddressSanitizer, UBSan in the fuzz build);
// - a hang (libFuzzer's -timeout) or an allocation past its -rss_limit_mb;
// - any exception escaping the parser: every entry point here returns Status, and bad
//   input must come back as one, never as a throw;
// - a Status with code kInternal (core/status.h: "a bug: an invariant of r1kit itself was
//   broken") or with an empty message;
// - a broken promise about accepted input, checked by the target (for example: a recipe
//   r1kit prints with dump_config loads again to the same recipe).
// Any other non-OK Status is an expected rejection: the input was bad and the message
// says why. Outcome tells the two clean results apart, so the replay test can also check
// that a committed valid seed is still accepted.
//
// Thread-safety: none needed; libFuzzer and the test call one target at a time.
#pragma once

#include <cstdint>
#include <ostream>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>

#include "core/status.h"

namespace r1kit::fuzz {

enum class Outcome {
  kAccepted,  // the parser took the input and every promise held
  kRejected,  // the parser refused it with a clear error
};

// Thrown by bug(): a finding. The libFuzzer driver prints it and aborts; the replay test
// reports it as a failure.
class FuzzBug : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

// Raises FuzzBug naming the target and what went wrong.
[[noreturn]] void bug(std::string_view target, std::string_view what);

// The outcome of a parser's Status: OK is accepted; kInternal or an empty message is a
// bug (raised); anything else is a rejection.
Outcome classify(std::string_view target, const Status& status);

// The bytes as text (parsers take std::string_view; no copy).
inline std::string_view as_text(std::span<const uint8_t> data) {
  return {reinterpret_cast<const char*>(data.data()), data.size()};
}

// Two inputs in one: the text before the first `sep` and the text after it ("" when
// there is no `sep`).
struct TwoParts {
  std::string_view first;
  std::string_view second;
};
inline TwoParts split_at(std::string_view text, char sep) {
  const size_t at = text.find(sep);
  if (at == std::string_view::npos) return {text, {}};
  return {text.substr(0, at), text.substr(at + 1)};
}

// ---- The targets (fuzz/<name>.cpp) ----

// A whole safetensors file (core/safetensors.h, SafetensorsFile::from_bytes), then every
// tensor loaded as open() promises it can be.
Outcome safetensors_header(std::span<const uint8_t> data);
// A Hugging Face config.json (policy/model_args.h, parse_hf_config); an accepted config
// written back with args_to_hf_config must load again to the same JSON.
Outcome hf_config(std::span<const uint8_t> data);
// A recipe YAML file, bound as each recipe command binds it (r1kit run, grpo, sft,
// distill, pretrain); an accepted recipe printed with dump_config loads to the same text.
Outcome recipe_yaml(std::span<const uint8_t> data);
// `r1kit reward score` input JSONL (reward/jsonl.h, score_jsonl) with every rule-based
// built-in reward; the output has one JSON record a scored input.
Outcome reward_jsonl(std::span<const uint8_t> data);
// The math answer parser (reward/math_verify.h): the first line is a gold answer, the rest
// a completion; extraction from every source, normalisation and answers_match. Accepted
// when the completion's answer is right (and not hedged).
Outcome math_answer(std::span<const uint8_t> data);
// A tokenizer.json (data/hf_tokenizer.h, HfTokenizer::parse); an accepted tokenizer
// encodes and decodes text, the input's own bytes included.
Outcome tokenizer_json(std::span<const uint8_t> data);

struct Target {
  std::string_view name;  // the fuzz/corpus/<name>/ folder and the r1kit_fuzz_<name> binary
  Outcome (*run)(std::span<const uint8_t> data);
};

// gtest prints a Target by its name.
inline void PrintTo(const Target& target, std::ostream* out) {
  *out << target.name;
}

// Every target, in the order above.
std::span<const Target> targets();

}  // namespace r1kit::fuzz
