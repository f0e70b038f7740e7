// The set-up every trainer shares (pretrain, sft, grpo; distill through sft), written
// once: the threads and the run directory, the tokenizer, the seeded model, AdamW, the
// resume from the newest checkpoint (refused when the recipe changed a key that changes
// what is computed), the parameter count in the log, and the metrics writer. Then the
// run's checkpoints and final model through the same object.
//
//   RETURN_IF_ERROR(train::prepare_run(r.dist, r.checkpoint, r.model.from));
//   ASSIGN_OR_RETURN(auto tok, train::resolve_tokenizer(r.tokenizer, r.model.from, dir, {}));
//   ASSIGN_OR_RETURN(auto run, train::TrainingRun::start(opts));
//   for (step = run.start_step; ...) { ...; RETURN_IF_ERROR(run.save(step + 1)); }
//   ASSIGN_OR_RETURN(auto final_dir, run.save_final());
#pragma once

#include <torch/torch.h>

#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/metrics.h"
#include "core/status.h"
#include "data/prompt_format.h"
#include "data/tokenizer.h"
#include "policy/model.h"
#include "policy/model_config.h"
#include "train/data_parallel.h"
#include "train/grad_sync.h"
#include "train/optim.h"
#include "train/sections.h"

namespace r1kit::train {

// Sets LibTorch's intra-op threads from dist.threads (0 keeps LibTorch's default; on a
// 2-vCPU machine one thread is fastest, as a second makes the many small ops of a training
// step slower: bench/RESULTS.md) and creates the run directory. The first call of every
// trainer. A `model_from` (the recipe's model.from) that does not exist is an error naming
// the key and the commands that make one. In a job started by torchrun (or mpirun, SLURM)
// it joins the job's process group first (train/distributed.h, docs/distributed.md).
Status prepare_run(const DistSection& dist, const CheckpointSection& checkpoint,
                   const std::string& model_from = "");

// A loaded tokenizer and the file it came from (copied into every checkpoint).
struct ResolvedTokenizer {
  data::Tokenizer tokenizer;
  std::string path;
};

// Trains a tokenizer into `path` (called only when the run has none yet).
using TrainTokenizerFn = std::function<Status(const std::string& path)>;

// The run's tokenizer: tokenizer.path when set (a file or a directory, as
// data::Tokenizer::load takes); else model.from's tokenizer.json or tokenizer.model (a model
// to continue from brings its own ids; an error names the key when it has none); else
// RUN/tokenizer.model, trained by `train_one` (on rank 0; the others wait) when it does not
// exist yet. Without
// `train_one` (a trainer that cannot make one) the last case is an error naming the keys.
StatusOr<ResolvedTokenizer> resolve_tokenizer(const TokenizerSection& section,
                                              const std::string& model_from,
                                              const std::string& run_dir,
                                              const TrainTokenizerFn& train_one);

// The console line of the language-model trainers (pretrain, sft, distill): loss (mean
// over the log window), eval_loss, lr, grad_norm, tokens/s, MoE aux loss.
std::vector<ConsoleMetric> lm_console_metrics();

// Whether this invocation ends after the step that just finished, with a checkpoint and
// without finishing training: `stop_after` steps run (0 = off), or a SIGINT/SIGTERM
// (core/stop_signal.h). Never after the last step, which finishes training instead.
bool stop_invocation(int64_t steps_run, int64_t stop_after, bool last);
// Logs why an invocation stopped (`stop_after_key`, e.g. "train.stop_after", or the
// signal) and that running the same command again resumes.
void log_stopped(int64_t steps_run, const char* stop_after_key);

struct TrainingRunOptions {
  policy::ModelConfig model;     // the recipe's model section
  OptimConfig optim;             // AdamW and schedule
  CheckpointSection checkpoint;  // run directory, cadence, resume
  DistSection dist;              // the gradient buckets' size (dist.bucket_mb)
  int64_t vocab_size = 0;        // the tokenizer's; the model must have at least as many ids
  uint64_t seed = 1;             // seed_everything and the fresh model's init
  std::string tokenizer_path;    // copied into every checkpoint and the final model
  // Recorded in every checkpoint's and the final model's tokenizer_config.json
  // (data/prompt_format.h): the chat template and task the model is trained with.
  std::optional<data::PromptFormat> prompt_format;
  nlohmann::json recipe;           // config_to_json(recipe): saved, and compared on resume
  nlohmann::json recipe_defaults;  // config_to_json of a default recipe (check_resume_compatible)
  std::vector<std::string> may_change;  // dotted keys that may differ on resume
  std::string log_note;                 // appended to the start-up log line
  // Optimizer steps skipped in a row (train/optim.h, guarded_step) that end the run, and
  // the recipe key that sets it, named in the error (and free to change on resume).
  int64_t max_skipped_steps = 10;
  std::string max_skipped_key = "train.max_skipped_steps";
  // The run samples with the rollout engine in this process on another thread while it
  // trains (GRPO with rollout.overlap and no remote workers): dist.threads = 0 then means
  // one LibTorch thread (training_threads). A run that generates and trains in turns
  // (on-policy distillation, GRPO without overlap) leaves it false: the engine holds its
  // own thread to one intra-op thread while it generates (rollout/engine.h).
  bool generates = false;
};

// LibTorch's intra-op threads for a training run (DistSection::threads):
//   threads > 0: that many;
//   threads = 0 (auto): one where the run generates beside its training (`generates`:
//     rollout.overlap's generation thread takes the other core); otherwise all `cores` where the
//     step's GEMMs run on LibTorch's threads: bf16 compute (oneDNN's) or f32 with
//     `blas_shares_openmp` (OpenBLAS's OpenMP build, core/blas_threads.h). f32 with OpenBLAS's own
//     pool: one (that pool splits each GEMM over the cores already, and a second LibTorch thread
//     beside it oversubscribes them).
// `cores`: this rank's share of the machine (usable_cores()).
int training_threads(int64_t threads, bool bf16_compute, bool generates, int cores,
                     bool blas_shares_openmp);

// The cores this process may run on (its CPU affinity) divided among the ranks that a
// launcher started on this machine (LOCAL_WORLD_SIZE), at least 1.
int usable_cores();

// The options of a recipe whose `train` section holds optim, seed and max_skipped_steps
// beside its model, checkpoint and dist sections (pretrain, SFT, distillation); the
// caller adds what differs (prompt_format, may_change).
template <class Recipe>
TrainingRunOptions run_options(const Recipe& r, int64_t vocab_size, std::string tokenizer_path) {
  TrainingRunOptions ro;
  ro.model = r.model;
  ro.optim = r.train.optim;
  ro.checkpoint = r.checkpoint;
  ro.dist = r.dist;
  ro.vocab_size = vocab_size;
  ro.seed = r.train.seed;
  ro.tokenizer_path = std::move(tokenizer_path);
  ro.recipe = config_to_json(r);
  ro.recipe_defaults = config_to_json(Recipe{});
  ro.max_skipped_steps = r.train.max_skipped_steps;
  return ro;
}

// A model in training with its optimizer, where it resumed, and its metrics writer; in a
// data-parallel job (train::process_group() of more than one rank) also the gradient
// synchronisation of its parameters (train/grad_sync.h). Rank 0 alone writes metrics,
// checkpoints and the final model; every rank resumes from them.
class TrainingRun {
 public:
  // Seeds, builds the model, makes AdamW, resumes from the newest complete checkpoint of
  // checkpoint.dir when checkpoint.resume (FailedPrecondition naming the first changed key
  // outside may_change), broadcasts rank 0's weights to every rank, logs the parameter
  // count and opens RUN/metrics.jsonl and RUN/tensorboard (on rank 0 only; lines after
  // the resumed step are dropped; a fresh run starts both empty). Temporaries of a save
  // that was killed (RUN/checkpoints/*.tmp.*, RUN/final.tmp.*) are removed first.
  static StatusOr<TrainingRun> start(TrainingRunOptions options);

  policy::TransformerImpl& model() { return *model_; }
  const policy::Transformer& module() const { return model_; }
  torch::optim::AdamW& optimizer() { return *optimizer_; }
  MetricsWriter& metrics() { return *metrics_; }
  // The data-parallel group for this model: rank, world size, collectives, and gradient
  // sums overlapped with the backward pass. One process: every call is the identity.
  DataParallel& dp() { return sync_ ? *sync_ : process_group(); }
  bool is_rank0() { return dp().rank() == 0; }
  int64_t start_step() const { return start_step_; }
  // The checkpoint resumed from ("" for a fresh run) and its trainer_state.json.
  const std::string& resume_dir() const { return resume_dir_; }
  const nlohmann::json& resumed_state() const { return resumed_state_; }
  const TrainingRunOptions& options() const { return options_; }
  // Whether training computes in bf16: model.compute resolved on this CPU
  // (train/compute.h). Trainers hold compat::CpuAutocastGuard(bf16_compute()) over their
  // forward and backward passes.
  bool bf16_compute() const { return bf16_compute_; }

  // Sets the learning rate of `step` (0-based) of `total_steps` and returns it.
  double set_lr_for_step(int64_t step, int64_t total_steps);
  // Whether the step that just finished (`step_done`, 1-based) ends with a checkpoint:
  // every checkpoint.every steps, the last step, or a stop.
  bool checkpoint_due(int64_t step_done, bool last, bool stop) const;
  // Counts the step that just finished (`step_done`, 1-based) as skipped (its optimizer
  // update was dropped for a non-finite number, train/optim.h) or taken. From the first
  // skip on, `m` gets train/skipped_steps (cumulative over this invocation). After
  // max_skipped_steps skipped steps in a row: FailedPrecondition naming the key, which
  // ends the run with a non-zero exit (the weights are those of the last good step).
  Status count_step(int64_t step_done, bool skipped, std::map<std::string, double>& m);

  // Writes RUN/checkpoints/step-{step_done} with trainer_state.json = `state` plus the
  // recipe and step; `extra` writes a trainer's own files into the directory. Rank 0
  // writes; every rank returns once it has.
  Status save(int64_t step_done, nlohmann::json state = nlohmann::json::object(),
              const std::function<Status(const std::string& dir)>& extra = {});
  // Writes RUN/final (rank 0; every rank returns once it is written) and returns its path.
  StatusOr<std::string> save_final();

 private:
  TrainingRunOptions options_;
  policy::Transformer model_{nullptr};
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  std::unique_ptr<MetricsWriter> metrics_;
  std::unique_ptr<GradientSync> sync_;  // more than one rank only
  int64_t start_step_ = 0;
  int64_t skipped_steps_ = 0, skipped_in_a_row_ = 0;
  bool bf16_compute_ = false;
  std::string resume_dir_;
  nlohmann::json resumed_state_;
  // The run's threads (training_threads), and OpenBLAS's own pool (not its OpenMP build)
  // held to one thread while LibTorch has more; the previous counts come back when the
  // run ends.
  struct Threads;
  std::shared_ptr<Threads> threads_;
};

}  // namespace r1kit::train
