// `r1kit run RECIPE`: the whole R1 story in one command. Stages, each skipped when its
// output already exists (so an interrupted run continues where it stopped; the SFT and
// GRPO stages also resume from their own checkpoints):
//   sft     cold-start SFT on the task's step-by-step traces   -> RUN/sft/final
//   grpo    GRPO from the SFT model                             -> RUN/grpo/final
//   control the fair control: SFT only, same data and recipe, for the steps that fit
//           the SFT + GRPO time (opt-in)                        -> RUN/control/final
//   eval    held-out evaluation of every model there is (pass@1 = mean@k, pass@k, maj@k,
//           greedy pass@1, format rate)              -> RUN/grpo/eval_{sft,grpo,control}.json
//   report  HTML page over the GRPO metrics and both evaluations -> RUN/report.html
// RUN/timing.json keeps the training seconds and steps of the sft and grpo stages
// (summed over resumed invocations); the control stage reads it. With run.max_minutes the
// SFT model is evaluated right after SFT (its seconds go to timing.json as "eval_sft"), so
// that GRPO's time box leaves room for the GRPO model's evaluation.
// One task section feeds every stage (each stage's recipe gets a copy), so the held-out
// problems are never trained on (data/task_source.h). The SFT and GRPO sections are those of `r1kit
// sft` and `r1kit grpo` (same keys, same meaning).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/status.h"
#include "data/task_source.h"
#include "grpo/trainer.h"
#include "policy/model_config.h"
#include "sft/pretrain.h"
#include "sft/sft.h"

namespace r1kit::pipeline {

struct RunSection {
  std::string dir = "runs/r1-tiny";                                     // run directory
  std::vector<std::string> stages = {"sft", "grpo", "eval", "report"};  // in this order
  // Wall-time budget of one `r1kit run` invocation, in minutes; 0 = none. GRPO's time
  // box shrinks to what is left once the stages before it and the evaluation are paid
  // for, so a slower machine gets fewer GRPO steps, not a longer run. See grpo_time_box.
  double max_minutes = 0;
  void visit(ConfigVisitor& v) {
    v.field("dir", dir, "run directory: RUN/sft, RUN/grpo, RUN/report.html");
    v.field("stages", stages,
            "stages to run, a subset of [pretrain, sft, grpo, control, eval, report] (pretrain: "
            "a base model on the task corpus, which SFT or else GRPO starts from; control: SFT "
            "only for the time SFT + GRPO took, the fair baseline)");
    v.field("max_minutes", max_minutes,
            "wall-time budget of the whole invocation; GRPO's time box shrinks to what is left "
            "after the earlier stages and the evaluation (0 = none)",
            Range::at_least(0));
  }
};

// R1-Zero's base model: causal-LM training on the task's training problems rendered with
// their solutions (every token is a target, the prompt too). With no sft stage, GRPO starts
// from this model; with one, SFT does.
struct PretrainStage {
  int64_t n_examples = 8000;       // training problems in the corpus
  double holdout_fraction = 0.02;  // of the token stream, for the eval loss
  sft::TrainSection train;         // steps, batch, seq_len, optimizer, ...
  void visit(ConfigVisitor& v) {
    v.field("n_examples", n_examples, "training problems in the corpus", Range::at_least(2));
    v.field("holdout_fraction", holdout_fraction, "share of the token stream held out",
            Range::between(0, 0.5));
    v.section("train", train, "the training loop (the keys of `r1kit pretrain`'s train section)");
  }
};

struct SftStage {
  int64_t n_examples = 8000;       // training problems whose traces SFT learns
  bool pack = true;                // pack samples into rows
  int64_t max_seq_len = 256;       // row length
  double holdout_fraction = 0.02;  // of the examples, for the eval loss
  sft::SftTrainSection train;      // steps, batch, optimizer, ...
  void visit(ConfigVisitor& v) {
    v.field("n_examples", n_examples, "training problems used for SFT", Range::at_least(2));
    v.field("pack", pack, "pack several samples per row");
    v.field("max_seq_len", max_seq_len, "row length in tokens", Range::at_least(8));
    v.field("holdout_fraction", holdout_fraction, "examples held out for the eval loss",
            Range::between(0, 0.5));
    v.section("train", train, "SFT training loop (the keys of `r1kit sft`'s train section)");
  }
};

struct GrpoStage {
  grpo::RolloutSection rollout;  // group size, prompts per step, sampling
  grpo::GrpoTrainSection train;  // steps, loss, optimizer, ...
  void visit(ConfigVisitor& v) {
    v.section("rollout", rollout, "sampling (the keys of `r1kit grpo`'s rollout section)");
    v.section("train", train, "the RL loop (the keys of `r1kit grpo`'s grpo section)");
  }
};

struct EvalStage {
  int64_t problems = 200;       // held-out problems (task.eval_size is raised to this)
  int64_t k = 8;                // samples per problem
  double temperature = 1.0;     // sampling temperature of the k samples
  int64_t max_new_tokens = 64;  // completion cap
  void visit(ConfigVisitor& v) {
    v.field("problems", problems, "held-out problems evaluated", Range::at_least(1));
    v.field("k", k, "samples per problem (pass@1 is their mean accuracy)", Range::at_least(1));
    v.field("temperature", temperature, "sampling temperature", Range::positive());
    v.field("max_new_tokens", max_new_tokens, "completion cap in tokens", Range::at_least(1));
  }
};

struct RunRecipe {
  RunSection run;
  policy::ModelConfig model;  // the policy SFT starts from (a preset, or model.from)
  train::TokenizerSection tokenizer;
  data::TaskSection task;
  std::vector<reward::RewardSpec> reward;  // empty = the task's checker + format
  // Reward plug-in libraries (.so) loaded before `reward` is built.
  std::vector<std::string> reward_plugins;
  PretrainStage pretrain;
  SftStage sft;
  GrpoStage grpo;
  EvalStage eval;
  train::DistSection dist;
  void visit(ConfigVisitor& v) {
    v.section("run", run, "run directory and stages");
    v.section("model", model, "the policy SFT starts from");
    v.section("tokenizer", tokenizer, "tokenizer: path, else trained on the SFT examples");
    v.section("task", task, "the task of every stage, and its held-out problems");
    v.field("reward", reward,
            "list of {name, weight, role, ...args} (docs/rewards.md); empty = the task's "
            "checker + format");
    v.field("reward_plugins", reward_plugins,
            "reward plug-in libraries (.so) loaded at start, before `reward` is built; "
            "relative paths resolve against the current directory");
    v.section("pretrain", pretrain, "base-model stage (R1-Zero: GRPO with no SFT)");
    v.section("sft", sft, "cold-start SFT stage");
    v.section("grpo", grpo, "GRPO stage");
    v.section("eval", eval, "evaluation stage");
    v.section("dist", dist, "threads");
  }
  Status validate() const;
};

// The recipes each stage runs, as `r1kit pretrain` / `r1kit sft` / `r1kit grpo` would read
// them. SFT starts from RUN/pretrain/final when the pretrain stage is listed; GRPO from
// RUN/sft/final when the sft stage is listed, else from RUN/pretrain/final.
sft::PretrainRecipe pretrain_recipe(const RunRecipe& r);
sft::SftRecipe sft_recipe(const RunRecipe& r);
grpo::GrpoRecipe grpo_recipe(const RunRecipe& r);
// GRPO's time box in minutes under run.max_minutes: the budget less the minutes spent so
// far in this invocation, less what the evaluation still needs (`eval_minutes`, one
// model's evaluation: the GRPO model's takes about as long as the SFT model's, measured
// just before), less half a minute for the report; never more than grpo.train.max_minutes
// when that is set; over budget, a box of 1e-6 (GRPO runs one step). Without a budget,
// grpo.train.max_minutes as it is.
double grpo_time_box(const RunRecipe& r, double elapsed_minutes, double eval_minutes);
// The control stage's SFT recipe: sft_recipe(r) in RUN/control, with RUN/sft's tokenizer
// and as many steps as fit the SFT + GRPO seconds of RUN/timing.json at the SFT stage's
// pace. FailedPrecondition until both stages have run.
StatusOr<sft::SftRecipe> control_recipe(const RunRecipe& r);

// What a stage's output is made from: the sections of the run recipe (config_to_json,
// `r1kit run`'s key names) that decide it, its earlier stages' included ("eval_NAME":
// the evaluation of stage NAME's model). A finished stage stores it as
// RUN/STAGE/recipe.json (an evaluation: as "recipe" in its JSON).
nlohmann::json stage_inputs(const RunRecipe& r, const std::string& stage);
inline constexpr const char* kStageRecipeFile = "recipe.json";

// What a rerun does with a stage whose final model exists: reuse it when its recorded
// recipe equals the recipe now up to keys that do not change what is computed (those
// the single-stage commands let a resume change, train/checkpoint.h, step counts
// excepted); continue it from its newest checkpoint when only its own step count was
// raised (<stage>.train.steps); else FailedPrecondition naming the key and both values.
// A stage made before recipes were recorded is reused, with a warning.
enum class StageReuse { kReuse, kContinue };
StatusOr<StageReuse> finished_stage_reuse(const RunRecipe& r, const std::string& stage);

// `r1kit run`'s overrides in `r1kit grpo`'s spelling, so that one path names one concept
// in both commands: grpo.KEY (KEY of `r1kit grpo`'s grpo section, e.g. grpo.steps=50) is
// grpo.train.KEY, and rollout.KEY (rollout.group_size=4) is grpo.rollout.KEY. Every
// other override, the run recipe's own spellings included, is returned as it is.
std::vector<std::string> expand_grpo_spellings(const std::vector<std::string>& overrides);

struct RunResult {
  std::vector<std::string> ran, skipped;  // stage names
  std::string report_path;                // RUN/report.html when the report stage ran
  // The stage that stopped early (train.stop_after, or Ctrl-C: core/stop_signal.h); the
  // stages after it did not run, and rerunning the command resumes. Empty: not stopped.
  std::string stopped_in;
};

StatusOr<RunResult> run_pipeline(const RunRecipe& recipe,
                                 const grpo::RolloutFactory& make_source = {});

}  // namespace r1kit::pipeline
