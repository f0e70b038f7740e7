// `r1kit tokenizer train|encode|decode`: train a SentencePiece model on a corpus, and
// look at what a tokenizer (SentencePiece .model, tokenizer.json, or a checkpoint
// directory; data/tokenizer.h) does to a text or a list of ids, one at a time or as JSONL
// (docs/tokenizers.md, "The CLI").
// `r1kit tokenizer render`: a checkpoint's chat template applied to conversations
// (data/chat_template.h, docs/chat_templates.md).
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "apps/commands.h"
#include "core/json.h"
#include "data/chat_template.h"
#include "data/tokenizer.h"

namespace r1kit::apps {
namespace {
using data::Tokenizer;
using data::TokenizerTrainOptions;

// Flags of `tokenizer train`.
struct TrainArgs {
  std::vector<std::string> inputs;        // --input (repeatable)
  std::string out;                        // --out
  TokenizerTrainOptions opts;             // everything else
  std::vector<std::string> user_symbols;  // --user-symbols, when given
  bool no_user_symbols = false;           // --no-user-symbols
  bool no_split_digits = false;           // --no-split-digits
  bool no_byte_fallback = false;          // --no-byte-fallback
};

StatusOr<std::vector<int32_t>> parse_ids(const std::string& text) {
  std::vector<int32_t> ids;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const size_t b = item.find_first_not_of(" \t");
    const size_t e = item.find_last_not_of(" \t");
    if (b == std::string::npos) continue;
    item = item.substr(b, e - b + 1);
    try {
      size_t used = 0;
      const long long v = std::stoll(item, &used);
      if (used != item.size() || v < INT32_MIN || v > INT32_MAX) throw std::invalid_argument(item);
      ids.push_back(static_cast<int32_t>(v));
    } catch (...) {
      return InvalidArgument("--ids: '{}' is not a 32-bit integer", item);
    }
  }
  if (ids.empty()) return InvalidArgument("--ids: no token ids given");
  return ids;
}

// A piece made printable: control bytes escaped, so pieces stay space-separated.
std::string printable(const std::string& piece) {
  std::string out;
  for (unsigned char c : piece) {
    if (c == '\n')
      out += "\\n";
    else if (c == '\t')
      out += "\\t";
    else if (c == '\r')
      out += "\\r";
    else if (c == ' ')
      out += "\\s";
    else if (c < 0x20 || c == 0x7f)
      out += fmt::format("\\x{:02X}", c);
    else
      out += static_cast<char>(c);
  }
  return out;
}

Status run_train(TrainArgs& a) {
  a.opts.input_files = a.inputs;
  if (a.no_user_symbols)
    a.opts.user_defined_symbols.clear();
  else if (!a.user_symbols.empty())
    a.opts.user_defined_symbols = a.user_symbols;
  a.opts.split_digits = !a.no_split_digits;
  a.opts.byte_fallback = !a.no_byte_fallback;
  RETURN_IF_ERROR(Tokenizer::train(a.opts, a.out));
  ASSIGN_OR_RETURN(Tokenizer tok, Tokenizer::load(a.out));
  std::printf("wrote %s: %s model, %d pieces (asked for at most %d)\n", a.out.c_str(),
              a.opts.model_type.c_str(), tok.vocab_size(), a.opts.vocab_size);
  std::printf("  reserved ids: unk %d, bos %d, eos %d, pad %d\n", tok.unk_id(), tok.bos_id(),
              tok.eos_id(), tok.pad_id());
  if (!a.opts.user_defined_symbols.empty()) {
    std::string syms;
    for (const std::string& s : a.opts.user_defined_symbols) {
      syms += fmt::format("{}{}={}", syms.empty() ? "" : ", ", s, tok.piece_to_id(s));
    }
    std::printf("  user symbols: %s\n", syms.c_str());
  }
  return OkStatus();
}

// Calls fn(line_number, json) for each non-empty line of the JSONL file `path`; a line
// that is not a JSON object is an error naming path:line.
Status for_each_jsonl(const std::string& path,
                      const std::function<Status(size_t, const nlohmann::json&)>& fn) {
  std::ifstream in(path);
  if (!in) return NotFound("{}: cannot open", path);
  size_t line_no = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const auto j = parse_json_or_discarded(line);
    if (j.is_discarded() || !j.is_object())
      return InvalidArgument("{}:{}: not a JSON object", path, line_no);
    RETURN_IF_ERROR(fn(line_no, j));
  }
  return OkStatus();
}

// `encode --input`: {"text": ...} per line in, {"ids": [...]} per line out, in order.
Status run_encode_jsonl(const Tokenizer& tok, const std::string& input, bool add_special) {
  return for_each_jsonl(input, [&](size_t line_no, const nlohmann::json& j) -> Status {
    if (!j.contains("text") || !j["text"].is_string())
      return InvalidArgument("{}:{}: needs a string field \"text\"", input, line_no);
    const nlohmann::json out = {{"ids", tok.encode(j["text"].get<std::string>(), add_special)}};
    std::printf("%s\n", out.dump().c_str());
    return OkStatus();
  });
}

// `decode --input`: {"ids": [...]} per line in, {"text": ...} per line out, in order.
Status run_decode_jsonl(const Tokenizer& tok, const std::string& input) {
  return for_each_jsonl(input, [&](size_t line_no, const nlohmann::json& j) -> Status {
    std::vector<int32_t> ids;
    const bool ok =
        j.contains("ids") && j["ids"].is_array() &&
        std::all_of(j["ids"].begin(), j["ids"].end(), [](const nlohmann::json& v) {
          return v.is_number_integer() && v.get<int64_t>() >= 0 && v.get<int64_t>() <= INT32_MAX;
        });
    if (!ok) return InvalidArgument("{}:{}: needs \"ids\", an array of ids >= 0", input, line_no);
    for (const auto& v : j["ids"]) ids.push_back(v.get<int32_t>());
    for (const int32_t id : ids) {
      if (id >= tok.vocab_size())
        return InvalidArgument("{}:{}: token id {} outside the vocabulary [0, {})", input, line_no,
                               id, tok.vocab_size());
    }
    // Invalid UTF-8 cannot reach JSON: decode's own output is valid (U+FFFD replaced).
    const nlohmann::json out = {{"text", tok.decode(ids)}};
    std::printf("%s\n", out.dump().c_str());
    return OkStatus();
  });
}

Status run_encode(const std::string& model, const std::string& text, const std::string& input,
                  bool pieces, bool add_special) {
  ASSIGN_OR_RETURN(Tokenizer tok, Tokenizer::load(model));
  if (!input.empty()) return run_encode_jsonl(tok, input, add_special);
  const std::vector<int32_t> ids = tok.encode(text, add_special);
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i > 0) out += pieces ? " " : ",";
    out += pieces ? printable(tok.id_to_piece(ids[i])) : std::to_string(ids[i]);
  }
  std::printf("%s\n", out.c_str());
  return OkStatus();
}

Status run_decode(const std::string& model, const std::string& ids_text, const std::string& input) {
  if (!input.empty()) {
    ASSIGN_OR_RETURN(Tokenizer tok, Tokenizer::load(model));
    return run_decode_jsonl(tok, input);
  }
  ASSIGN_OR_RETURN(std::vector<int32_t> ids, parse_ids(ids_text));
  ASSIGN_OR_RETURN(Tokenizer tok, Tokenizer::load(model));
  for (int32_t id : ids) {
    if (id < 0 || id >= tok.vocab_size()) {
      return InvalidArgument("--ids: token id {} outside the vocabulary [0, {}) of {}", id,
                             tok.vocab_size(), model);
    }
  }
  std::printf("%s\n", tok.decode(ids).c_str());
  return OkStatus();
}

// Flags of `tokenizer render`.
struct RenderArgs {
  std::string model;  // --model: a checkpoint directory (tokenizer_config.json)
  std::string tmpl;   // --template: a .jinja file instead of the model's
  std::string input;  // --input: JSONL conversations
};

// One line of `tokenizer render`'s input: the conversation and its variables.
Status render_line(const data::JinjaChatTemplate& tmpl, const nlohmann::ordered_json& j,
                   std::string* text) {
  if (!j.is_object()) return InvalidArgument("not a JSON object");
  for (auto it = j.begin(); it != j.end(); ++it)
    if (it.key() != "messages" && it.key() != "add_generation_prompt" &&
        it.key() != "enable_thinking")
      return InvalidArgument(
          "unknown key \"{}\" (expected messages, add_generation_prompt, enable_thinking)",
          it.key());
  if (!j.contains("messages") || !j["messages"].is_array())
    return InvalidArgument("\"messages\" must be an array");
  const auto agp = j.value("add_generation_prompt", nlohmann::ordered_json(false));
  if (!agp.is_boolean()) return InvalidArgument("\"add_generation_prompt\" must be true or false");
  nlohmann::ordered_json extra = nlohmann::ordered_json::object();
  if (j.contains("enable_thinking")) {
    if (!j["enable_thinking"].is_boolean())
      return InvalidArgument("\"enable_thinking\" must be true or false");
    extra["enable_thinking"] = j["enable_thinking"];
  }
  ASSIGN_OR_RETURN(*text, tmpl.render(j["messages"], agp.get<bool>(), extra));
  return OkStatus();
}

Status run_render(const RenderArgs& a) {
  if (a.model.empty() == a.tmpl.empty())
    return InvalidArgument("give one of --model DIR and --template FILE.jinja");
  ASSIGN_OR_RETURN(data::JinjaChatTemplate tmpl,
                   a.model.empty() ? data::JinjaChatTemplate::load_file(a.tmpl)
                                   : data::JinjaChatTemplate::load_model_dir(a.model));
  std::ifstream in(a.input);
  if (!in) return NotFound("{}: cannot open", a.input);
  std::string line, out;
  for (int64_t lineno = 1; std::getline(in, line); ++lineno) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const auto j = parse_json_or_discarded<nlohmann::ordered_json>(line);
    std::string text;
    const Status s =
        j.is_discarded() ? InvalidArgument("not valid JSON") : render_line(tmpl, j, &text);
    if (!s.ok()) return s.with_context(fmt::format("{}:{}", a.input, lineno));
    out += nlohmann::ordered_json{{"text", text}}.dump(
               -1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) +
           "\n";
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  return OkStatus();
}

void add_render_subcommand(CLI::App& tokenizer, int* exit_code) {
  auto args = std::make_shared<RenderArgs>();
  auto* render = tokenizer.add_subcommand(
      "render",
      "Apply a checkpoint's chat template (Jinja, as transformers' apply_chat_template) to "
      "conversations: each input line {\"messages\": [...], \"add_generation_prompt\": bool, "
      "\"enable_thinking\"?: bool} becomes one output line {\"text\": ...}");
  render->add_option("--model", args->model,
                     "checkpoint directory: its chat_template.jinja or tokenizer_config.json");
  render->add_option("--template", args->tmpl, "a .jinja chat template file instead");
  render->add_option("--input", args->input, "JSONL conversations (blank lines are skipped)")
      ->required();
  render->callback([args, exit_code] { *exit_code = report(run_render(*args)); });
}

constexpr const char* kModelHelp =
    "the tokenizer: a SentencePiece .model, a tokenizer.json, or a checkpoint directory with "
    "either";

// --input FILE (JSONL), exclusive with `single`, the option that gives one item.
void add_jsonl_input(CLI::App* cmd, CLI::Option* single, std::string* input, const char* help) {
  single->excludes(cmd->add_option("--input", *input, help));
}

// The exit code of `run`, or an error when neither `single` nor --input was given.
int run_one_of(const CLI::App* cmd, const char* single, const std::string& input,
               const std::function<Status()>& run) {
  if (cmd->count(single) == 0 && input.empty())
    return report(InvalidArgument("tokenizer {}: give {} or --input", cmd->get_name(), single));
  return report(run());
}

// `tokenizer encode`.
void add_encode_command(CLI::App& tokenizer, int* exit_code) {
  struct EncodeArgs {
    std::string model;         // --model
    std::string text;          // --text
    std::string input;         // --input
    bool pieces = false;       // --pieces
    bool add_special = false;  // --add-special
  };
  auto a = std::make_shared<EncodeArgs>();
  auto* cmd = tokenizer.add_subcommand(
      "encode",
      "Print the token ids of a text, comma-separated (no BOS/EOS added unless "
      "--add-special), or of each {\"text\": ...} line of a JSONL file as {\"ids\": [...]}");
  cmd->add_option("--model", a->model, kModelHelp)->required();
  auto* pieces =
      cmd->add_flag("--pieces", a->pieces,
                    "print the pieces, space-separated, instead of ids (▁ is a space; "
                    "\\n, \\t, \\s escape control characters and spaces inside a piece)");
  add_jsonl_input(cmd, cmd->add_option("--text", a->text, "the text to encode"), &a->input,
                  "JSONL file, one {\"text\": ...} per line; prints one {\"ids\": [...]} line "
                  "each, in order");
  pieces->excludes("--input");
  cmd->add_flag("--add-special", a->add_special,
                "add the special ids the tokenizer's post-processor puts around a text (e.g. "
                "Llama 3's <|begin_of_text|>)");
  cmd->callback([a, cmd, exit_code] {
    *exit_code = run_one_of(cmd, "--text", a->input, [&] {
      return run_encode(a->model, a->text, a->input, a->pieces, a->add_special);
    });
  });
}

// `tokenizer decode`.
void add_decode_command(CLI::App& tokenizer, int* exit_code) {
  struct DecodeArgs {
    std::string model;  // --model
    std::string ids;    // --ids
    std::string input;  // --input
  };
  auto a = std::make_shared<DecodeArgs>();
  auto* cmd = tokenizer.add_subcommand(
      "decode",
      "Print the text of comma-separated token ids (BOS/EOS/PAD print nothing), or of each "
      "{\"ids\": [...]} line of a JSONL file as {\"text\": ...}");
  cmd->add_option("--model", a->model, kModelHelp)->required();
  add_jsonl_input(cmd, cmd->add_option("--ids", a->ids, "comma-separated token ids, e.g. 5,17,42"),
                  &a->input,
                  "JSONL file, one {\"ids\": [...]} per line; prints one {\"text\": ...} line "
                  "each, in order");
  cmd->callback([a, cmd, exit_code] {
    *exit_code =
        run_one_of(cmd, "--ids", a->input, [&] { return run_decode(a->model, a->ids, a->input); });
  });
}

}  // namespace

void add_tokenizer_command(CLI::App& root, int* exit_code) {
  auto* tokenizer = root.add_subcommand(
      "tokenizer",
      "Train SentencePiece tokenizers and inspect how a tokenizer (SentencePiece or "
      "tokenizer.json) splits text");
  tokenizer->require_subcommand(1);

  auto train_args = std::make_shared<TrainArgs>();
  auto* train = tokenizer->add_subcommand(
      "train",
      "Train a SentencePiece model (BPE by default, with byte fallback and single-digit "
      "pieces, identity normalization, no dummy prefix) on text files, one sentence per "
      "line, and write MODEL atomically");
  TrainArgs& t = *train_args;
  train->add_option("--input", t.inputs, "corpus file, one sentence per line (repeatable)")
      ->required()
      ->check(CLI::ExistingFile);
  train->add_option("--out", t.out, "output .model file")->required();
  train
      ->add_option("--vocab-size", t.opts.vocab_size,
                   "upper bound on the number of pieces, reserved and user symbols included; "
                   "with byte fallback at least 256 + those")
      ->capture_default_str();
  train->add_option("--model-type", t.opts.model_type, "bpe or unigram")
      ->check(CLI::IsMember({"bpe", "unigram"}))
      ->capture_default_str();
  train
      ->add_option("--user-symbols", t.user_symbols,
                   "comma-separated pieces that always encode to one id "
                   "(default: <think>,</think>,<answer>,</answer>)")
      ->delimiter(',');
  train->add_flag("--no-user-symbols", t.no_user_symbols, "train without user symbols");
  train->add_flag("--no-split-digits", t.no_split_digits,
                  "let digits merge into multi-digit pieces");
  train->add_flag("--no-byte-fallback", t.no_byte_fallback,
                  "unknown characters become <unk> instead of UTF-8 byte pieces");
  train
      ->add_option("--character-coverage", t.opts.character_coverage,
                   "share of the corpus's characters given their own piece")
      ->capture_default_str();
  train
      ->add_option("--normalization", t.opts.normalization,
                   "identity, nmt_nfkc, nfkc, nmt_nfkc_cf or nfkc_cf")
      ->capture_default_str();
  train->add_flag("--hard-vocab-limit", t.opts.hard_vocab_limit,
                  "fail unless exactly --vocab-size pieces can be made (off: a small corpus "
                  "gives a smaller vocabulary)");
  train->add_option("--threads", t.opts.num_threads, "trainer threads (0: all cores)")
      ->capture_default_str();
  train->add_option("--seed", t.opts.seed, "SentencePiece's random seed")->capture_default_str();
  train->callback([train_args, exit_code] { *exit_code = report(run_train(*train_args)); });

  add_encode_command(*tokenizer, exit_code);
  add_decode_command(*tokenizer, exit_code);
  add_render_subcommand(*tokenizer, exit_code);
}

}  // namespace r1kit::apps
