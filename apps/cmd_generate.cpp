// `r1kit generate`: sample completions from a checkpoint, so a person can try a model.
//
// Runs the in-process rollout engine (rollout/engine.h): the prompt is rendered
// through an optional chat template, encoded with the checkpoint's tokenizer.model (no
// BOS, as the SFT data is), and n completions are sampled with the given settings;
// generation stops at the tokenizer's EOS unless --no-eos-stop. Prints each completion's
// text with its finish reason, length and mean log-prob, or one JSON object per
// completion with --json. --ids bypasses the tokenizer (token ids in, ids out).
// The prompt is rendered with the template the model records (data/prompt_format.h)
// unless --chat-template names another; a model without a record gets --prompt as raw
// text. --chat TEXT is a user message rendered the same way (without a record through
// the checkpoint's own Jinja template, `--chat-template model`), as a chat UI would.
// --stream prints the one sample's text as it is sampled (data::IncrementalDecoder: never
// half a character). --worker ADDR sends the request to a gRPC rollout worker (`r1kit
// rollout-worker`) instead; --model then only supplies the tokenizer and the recorded
// prompt format. A worker that cannot be reached is an error at once (UNAVAILABLE, naming
// the address); --timeout bounds the request.
#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "apps/commands.h"
#include "apps/engine_flags.h"
#include "core/atomic_file.h"
#include "core/tls_files.h"
#include "data/chat_template.h"
#include "data/prompt_format.h"
#include "data/tokenizer.h"
#include "policy/checkpoint.h"
#include "rollout/grpc/grpc_source.h"
#include "data/incremental_decoder.h"
#include "rollout/engine.h"

namespace r1kit::apps {
namespace {

struct GenerateCmdFlags {
  std::string model;
  std::string worker;      // host:port of a rollout worker; empty = in-process
  std::string token_file;  // the worker's bearer token
  TlsClientFiles tls;      // TLS to the worker: --tls-ca, --tls-cert, --tls-key
  std::string prompt;
  std::string chat;  // a user message, rendered through the model's chat template
  std::string ids;   // comma-separated token ids instead of --prompt
  std::string tokenizer;
  std::string chat_template = "auto";  // auto | none | r1_zero | plain | model | FILE.jinja
  bool prefill_think = false;
  int64_t n = 4;
  std::string exact = "off";  // off | f32 | bf16 (docs/rollout.md, "Exact mode")
  double temperature = 1.0;
  int64_t top_k = 0;
  double top_p = 1.0;
  double min_p = 0.0;
  int64_t max_new_tokens = 128;
  uint64_t seed = 0;
  std::vector<std::string> stop;
  std::vector<int64_t> stop_ids;
  bool no_eos_stop = false;
  EngineFlags engine;
  bool json = false;
  bool stream = false;
  double timeout_s = 600;  // --timeout: the whole request through --worker
};

Status print_stats(size_t prompt_tokens, const rollout::EngineStats& st) {
  std::fprintf(stderr,
               "prompt %zu tokens; %lld tokens generated in %.2f s (prefill %.3f s, decode "
               "%.2f s, %.1f tokens/s)\n",
               prompt_tokens, static_cast<long long>(st.generated_tokens), st.total_seconds,
               st.prefill_seconds, st.decode_seconds,
               st.decode_seconds > 0 ? st.generated_tokens / st.decode_seconds : 0.0);
  return OkStatus();
}

Status run_generate(const GenerateCmdFlags& f) {
  if (!f.prompt.empty() + !f.chat.empty() + !f.ids.empty() != 1)
    return InvalidArgument("give exactly one of --prompt TEXT, --chat TEXT and --ids 1,2,3");
  if (f.stream && (f.n != 1 || f.json || !f.worker.empty() || !f.ids.empty()))
    return InvalidArgument(
        "--stream prints one sample's text as it is generated in-process: it needs -n 1 and a "
        "text prompt, without --json, --ids or --worker");
  f.engine.apply_threads();
  ASSIGN_OR_RETURN(const policy::LoadOptions load, f.engine.load_options());

  // The tokenizer: --tokenizer, else the checkpoint's tokenizer.json or tokenizer.model,
  // else none.
  std::optional<data::Tokenizer> tok;
  std::string tok_path = f.tokenizer;
  if (tok_path.empty() && std::filesystem::exists(data::tokenizer_file_in(f.model)))
    tok_path = data::tokenizer_file_in(f.model);
  if (!tok_path.empty()) {
    ASSIGN_OR_RETURN(data::Tokenizer t, data::Tokenizer::load(tok_path));
    tok = std::move(t);
  }
  if (!tok && f.ids.empty())
    return FailedPrecondition(
        "{} needs a tokenizer: {} has no tokenizer.json or tokenizer.model (pass --tokenizer "
        "FILE or --ids)",
        f.chat.empty() ? "--prompt" : "--chat", f.model);

  rollout::GenerateRequest req;
  rollout::PromptInput prompt;
  if (!f.ids.empty()) {
    ASSIGN_OR_RETURN(prompt.ids, parse_id_list(f.ids));
  } else {
    std::string text = f.chat.empty() ? f.prompt : f.chat;
    // The template the model records (data/prompt_format.h); without a record raw text
    // for --prompt, the checkpoint's own Jinja template for --chat.
    ASSIGN_OR_RETURN(
        const data::ResolvedPromptFormat format,
        data::resolve_prompt_format(f.chat_template, f.prefill_think, f.model,
                                    f.chat.empty() ? "none" : "model", "--chat-template"));
    data::log_prompt_format(format);
    if (format.chat_template != "none") {
      ASSIGN_OR_RETURN(const data::ChatTemplateSpec spec,
                       data::parse_chat_template_spec(format.chat_template));
      ASSIGN_OR_RETURN(const data::ChatTemplateOptions opts,
                       data::resolve_chat_template(spec, f.model, format.prefill_think));
      ASSIGN_OR_RETURN(text, data::try_render_prompt(opts, text));
    }
    for (int32_t id : tok->encode(text)) prompt.ids.push_back(id);
  }
  req.prompts.push_back(prompt);
  req.group_size = f.n;
  req.exact = f.exact == "bf16"  ? rollout::ExactMode::kBF16
              : f.exact == "f32" ? rollout::ExactMode::kF32
                                 : rollout::ExactMode::kOff;
  auto& sp = req.sampling;
  sp.temperature = f.temperature;
  sp.top_k = f.top_k;
  sp.top_p = f.top_p;
  sp.min_p = f.min_p;
  sp.max_new_tokens = f.max_new_tokens;
  sp.seed = f.seed;
  sp.stop_strings = f.stop;
  sp.stop_token_ids = f.stop_ids;
  if (tok && !f.no_eos_stop)
    for (int64_t id : tok->stop_ids())
      if (std::find(sp.stop_token_ids.begin(), sp.stop_token_ids.end(), id) == sp.stop_token_ids.end())
        sp.stop_token_ids.push_back(id);

  std::vector<rollout::Group> groups;
  rollout::EngineStats st;
  if (f.worker.empty() && !(f.tls.ca_file.empty() && f.tls.cert_file.empty()))
    return InvalidArgument("--tls-ca/--tls-cert/--tls-key: only with --worker");
  if (!f.worker.empty()) {
    if (!(f.timeout_s > 0)) return InvalidArgument("--timeout {}: must be > 0", f.timeout_s);
    rollout::GrpcSourceOptions o;
    o.workers = {f.worker};
    o.fail_fast = true;  // one request: an unreachable worker is an error now, not later
    o.generate_timeout_s = f.timeout_s;
    o.stall_timeout_s = std::min(o.stall_timeout_s, f.timeout_s);
    o.control_timeout_s = std::min(o.control_timeout_s, f.timeout_s);
    if (!f.token_file.empty()) {
      ASSIGN_OR_RETURN(o.token, read_token_file(f.token_file));
    }
    ASSIGN_OR_RETURN(const TlsClientPem tls, read_tls_client_files(f.tls, "--tls"));
    o.tls_root_pem = tls.ca;
    o.tls_cert_pem = tls.cert;
    o.tls_key_pem = tls.key;
    ASSIGN_OR_RETURN(auto remote, rollout::make_grpc_rollout_source(o));
    StatusOr<std::vector<rollout::Group>> got = remote->generate(req);
    if (!got.ok())
      return got.status().with_context(
          fmt::format("--worker {} (--timeout {} s)", f.worker, f.timeout_s));
    groups = std::move(*got);
  } else {
    ASSIGN_OR_RETURN(policy::Transformer model, policy::load_model(f.model, load));
    rollout::EngineSettings engine = f.engine.engine;
    engine.max_batch = std::max<int64_t>(1, std::min(engine.max_batch, f.n));
    // Slots only as long as this request needs (the model's context may be far longer).
    const int64_t max_seq_len = std::max<int64_t>(
        1, std::min<int64_t>(model->args().max_seq_len,
                             static_cast<int64_t>(prompt.ids.size()) + f.max_new_tokens));
    rollout::Engine local(std::move(model), engine.engine_options(max_seq_len),
                          tok ? rollout::tokenizer_decoder(*tok) : rollout::DecodeFn{});
    // --stream: the text of the one sample as it is sampled, whole characters only.
    std::optional<data::IncrementalDecoder> stream;
    if (f.stream) stream.emplace(*tok);
    const rollout::TokenFn print_token = [&](int64_t, int64_t, int64_t id) {
      std::fputs(stream->push(id).c_str(), stdout);
      std::fflush(stdout);
    };
    ASSIGN_OR_RETURN(groups, local.generate(req, 0, {}, f.stream ? print_token : nullptr));
    st = local.last_stats();
    if (f.stream) {
      std::printf("%s\n", stream->finish().c_str());
      return print_stats(prompt.ids.size(), st);
    }
  }

  const auto& completions = groups.at(0).completions;
  for (size_t j = 0; j < completions.size(); ++j) {
    const auto& c = completions[j];
    double sum_lp = 0;
    for (float lp : c.logprobs) sum_lp += lp;
    const double mean_lp = c.logprobs.empty() ? 0.0 : sum_lp / c.logprobs.size();
    std::string text;
    if (tok) {
      std::vector<int32_t> ids32(c.token_ids.begin(), c.token_ids.end());
      text = tok->decode(ids32);
    }
    if (f.json) {
      nlohmann::json j_out;
      j_out["sample"] = j;
      j_out["token_ids"] = c.token_ids;
      j_out["logprobs"] = c.logprobs;
      j_out["finish_reason"] = rollout::finish_reason_name(c.finish_reason);
      j_out["policy_version"] = c.policy_version;
      if (tok) j_out["text"] = text;
      std::printf("%s\n", j_out.dump().c_str());
      continue;
    }
    std::printf("--- sample %zu: %zu tokens, finish %s, mean log-prob %.3f ---\n", j,
                c.token_ids.size(), rollout::finish_reason_name(c.finish_reason), mean_lp);
    if (tok) {
      std::printf("%s\n", text.c_str());
    } else {
      std::string ids;
      for (int64_t id : c.token_ids) ids += (ids.empty() ? "" : ",") + std::to_string(id);
      std::printf("%s\n", ids.c_str());
    }
  }
  if (!f.json && f.worker.empty()) return print_stats(prompt.ids.size(), st);
  return OkStatus();
}

}  // namespace

void add_generate_command(CLI::App& root, int* exit_code) {
  auto* cmd = root.add_subcommand(
      "generate",
      "Sample completions of a prompt from a checkpoint with the in-process rollout engine. "
      "Log-probs are those of the distribution sampled from: softmax(logits / temperature) "
      "truncated by top-k/top-p/min-p and renormalised (the trainer's convention; "
      "docs/rollout.md)");
  static GenerateCmdFlags f;
  cmd->add_option("--model", f.model,
                  "checkpoint directory (with --worker: only its tokenizer.model is used)")
      ->required();
  cmd->add_option("--worker", f.worker,
                  "generate through this gRPC rollout worker (host:port) instead of in-process");
  cmd->add_option("--token-file", f.token_file, "file holding the worker's bearer token");
  cmd->add_option("--tls-ca", f.tls.ca_file,
                  "with --worker: PEM CA bundle that verifies the worker (turns TLS on)");
  cmd->add_option("--tls-cert", f.tls.cert_file,
                  "with --worker: PEM client certificate for mutual TLS (with --tls-key)");
  cmd->add_option("--tls-key", f.tls.key_file, "with --worker: PEM key of --tls-cert");
  cmd->add_option("--timeout", f.timeout_s,
                  "with --worker: seconds the whole request may take; an unreachable worker "
                  "fails at once")
      ->capture_default_str();
  cmd->add_option("--prompt", f.prompt, "prompt text (encoded without BOS)");
  cmd->add_option("--chat", f.chat,
                  "a user message, rendered through the checkpoint's own chat template "
                  "(tokenizer_config.json's chat_template; --chat-template names another) with "
                  "the generation prompt, e.g. --chat \"What is 2+3?\"");
  cmd->add_option("--ids", f.ids, "prompt as comma-separated token ids instead of --prompt");
  cmd->add_option("--tokenizer", f.tokenizer,
                  "tokenizer: .model, tokenizer.json or a directory (default: "
                  "<model>/tokenizer.json, else <model>/tokenizer.model)");
  cmd->add_option("--chat-template", f.chat_template,
                  "render --prompt as a question first: auto (the template the model records; "
                  "without a record none, for --chat model) | none | r1_zero | plain | model "
                  "(the checkpoint's own Jinja template) | FILE.jinja")
      ->capture_default_str();
  cmd->add_flag("--prefill-think", f.prefill_think,
                "end the rendered prompt with \" <think>\" (a Jinja template: \"<think>\\n\"; "
                "default: as the model records)");
  cmd->add_option("-n,--n", f.n, "completions to sample")->capture_default_str();
  cmd->add_option("--temperature", f.temperature, "0 = greedy")->capture_default_str();
  cmd->add_option("--exact", f.exact,
                  "exact mode: the batch-invariant exact forward in f32 or bf16, whose "
                  "log-probs are bitwise a trainer's (docs/rollout.md, \"Exact mode\")")
      ->check(CLI::IsMember({"off", "f32", "bf16"}))
      ->capture_default_str();
  cmd->add_option("--top-k", f.top_k, "keep the k most likely tokens (0 = off)")
      ->capture_default_str();
  cmd->add_option("--top-p", f.top_p, "nucleus mass (1 = off)")->capture_default_str();
  cmd->add_option("--min-p", f.min_p, "drop tokens below min_p * p_max (0 = off)")
      ->capture_default_str();
  cmd->add_option("--max-new-tokens", f.max_new_tokens, "completion length cap, in tokens")
      ->capture_default_str();
  cmd->add_option("--seed", f.seed, "sampling seed (same seed, same completions)")
      ->capture_default_str();
  cmd->add_option("--stop", f.stop, "stop string (repeatable); the completion keeps it");
  cmd->add_option("--stop-id", f.stop_ids, "stop token id (repeatable)");
  cmd->add_flag("--no-eos-stop", f.no_eos_stop, "do not stop at the tokenizer's EOS");
  add_engine_flags(cmd, f.engine);
  cmd->add_flag("--json", f.json, "one JSON object per completion (ids, log-probs, text)");
  cmd->add_flag("--stream", f.stream,
                "print the text as it is sampled (whole characters only; needs -n 1)");
  cmd->callback([=] { *exit_code = report(run_generate(f)); });
}

}  // namespace r1kit::apps
