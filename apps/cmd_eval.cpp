// `r1kit eval`: evaluate a checkpoint on a task's held-out problems.
//
// Loads the checkpoint into the in-process rollout engine (rollout/local_source.h) with
// its tokenizer.model, builds the task's held-out set (data/task_source.h, eval_size =
// --n) and its default rewards (the task's accuracy checker first, then the R1 format
// reward), samples k completions per problem (plus one greedy one with --greedy) and
// prints pass@1 (mean@k), pass@k, maj@k, format rate, mean length and finish reasons
// (eval/evaluate.h has the definitions). --json writes the same as one JSON object,
// --records one JSON object per problem with every completion (--format score: one line
// per completion, the input of `r1kit reward score`).
#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "apps/commands.h"
#include "apps/engine_flags.h"
#include "core/atomic_file.h"
#include "core/config.h"
#include "core/logging.h"
#include "data/prompt_format.h"
#include "data/task_source.h"
#include "data/tokenizer.h"
#include "eval/evaluate.h"
#include "reward/plugin.h"
#include "reward/reward.h"
#include "rollout/local_source.h"

namespace r1kit::apps {
namespace {

struct EvalFlags {
  std::string model;
  std::string tokenizer;
  data::TaskSection task;
  std::string task_path;                  // --task-path: a jsonl task's file
  std::string chat_template = "auto";     // --chat-template, into task.chat_template
  bool task_given = false;                // --task, --task-seed, --n were on the command line
  bool task_seed_given = false;
  bool n_given = false;
  std::vector<std::string> task_args;     // KEY=VALUE onto the task section (max_a=9)
  std::string rewards;                    // YAML list; empty = the task's default rewards
  std::vector<std::string> plugins;       // reward plug-in libraries loaded first
  int64_t n = 500;
  int64_t k = 8;
  int64_t samples = 0;
  double temperature = 1.0;
  int64_t max_new_tokens = 256;
  bool greedy = false;
  uint64_t seed = 0;
  std::string json;
  std::string records;
  std::string format = "problems";  // of --records: problems | score
  int64_t batch = 16;
  EngineFlags engine;
  bool quiet = false;
};

// The task section the model records (its name, seed, held-out size and own keys) when
// no --task or --task-path names another: the held-out problems of the run that trained
// it. --task-seed and --n still apply; the template flags are applied by the caller.
Status adopt_recorded_task(EvalFlags& f) {
  if (!f.task_path.empty()) return OkStatus();
  ASSIGN_OR_RETURN(const std::optional<data::PromptFormat> rec, data::read_prompt_format(f.model));
  if (!rec || !rec->task.is_object() ||
      (f.task_given && rec->task.value("name", "") != f.task.name))
    return OkStatus();
  const uint64_t seed = f.task.seed;
  const bool prefill_think = f.task.prefill_think;
  ASSIGN_OR_RETURN(
      f.task, load_config_string<data::TaskSection>(rec->task.dump(), {},
                                                    f.model + "/tokenizer_config.json r1kit.task"));
  if (f.task_seed_given) f.task.seed = seed;
  f.task.prefill_think = prefill_think;
  if (!f.n_given) f.n = f.task.eval_size;
  R1_LOG(info, "task {} (seed {}, {} held-out problems), as {}/tokenizer_config.json records",
         f.task.name, f.task.seed, f.n, f.model);
  return OkStatus();
}

Status run_eval(EvalFlags f) {
  RETURN_IF_ERROR(reward::load_reward_plugins(f.plugins));  // before rewards are built
  f.engine.apply_threads();
  if (f.task.name == "jsonl" && f.task_path.empty())
    return InvalidArgument("--task jsonl needs --task-path FILE");
  RETURN_IF_ERROR(adopt_recorded_task(f));
  if (!f.task_path.empty()) {
    f.task.name = "jsonl";
    std::string quoted;  // a single-quoted YAML scalar: any path, as written
    for (char c : f.task_path) quoted += c == '\'' ? std::string("''") : std::string(1, c);
    f.task_args.insert(f.task_args.begin(), "path='" + quoted + "'");
  }
  RETURN_IF_ERROR(data::apply_task_args(f.task, f.task_args));
  f.task.chat_template = f.chat_template;
  f.task.eval_size = f.n;
  // The template the model records unless --chat-template names another (then a
  // contradiction is a warning).
  data::ResolvedPromptFormat format;
  ASSIGN_OR_RETURN(f.task, f.task.with_model_format(f.model, &format, "--chat-template"));
  ASSIGN_OR_RETURN(data::TaskSource task, data::TaskSource::create(f.task, f.model));
  if (!task.eval_shortfall().empty())
    std::fprintf(stderr, "--n %lld: %zu held-out problems, as %s\n", static_cast<long long>(f.n),
                 task.eval().size(), task.eval_shortfall().c_str());

  const std::string tok_path = f.tokenizer.empty() ? data::tokenizer_file_in(f.model) : f.tokenizer;
  if (!std::filesystem::exists(tok_path))
    return NotFound("{}: no tokenizer (pass --tokenizer FILE)", tok_path);
  ASSIGN_OR_RETURN(data::Tokenizer tok, data::Tokenizer::load(tok_path));

  ASSIGN_OR_RETURN(std::vector<reward::RewardSpec> specs,
                   reward::parse_reward_specs(f.rewards, "--rewards"));
  ASSIGN_OR_RETURN(reward::CombinedReward rewards,
                   reward::build_task_rewards(specs, f.task.default_rewards()));

  // Cache slots only as long as the longest prompt plus the completion cap.
  int64_t longest = 1;
  for (const auto& p : task.eval())
    longest = std::max<int64_t>(longest, tok.encode(task.render(p)).size());
  ASSIGN_OR_RETURN(const policy::LoadOptions load, f.engine.load_options());
  rollout::EngineSettings engine = f.engine.engine;
  engine.max_batch = std::max<int64_t>(1, engine.max_batch);
  const rollout::EngineOptions eo = engine.engine_options(longest + f.max_new_tokens);
  ASSIGN_OR_RETURN(auto source, rollout::LocalRolloutSource::from_checkpoint(f.model, eo, load));
  if (eo.max_seq_len > source->model_args().max_seq_len)
    return InvalidArgument(
        "prompts of up to {} tokens + --max-new-tokens {} exceed the model's max_seq_len {}",
        longest, f.max_new_tokens, source->model_args().max_seq_len);

  eval::EvalOptions o;
  o.k = f.k;
  o.n = f.samples;
  o.temperature = f.temperature;
  o.max_new_tokens = f.max_new_tokens;
  o.greedy_pass1 = f.greedy;
  o.seed = f.seed;
  o.batch = f.batch;
  o.records_path = f.records;
  o.records_for_scoring = f.format == "score";
  if (!f.quiet)
    o.on_progress = [](int64_t done, int64_t total) {
      std::fprintf(stderr, "\r%lld/%lld problems", static_cast<long long>(done),
                   static_cast<long long>(total));
      if (done == total) std::fprintf(stderr, "\n");
    };
  ASSIGN_OR_RETURN(eval::EvalReport report, eval::evaluate(*source, tok, task, rewards, o));

  std::printf("model %s, task %s, chat template %s%s\n%s", f.model.c_str(), f.task.name.c_str(),
              f.task.chat_template.c_str(), f.task.prefill_think ? " with prefill_think" : "",
              report.table().c_str());
  std::fflush(stdout);  // the warning after the table
  const std::string low_format = eval::low_format_rate_warning(report.format_rate, format);
  if (!low_format.empty()) R1_LOG(warn, "{}", low_format);
  if (!f.json.empty()) {
    nlohmann::json j = report.to_json();
    j["model"] = f.model;
    j["task"] = f.task.name;
    if (!f.task_path.empty()) j["task_path"] = f.task_path;
    j["problems_requested"] = f.n;  // --n; "problems" is how many there were
    if (!task.eval_shortfall().empty()) j["problems_shortfall"] = task.eval_shortfall();
    if (!low_format.empty()) j["warning"] = low_format;
    j["task_seed"] = f.task.seed;
    j["task_section"] = config_to_json(f.task);
    j["seed"] = f.seed;
    RETURN_IF_ERROR(write_file_atomic(f.json, j.dump(2) + "\n"));
    std::fprintf(stderr, "wrote %s\n", f.json.c_str());
  }
  return OkStatus();
}

}  // namespace

void add_eval_command(CLI::App& root, int* exit_code) {
  auto* cmd = root.add_subcommand(
      "eval",
      "Evaluate a checkpoint on a task's held-out problems: pass@1 (mean over k samples), "
      "pass@k (unbiased), maj@k, greedy pass@1, format rate, mean length (docs/eval.md)");
  static EvalFlags f;
  cmd->add_option("--model", f.model, "checkpoint directory")->required();
  cmd->add_option("--tokenizer", f.tokenizer,
                  "tokenizer: .model, tokenizer.json or a directory (default: "
                  "<model>/tokenizer.json, else <model>/tokenizer.model)");
  cmd->add_option("--task", f.task.name,
                  "the task (r1kit task list; default: the task section the model records, "
                  "else arithmetic)")
      ->check(CLI::IsMember(data::TaskRegistry::global().names()))
      ->capture_default_str();
  cmd->add_option("--task-path", f.task_path, "JSONL problems (implies --task jsonl)");
  cmd->add_option("--task-seed", f.task.seed,
                  "the task's problem seed (the held-out set of a run with task.seed=S)")
      ->capture_default_str();
  cmd->add_option("--chat-template", f.chat_template,
                  "auto (the template the model records, else r1_zero) | r1_zero | plain | "
                  "model (the checkpoint's own Jinja template) | FILE.jinja")
      ->capture_default_str();
  cmd->add_flag("--prefill-think", f.task.prefill_think,
                "prompts end in \" <think>\" (default: as the model records)");
  cmd->add_option("--task-arg", f.task_args,
                  "KEY=VALUE of the recipe's task section, repeatable: the problem settings of "
                  "the run being evaluated, e.g. --task-arg max_a=9 --task-arg max_c=99");
  cmd->add_option("--rewards", f.rewards,
                  "reward list as YAML, as a recipe's reward: (default: the task's checker + "
                  "format); the task's checker, or the reward with role: accuracy, decides "
                  "correctness");
  cmd->add_option("--plugin", f.plugins,
                  "reward plug-in library to load before --rewards is built (repeatable)");
  cmd->add_option("--n", f.n,
                  "held-out problems (default: the recorded task's eval_size, else 500; fewer "
                  "when the task has fewer distinct ones, and the run says why)")
      ->capture_default_str();
  cmd->add_option("--k", f.k, "samples per problem for pass@k and maj@k")->capture_default_str();
  cmd->add_option("--samples", f.samples,
                  "samples per problem when more than k (unbiased pass@k); 0 = k");
  cmd->add_option("--temperature", f.temperature, "sampling temperature (> 0)")
      ->capture_default_str();
  cmd->add_option("--max-new-tokens", f.max_new_tokens, "completion length cap, in tokens")
      ->capture_default_str();
  cmd->add_flag("--greedy", f.greedy, "also one greedy sample per problem (greedy pass@1)");
  cmd->add_option("--seed", f.seed, "sampling seed")->capture_default_str();
  cmd->add_option("--json", f.json, "write the report as JSON here");
  cmd->add_option("--records", f.records, "write every problem's completions here (JSONL)");
  cmd->add_option("--format", f.format,
                  "of --records: problems (a line per problem, its samples and scores) | score "
                  "(a line per sample, {...metadata, prompt, completion}: `r1kit reward score "
                  "--input`)")
      ->check(CLI::IsMember({"problems", "score"}))
      ->capture_default_str();
  cmd->add_option("--batch", f.batch, "prompts per generate call")->capture_default_str();
  add_engine_flags(cmd, f.engine);
  cmd->add_flag("--quiet", f.quiet, "no progress line");
  cmd->callback([=] {
    f.task_given = cmd->count("--task") > 0;
    f.task_seed_given = cmd->count("--task-seed") > 0;
    f.n_given = cmd->count("--n") > 0;
    *exit_code = report(run_eval(f));
  });
}

}  // namespace r1kit::apps
