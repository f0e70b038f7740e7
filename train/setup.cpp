#include "train/setup.h"

#include <sched.h>

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <thread>

#include "core/blas_threads.h"
#include "core/config.h"
#include "core/logging.h"
#include "core/metric_names.h"
#include "core/rng.h"
#include "core/stop_signal.h"
#include "train/checkpoint.h"
#include "train/compute.h"
#include "train/distributed.h"
#include "train/sharded_adamw.h"

namespace r1kit::train {
namespace fs = std::filesystem;

Status prepare_run(const DistSection& dist, const CheckpointSection& checkpoint,
                   const std::string& model_from) {
  std::error_code ec;
  if (!model_from.empty() && !fs::exists(model_from, ec))
    return NotFound(
        "model.from={}: no such directory. It is the model training starts from: the final "
        "model of an earlier run (`r1kit sft RECIPE` or `r1kit pretrain RECIPE` write "
        "RUN/final; `r1kit run RECIPE` does every stage) or a Hugging Face model directory",
        model_from);
  RETURN_IF_ERROR(join_process_group(dist));
  if (dist.threads > 0) at::set_num_threads(static_cast<int>(dist.threads));
  fs::create_directories(checkpoint.dir, ec);
  if (ec) return Internal("create {}: {}", checkpoint.dir, ec.message());
  return OkStatus();
}

StatusOr<ResolvedTokenizer> resolve_tokenizer(const TokenizerSection& section,
                                              const std::string& model_from,
                                              const std::string& run_dir,
                                              const TrainTokenizerFn& train_one) {
  std::string path = section.path;
  std::error_code ec;
  if (path.empty() && !model_from.empty()) {
    path = data::tokenizer_file_in(model_from);
    if (!fs::exists(path, ec))
      return InvalidArgument(
          "model.from={}: no tokenizer.json or tokenizer.model there; set tokenizer.path",
          model_from);
  }
  if (path.empty()) {
    if (!train_one)
      return InvalidArgument(
          "no tokenizer: set tokenizer.path, or model.from to a checkpoint that has one");
    path = run_dir + "/tokenizer.model";
    DataParallel& dp = process_group();
    if (dp.rank() == 0 && !fs::exists(path, ec)) RETURN_IF_ERROR(train_one(path));
    dp.barrier();
  }
  ASSIGN_OR_RETURN(data::Tokenizer tok, data::Tokenizer::load(path));
  return ResolvedTokenizer{std::move(tok), path};
}

std::vector<ConsoleMetric> lm_console_metrics() {
  return {metric::kLoss,
          metric::kEvalLoss,
          metric::kLr,
          {metric::kGradNorm, "gnorm"},
          {metric::kTokensPerS, "tok/s"},
          {metric::kAuxLoss, "aux"}};
}

bool stop_invocation(int64_t steps_run, int64_t stop_after, bool last) {
  if (last) return false;
  return (stop_after > 0 && steps_run >= stop_after) || stop_requested();
}

void log_stopped(int64_t steps_run, const char* stop_after_key) {
  if (stop_requested())
    R1_LOG(info, "stopped by signal {} after {} steps, checkpoint saved; rerun to resume",
           stop_signal(), steps_run);
  else
    R1_LOG(info, "stopping after {} steps ({}); rerun to resume", steps_run, stop_after_key);
}

namespace {
// The start-up log's word on ZeRO stage 1 (train/sharded_adamw.h): the share this rank
// steps, and the bytes of AdamW moments that makes (two per number).
std::string sharding_note(torch::optim::AdamW& opt, bool reduce_scatter) {
  auto* s = dynamic_cast<ShardedAdamW*>(&opt);
  if (!s) return "";
  const int64_t mine = s->shard_end() - s->shard_begin();
  const int64_t elem = opt.param_groups().front().params().empty()
                           ? 4
                           : opt.param_groups().front().params().front().element_size();
  return fmt::format(
      "; optimizer state sharded (dist.shard_optimizer): this rank steps {} of {} numbers, "
      "{:.2f} MB of AdamW moments instead of {:.2f} MB; gradients {}",
      mine, s->total_numel(), 2.0 * elem * mine / 1e6, 2.0 * elem * s->total_numel() / 1e6,
      reduce_scatter ? "reduce-scattered" : "all-reduced");
}
}  // namespace

int training_threads(int64_t threads, bool bf16_compute, bool generates, int cores,
                     bool blas_shares_openmp) {
  if (threads > 0) return static_cast<int>(threads);
  return generates || !(bf16_compute || blas_shares_openmp) ? 1 : std::max(cores, 1);
}

int usable_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  int cores = sched_getaffinity(0, sizeof(set), &set) == 0
                  ? CPU_COUNT(&set)
                  : static_cast<int>(std::thread::hardware_concurrency());
  const char* local = std::getenv("LOCAL_WORLD_SIZE");
  const int ranks = local ? std::atoi(local) : 1;
  if (ranks > 1) cores /= ranks;
  return std::max(cores, 1);
}

struct TrainingRun::Threads {
  explicit Threads(int n) : old(at::get_num_threads()) {
    at::set_num_threads(n);
    // OpenBLAS's own pool beside LibTorch's OpenMP pool on the same cores: an f32 step 2x
    // slower or worse (bench/RESULTS.md, "Threads of a training run"). Its OpenMP build
    // runs on LibTorch's threads and is left alone.
    if (n > 1 && !BlasThreadsGuard::shares_openmp()) blas.emplace(1);
  }
  ~Threads() { at::set_num_threads(old); }
  int old;
  std::optional<BlasThreadsGuard> blas;
};

StatusOr<TrainingRun> TrainingRun::start(TrainingRunOptions o) {
  TrainingRun run;
  remove_interrupted_saves(o.checkpoint.dir);
  seed_everything(o.seed);
  ASSIGN_OR_RETURN(run.model_, o.model.build(o.vocab_size, o.seed));
  if (run.model_->args().vocab_size < o.vocab_size)
    return InvalidArgument("the model's vocabulary ({}) is smaller than the tokenizer's ({})",
                           run.model_->args().vocab_size, o.vocab_size);
  DataParallel& group = process_group();
  if (o.dist.reduce_scatter && !o.dist.shard_optimizer)
    return InvalidArgument(
        "dist.reduce_scatter: true needs dist.shard_optimizer: true (only a sharded optimizer "
        "steps a range of the gradients)");
  if (o.dist.shard_optimizer && group.world_size() > 1) {
    ASSIGN_OR_RETURN(run.optimizer_,
                     ShardedAdamW::make(run.model_->named_parameters(), o.optim, group));
  } else {
    run.optimizer_ = make_adamw(run.model_->named_parameters(), o.optim);
  }
  o.may_change.push_back(o.max_skipped_key);  // changes nothing that is computed
  if (o.checkpoint.resume) run.resume_dir_ = latest_checkpoint(o.checkpoint.dir);
  if (!run.resume_dir_.empty()) {
    ASSIGN_OR_RETURN(run.resumed_state_,
                     load_train_checkpoint(*run.model_, *run.optimizer_, run.resume_dir_));
    // Keys that do not change what is computed may differ; anything else would break an
    // exact resume and is refused.
    if (run.resumed_state_.contains("recipe"))
      RETURN_IF_ERROR(check_resume_compatible(run.resumed_state_["recipe"], o.recipe, o.may_change,
                                              o.recipe_defaults));
    run.start_step_ = run.resumed_state_["step"].get<int64_t>();
    R1_LOG(info, "resuming from {} (step {})", run.resume_dir_, run.start_step_);
  }
  if (group.world_size() > 1) {
    broadcast_model(*run.model_, group);
    run.sync_ = std::make_unique<GradientSync>(run.model_->parameters(), group, o.dist.bucket_mb);
    // ZeRO stage 1 with dist.reduce_scatter: each rank receives the summed gradients of
    // the range it steps only.
    auto* s = dynamic_cast<ShardedAdamW*>(run.optimizer_.get());
    if (s && o.dist.reduce_scatter) run.sync_->scatter_to_shards(s->total_numel(), s->chunk());
    R1_LOG(info, "data parallel: {} ranks, gradients in {} buckets of up to {} MB{}",
           group.world_size(), run.sync_->n_buckets(), o.dist.bucket_mb,
           sharding_note(*run.optimizer_, o.dist.reduce_scatter));
  }
  run.bf16_compute_ = resolve_compute(o.model.compute) == policy::Precision::kBf16;
  run.threads_ = std::make_shared<Threads>(training_threads(o.dist.threads, run.bf16_compute_,
                                                            o.generates, usable_cores(),
                                                            BlasThreadsGuard::shares_openmp()));
  const auto pc = policy::count_params(run.model_->args());
  R1_LOG(info, "model: {:.2f}M parameters ({:.2f}M active), {} threads, compute {}{}{}",
         pc.total / 1e6, pc.active / 1e6, at::get_num_threads(), describe_compute(o.model.compute),
         o.log_note.empty() ? "" : ", ", o.log_note);
  const bool writes = group.rank() == 0;  // the other ranks' writer writes nothing
  ASSIGN_OR_RETURN(run.metrics_,
                   MetricsWriter::open(writes ? o.checkpoint.dir + "/metrics.jsonl" : "",
                                       writes ? o.checkpoint.dir + "/tensorboard" : "",
                                       run.start_step_));  // 0 for a fresh run: nothing kept
  run.options_ = std::move(o);
  return run;
}

double TrainingRun::set_lr_for_step(int64_t step, int64_t total_steps) {
  const double lr = lr_at(step, total_steps, options_.optim);
  set_lr(*optimizer_, lr);
  return lr;
}

bool TrainingRun::checkpoint_due(int64_t step_done, bool last, bool stop) const {
  const int64_t every = options_.checkpoint.every;
  return (every > 0 && (step_done % every == 0 || last)) || stop;
}

Status TrainingRun::count_step(int64_t step_done, bool skipped, std::map<std::string, double>& m) {
  skipped_in_a_row_ = skipped ? skipped_in_a_row_ + 1 : 0;
  if (skipped) {
    ++skipped_steps_;
    R1_LOG(warn, "step {}: non-finite loss or gradient norm; optimizer step skipped ({} in a row)",
           step_done, skipped_in_a_row_);
  }
  if (skipped_steps_ > 0) m[metric::kSkippedSteps] = static_cast<double>(skipped_steps_);
  if (skipped_in_a_row_ < options_.max_skipped_steps) return OkStatus();
  return FailedPrecondition(
      "{}={}: the last {} steps all had a non-finite loss or gradient norm and were skipped; "
      "training has diverged (lower the learning rate, check the data and the rollouts)",
      options_.max_skipped_key, options_.max_skipped_steps, skipped_in_a_row_);
}

Status TrainingRun::save(int64_t step_done, nlohmann::json state,
                         const std::function<Status(const std::string& dir)>& extra) {
  state["recipe"] = options_.recipe;
  // Every rank's bytes of optimizer state (what dist.shard_optimizer divides), and with
  // sharding the whole state gathered on rank 0, which writes it.
  std::vector<int64_t> bytes(dp().world_size(), 0);
  bytes[dp().rank()] = optimizer_state_bytes(*optimizer_);
  if (dp().world_size() > 1) {
    auto t = torch::tensor(bytes, torch::kLong);
    dp().all_reduce_sum(t);
    for (int r = 0; r < dp().world_size(); ++r) bytes[r] = t[r].item<int64_t>();
  }
  state["optimizer_state_bytes"] = bytes;
  if (auto* sharded = dynamic_cast<ShardedAdamW*>(optimizer_.get())) sharded->gather_for_save();
  Status s = OkStatus();
  if (is_rank0())
    s = save_train_checkpoint(*model_, *optimizer_, options_.checkpoint.dir, step_done,
                              std::move(state), options_.tokenizer_path,
                              options_.checkpoint.keep_last, extra, options_.prompt_format);
  dp().barrier();  // one process: nothing
  return s;
}

StatusOr<std::string> TrainingRun::save_final() {
  StatusOr<std::string> dir = options_.checkpoint.dir + "/final";
  if (is_rank0())
    dir = save_final_model(*model_, options_.checkpoint.dir, options_.tokenizer_path,
                           options_.prompt_format);
  dp().barrier();
  return dir;
}

}  // namespace r1kit::train
