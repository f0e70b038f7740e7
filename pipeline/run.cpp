#include "pipeline/run.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/json.h"
#include "core/logging.h"
#include "core/stop_signal.h"
#include "core/timer.h"
#include "eval/evaluate.h"
#include "eval/report.h"
#include "reward/plugin.h"
#include "reward/reward.h"
#include "rollout/engine_settings.h"
#include "rollout/local_source.h"
#include "train/checkpoint.h"
#include "train/distributed.h"

namespace r1kit::pipeline {
namespace fs = std::filesystem;

namespace {

bool wants(const RunRecipe& r, const std::string& stage) {
  return std::find(r.run.stages.begin(), r.run.stages.end(), stage) != r.run.stages.end();
}

bool exists(const std::string& path) {
  std::error_code ec;
  return fs::exists(path, ec);
}

// The JSON in `path`; discarded (is_discarded()) when unreadable or not JSON, null when
// missing.
nlohmann::json read_json_file(const std::string& path) {
  if (!exists(path)) return nlohmann::json();
  StatusOr<std::string> text = read_file(path);
  return text.ok() ? parse_json_or_discarded(*text)
                   : nlohmann::json(nlohmann::json::value_t::discarded);
}

// Evaluates the model in `model_dir` on the held-out problems; writes `out_json` (creating
// its directory).
Status evaluate_model(const RunRecipe& r, const std::string& model_dir, const std::string& name,
                      const std::string& out_json) {
  data::TaskSection requested = r.task;
  requested.eval_size = std::max(requested.eval_size, r.eval.problems);
  // The prompt format the model records, unless the recipe names one.
  data::ResolvedPromptFormat format;
  ASSIGN_OR_RETURN(const data::TaskSection ts, requested.with_model_format(model_dir, &format));
  ASSIGN_OR_RETURN(data::TaskSource task, data::TaskSource::create(ts, model_dir));
  ASSIGN_OR_RETURN(data::Tokenizer tok, data::Tokenizer::load(model_dir));
  ASSIGN_OR_RETURN(reward::CombinedReward rewards,
                   reward::build_task_rewards(r.reward, ts.default_rewards()));
  const rollout::EngineSettings engine{r.grpo.rollout.max_batch, r.grpo.rollout.decode_threads};
  ASSIGN_OR_RETURN(auto source, rollout::LocalRolloutSource::from_checkpoint(
                                    model_dir, engine.engine_options()));
  eval::EvalOptions o;
  o.k = r.eval.k;
  o.temperature = r.eval.temperature;
  o.max_new_tokens = r.eval.max_new_tokens;
  o.max_problems = r.eval.problems;
  o.seed = r.task.seed;
  // Every completion, for the report's sample completions (eval/report.h).
  o.records_path = fs::path(out_json).replace_extension(".records.jsonl").string();
  ASSIGN_OR_RETURN(eval::EvalReport rep, eval::evaluate(*source, tok, task, rewards, o));
  auto j = rep.to_json();
  j["model"] = model_dir;
  j["name"] = name;
  j["recipe"] = stage_inputs(r, "eval_" + name);  // compared when the file is reused
  std::error_code ec;
  fs::create_directories(fs::path(out_json).parent_path(), ec);
  RETURN_IF_ERROR(write_file_atomic(out_json, j.dump(2) + "\n"));
  R1_LOG(info,
         "eval {}: pass@1 (mean@{}) {:.3f}, pass@{} {:.3f}, greedy pass@1 {:.3f}, format {:.3f}",
         name, rep.k, rep.pass_at_1, rep.k, rep.pass_at_k, rep.greedy_pass_at_1, rep.format_rate);
  if (const std::string w = eval::low_format_rate_warning(rep.format_rate, format); !w.empty())
    R1_LOG(warn, "eval {}: {}", name, w);
  return OkStatus();
}

// RUN/timing.json: {"sft": {"seconds": s, "steps": n}, "grpo": {...}}.
nlohmann::json read_timing(const std::string& run_dir) {
  nlohmann::json j = read_json_file(run_dir + "/timing.json");
  return j.is_object() ? j : nlohmann::json::object();
}

Status add_timing(const std::string& run_dir, const std::string& stage, double seconds,
                  int64_t steps) {
  auto j = read_timing(run_dir);
  auto& e = j[stage];
  if (!e.is_object()) e = nlohmann::json::object();
  e["seconds"] = e.value("seconds", 0.0) + seconds;
  e["steps"] = e.value("steps", int64_t{0}) + steps;
  return write_file_atomic(run_dir + "/timing.json", j.dump(2) + "\n");
}

// The stage whose final model GRPO starts from.
std::string grpo_start_stage(const RunRecipe& r) {
  return wants(r, "sft") || !wants(r, "pretrain") ? "sft" : "pretrain";
}

// The run-recipe keys whose change leaves a finished stage's output valid: those the
// single-stage commands let a resume change (sft::resumable_keys, grpo::resumable_keys,
// spelled as `r1kit run` spells them), less the step counts, and the run section.
const std::vector<std::string>& reusable_keys() {
  static const std::vector<std::string> keys = [] {
    std::vector<std::string> out = {"run", "dist"};
    auto add = [&](const std::string& key, const std::string& from, const std::string& to) {
      if (key.rfind(from, 0) == 0 && key.substr(from.size()) != "steps")
        out.push_back(to + key.substr(from.size()));
    };
    for (const auto& k : sft::resumable_keys()) {
      add(k, "train.", "pretrain.train.");
      add(k, "train.", "sft.train.");
    }
    for (const auto& k : grpo::resumable_keys()) {
      add(k, "grpo.", "grpo.train.");
      add(k, "rollout.", "grpo.rollout.");
    }
    return out;
  }();
  return keys;
}

// Whether the evaluation in `path` of stage `name`'s model was made from the recipe now
// (or before evaluations recorded theirs); else a warning naming the key: it is redone.
bool eval_current(const RunRecipe& r, const std::string& name, const std::string& path) {
  const nlohmann::json saved = read_json_file(path);
  if (!saved.is_object() || !saved.contains("recipe")) return true;
  const nlohmann::json now = stage_inputs(r, "eval_" + name);
  const std::string key = train::first_changed_key(saved["recipe"], now, reusable_keys());
  if (key.empty()) return true;
  R1_LOG(warn, "eval {}: {} was made with {}={}, the recipe now has {}: evaluating again", name,
         path, key, train::json_at_path(saved["recipe"], key).dump(),
         train::json_at_path(now, key).dump());
  return false;
}

}  // namespace

nlohmann::json stage_inputs(const RunRecipe& r, const std::string& stage) {
  const nlohmann::json all = config_to_json(r);
  nlohmann::json out = nlohmann::json::object();
  auto take = [&](std::initializer_list<const char*> keys) {
    for (const char* k : keys) out[k] = all[k];
  };
  auto merge = [&](const std::string& other) { out.update(stage_inputs(r, other)); };
  if (stage == "pretrain") {
    take({"model", "tokenizer", "task", "pretrain"});
  } else if (stage == "sft") {
    take({"model", "tokenizer", "task", "sft"});
    if (wants(r, "pretrain")) merge("pretrain");
  } else if (stage == "grpo") {
    merge(grpo_start_stage(r));
    if (wants(r, "pretrain")) merge("pretrain");  // its problems are not GRPO's prompts
    take({"reward", "reward_plugins", "grpo"});
  } else if (stage == "control") {
    merge("grpo");  // the SFT + GRPO time decides the control's steps
    merge("sft");
  } else if (stage.rfind("eval_", 0) == 0) {
    merge(stage.substr(5));
    take({"reward", "reward_plugins", "eval"});
  }
  return out;
}

std::vector<std::string> expand_grpo_spellings(const std::vector<std::string>& overrides) {
  std::vector<std::string> out;
  for (const std::string& o : overrides) {
    const std::string key = o.substr(0, o.find('='));
    if (key.rfind("rollout.", 0) == 0) {
      out.push_back("grpo." + o);
    } else if (key.rfind("grpo.", 0) == 0 && key.rfind("grpo.train.", 0) != 0 &&
               key.rfind("grpo.rollout.", 0) != 0 && key != "grpo.train" && key != "grpo.rollout") {
      out.push_back("grpo.train." + o.substr(5));
    } else {
      out.push_back(o);
    }
  }
  return out;
}

StatusOr<StageReuse> finished_stage_reuse(const RunRecipe& r, const std::string& stage) {
  const std::string dir = r.run.dir + "/" + stage;
  const nlohmann::json saved = read_json_file(dir + "/" + kStageRecipeFile);
  if (!saved.is_object()) {
    R1_LOG(warn, "stage {}: {} has no {} (made before stages recorded their recipe); reused as is",
           stage, dir, kStageRecipeFile);
    return StageReuse::kReuse;
  }
  const nlohmann::json now = stage_inputs(r, stage);
  std::vector<std::string> may_change = reusable_keys();
  const std::string steps_key = stage + ".train.steps";
  bool more_steps = false;
  for (std::string key; !(key = train::first_changed_key(saved, now, may_change)).empty();) {
    const nlohmann::json &was = train::json_at_path(saved, key),
                         &is = train::json_at_path(now, key);
    if (key == steps_key && was.is_number_integer() && is.is_number_integer() &&
        is.get<int64_t>() > was.get<int64_t>()) {
      more_steps = true;
      may_change.push_back(key);
      continue;
    }
    return FailedPrecondition(
        "stage {}: {} was made with {}={}, the recipe now has {}; restore the key, or use another "
        "run.dir (this stage and the ones after it would have to run again)",
        stage, dir, key, was.dump(), is.dump());
  }
  if (!more_steps) return StageReuse::kReuse;
  if (train::latest_checkpoint(dir).empty())
    return FailedPrecondition(
        "stage {}: {} raised from {} to {}, but {}/checkpoints has no checkpoint to continue "
        "from; restore the key, or use another run.dir",
        stage, steps_key, train::json_at_path(saved, steps_key).dump(),
        train::json_at_path(now, steps_key).dump(), dir);
  return StageReuse::kContinue;
}

double grpo_time_box(const RunRecipe& r, double elapsed_minutes, double eval_minutes) {
  const double own = r.grpo.train.max_minutes;
  if (r.run.max_minutes <= 0) return own;
  constexpr double kReportMinutes = 0.5;
  double left = r.run.max_minutes - elapsed_minutes - eval_minutes - kReportMinutes;
  if (own > 0) left = std::min(left, own);
  return std::max(left, 1e-6);  // positive: 0 would mean no box; one step always exceeds it
}

StatusOr<sft::SftRecipe> control_recipe(const RunRecipe& r) {
  const auto t = read_timing(r.run.dir);
  const double t_sft = t.contains("sft") ? t["sft"].value("seconds", 0.0) : 0.0;
  const double t_grpo = t.contains("grpo") ? t["grpo"].value("seconds", 0.0) : 0.0;
  const int64_t n_sft = t.contains("sft") ? t["sft"].value("steps", int64_t{0}) : 0;
  if (t_sft <= 0 || n_sft <= 0 || t_grpo <= 0)
    return FailedPrecondition(
        "stage control needs the SFT and GRPO training times in {}/timing.json (run the sft "
        "and grpo stages of this recipe first)",
        r.run.dir);
  sft::SftRecipe s = sft_recipe(r);
  s.checkpoint.dir = r.run.dir + "/control";
  // The SFT model's own tokenizer files (tokenizer.model or tokenizer.json), whichever it has.
  s.tokenizer.path = r.run.dir + "/sft/final";
  // The SFT run's steps per second, for the SFT + GRPO time; the schedule (warm-up,
  // cosine) spans the whole longer run, as a user giving SFT that budget would set it.
  s.train.steps = static_cast<int64_t>(std::llround(n_sft * (t_sft + t_grpo) / t_sft));
  s.train.max_minutes = 0;
  return s;
}

Status RunRecipe::validate() const {
  for (const auto& s : run.stages)
    if (s != "pretrain" && s != "sft" && s != "grpo" && s != "control" && s != "eval" &&
        s != "report")
      return InvalidArgument(
          "run.stages: unknown stage '{}' (pretrain, sft, grpo, control, eval, report)", s);
  return task.validate();
}

sft::PretrainRecipe pretrain_recipe(const RunRecipe& r) {
  sft::PretrainRecipe p;
  p.model = r.model;
  p.tokenizer = r.tokenizer;
  p.task = r.task;  // the corpus: its first training problems, never the held-out ones
  p.data.n_examples = r.pretrain.n_examples;
  p.data.holdout_fraction = r.pretrain.holdout_fraction;
  p.train = r.pretrain.train;
  p.checkpoint.dir = r.run.dir + "/pretrain";
  p.dist = r.dist;
  return p;
}

sft::SftRecipe sft_recipe(const RunRecipe& r) {
  sft::SftRecipe s;
  s.model = r.model;
  s.tokenizer = r.tokenizer;
  if (wants(r, "pretrain")) {  // SFT on the base model, with its tokenizer
    s.model.from = r.run.dir + "/pretrain/final";
    s.tokenizer.path = s.model.from;  // the directory: its tokenizer.json or tokenizer.model
  }
  s.task = r.task;  // SFT learns its first training problems, never the held-out ones
  s.data.pack = r.sft.pack;
  s.data.max_seq_len = r.sft.max_seq_len;
  s.data.holdout_fraction = r.sft.holdout_fraction;
  s.data.n_examples = r.sft.n_examples;
  s.train = r.sft.train;
  s.checkpoint.dir = r.run.dir + "/sft";
  s.dist = r.dist;
  return s;
}

grpo::GrpoRecipe grpo_recipe(const RunRecipe& r) {
  grpo::GrpoRecipe g;
  g.model.from = r.run.dir + "/" + grpo_start_stage(r) + "/final";
  g.model.compute = r.model.compute;
  g.task = r.task;
  g.reward = r.reward;
  g.reward_plugins = r.reward_plugins;
  g.rollout = r.grpo.rollout;
  g.grpo = r.grpo.train;
  // RL prompts are problems the earlier stages did not train on (R1's cold-start data
  // and RL prompts are separate sets): the training stream from the first unused index.
  uint64_t used = grpo_start_stage(r) == "sft" ? static_cast<uint64_t>(r.sft.n_examples) : 0;
  if (wants(r, "pretrain")) used = std::max(used, static_cast<uint64_t>(r.pretrain.n_examples));
  g.grpo.first_problem = std::max(g.grpo.first_problem, used);
  g.checkpoint.dir = r.run.dir + "/grpo";
  g.dist = r.dist;
  return g;
}

namespace {

// finished_stage_reuse of every listed stage whose final model exists, all checked before
// any stage runs, so that a refusal comes before the work.
StatusOr<std::map<std::string, StageReuse>> check_finished_stages(const RunRecipe& r) {
  std::map<std::string, StageReuse> finished;
  for (const char* name : {"pretrain", "sft", "grpo", "control"}) {
    if (!wants(r, name) || !exists(r.run.dir + "/" + name + "/final/model.safetensors")) continue;
    ASSIGN_OR_RETURN(finished[name], finished_stage_reuse(r, name));
  }
  return finished;
}

}  // namespace

StatusOr<RunResult> run_pipeline(const RunRecipe& r, const grpo::RolloutFactory& make_source) {
  RETURN_IF_ERROR(r.validate());
  RETURN_IF_ERROR(reward::load_reward_plugins(r.reward_plugins));  // before rewards are built
  // In a data-parallel job every rank trains each stage; rank 0 alone evaluates and
  // writes the run's records, timing and report while the others wait.
  RETURN_IF_ERROR(train::join_process_group(r.dist));
  train::DataParallel& dp = train::process_group();
  const bool rank0 = dp.rank() == 0;
  const auto t_run = std::chrono::steady_clock::now();
  RunResult out;
  const std::string pretrain_final = r.run.dir + "/pretrain/final";
  const std::string sft_final = r.run.dir + "/sft/final";
  const std::string grpo_final = r.run.dir + "/grpo/final";
  const std::string control_final = r.run.dir + "/control/final";
  ASSIGN_OR_RETURN(const auto finished, check_finished_stages(r));
  auto stage = [&](const std::string& name) {
    if (!wants(r, name)) return false;
    const auto it = finished.find(name);
    if (it != finished.end() && it->second == StageReuse::kReuse) {
      R1_LOG(info, "stage {}: output exists, skipped", name);
      out.skipped.push_back(name);
      return false;
    }
    R1_LOG(
        info, "stage {}{}", name,
        it != finished.end() ? ": step count raised, continuing from its newest checkpoint" : "");
    out.ran.push_back(name);
    return true;
  };
  auto stopped = [&](const std::string& name) {
    out.stopped_in = name;
    return out;
  };
  auto timing = [&](const std::string& name, double seconds, int64_t steps) {
    return rank0 ? add_timing(r.run.dir, name, seconds, steps) : OkStatus();
  };
  auto record = [&](const std::string& name) {
    if (!rank0) return OkStatus();
    return write_file_atomic(r.run.dir + "/" + name + "/" + kStageRecipeFile,
                             stage_inputs(r, name).dump(2) + "\n");
  };

  if (stage("pretrain")) {
    const auto t0 = std::chrono::steady_clock::now();
    ASSIGN_OR_RETURN(auto res, sft::run_pretrain(pretrain_recipe(r)));
    RETURN_IF_ERROR(timing("pretrain", seconds_since(t0), res.steps_run));
    if (!res.finished) return stopped("pretrain");  // train.stop_after or Ctrl-C: rerun resumes
    RETURN_IF_ERROR(record("pretrain"));
  }
  if (stage("sft")) {
    if (wants(r, "pretrain") && !exists(pretrain_final + "/model.safetensors"))
      return FailedPrecondition("stage sft starts from {} (run the pretrain stage first)",
                                pretrain_final);
    const auto t0 = std::chrono::steady_clock::now();
    ASSIGN_OR_RETURN(auto res, sft::run_sft(sft_recipe(r)));
    RETURN_IF_ERROR(timing("sft", seconds_since(t0), res.steps_run));
    if (!res.finished) return stopped("sft");
    RETURN_IF_ERROR(record("sft"));
  }
  const std::string eval_dir = r.run.dir + "/grpo";
  if (stage("grpo")) {
    grpo::GrpoRecipe g = grpo_recipe(r);
    if (!exists(g.model.from + "/model.safetensors"))
      return FailedPrecondition("stage grpo starts from {} (run the {} stage first)", g.model.from,
                                grpo_start_stage(r));
    if (r.run.max_minutes > 0) {
      // Evaluate the starting model now, to know what the evaluation after GRPO costs.
      const std::string start = grpo_start_stage(r);
      const std::string path = eval_dir + "/eval_" + start + ".json";
      if (rank0 && wants(r, "eval") && !exists(path)) {
        const auto t0 = std::chrono::steady_clock::now();
        RETURN_IF_ERROR(evaluate_model(r, g.model.from, start, path));
        RETURN_IF_ERROR(timing("eval_" + start, seconds_since(t0), 0));
      }
      dp.barrier();
      const auto t = read_timing(r.run.dir);
      const double eval_min = wants(r, "eval") && t.contains("eval_" + start)
                                  ? t["eval_" + start].value("seconds", 0.0) / 60.0
                                  : 0.0;
      const double elapsed = seconds_since(t_run) / 60.0;
      g.grpo.max_minutes = grpo_time_box(r, elapsed, eval_min);
      R1_LOG(info,
             "run.max_minutes={}: GRPO's time box is {:.2f} min ({:.2f} min spent, {:.2f} kept "
             "for the evaluation)",
             r.run.max_minutes, g.grpo.max_minutes, elapsed, eval_min);
    }
    const auto t0 = std::chrono::steady_clock::now();
    ASSIGN_OR_RETURN(auto res, grpo::run_grpo(g, make_source));
    RETURN_IF_ERROR(timing("grpo", seconds_since(t0), res.steps_run));
    if (!res.finished) return stopped("grpo");
    RETURN_IF_ERROR(record("grpo"));
  }
  if (stage("control")) {
    ASSIGN_OR_RETURN(sft::SftRecipe cr, control_recipe(r));
    R1_LOG(info, "stage control: SFT only, {} steps (the SFT + GRPO time at the SFT's pace)",
           cr.train.steps);
    ASSIGN_OR_RETURN(auto res, sft::run_sft(cr));
    if (!res.finished) return stopped("control");
    RETURN_IF_ERROR(record("control"));
  }
  if (wants(r, "eval") && rank0) {
    std::error_code ec;
    fs::create_directories(eval_dir, ec);
    bool any = false;
    for (const auto& [name, model] :
         {std::pair<std::string, std::string>{"pretrain", pretrain_final},
          {"sft", sft_final},
          {"grpo", grpo_final},
          {"control", control_final}}) {
      const std::string path = eval_dir + "/eval_" + name + ".json";
      if (!exists(model + "/model.safetensors") || (exists(path) && eval_current(r, name, path)))
        continue;
      if (stop_requested()) return stopped("eval");
      any = true;
      RETURN_IF_ERROR(evaluate_model(r, model, name, path));
    }
    (any ? out.ran : out.skipped).push_back("eval");
  }
  if (stop_requested()) return stopped("eval");
  if (wants(r, "report") && rank0) {
    std::vector<std::string> warnings;
    ASSIGN_OR_RETURN(out.report_path,
                     eval::write_report(r.run.dir, r.run.dir + "/report.html", &warnings));
    for (const auto& w : warnings) R1_LOG(warn, "report: {}", w);
    out.ran.push_back("report");
    R1_LOG(info, "report: {}", out.report_path);
  }
  return out;
}

}  // namespace r1kit::pipeline
