#include "grpo/trainer.h"

#include <cmath>

#include "core/config.h"
#include "core/logging.h"
#include "core/metric_names.h"
#include "core/metrics.h"
#include "core/parallel.h"
#include "core/timer.h"
#include "core/torch_compat.h"
#include "eval/evaluate.h"
#include "grpo/data_parallel.h"
#include "grpo/sample_log.h"
#include "grpo/step_metrics.h"
#include "grpo/update_step.h"
#include "policy/checkpoint.h"
#include "reward/plugin.h"
#include "rollout/checked_source.h"
#include "rollout/engine_settings.h"
#include "rollout/local_source.h"
#include "train/grad_sync.h"
#include "train/setup.h"

namespace r1kit::grpo {
namespace {

rollout::NamedTensors named_weights(policy::TransformerImpl& m) {
  rollout::NamedTensors out;
  for (const auto& p : m.named_parameters()) out.emplace_back(p.key(), p.value().detach());
  for (const auto& b : m.named_buffers()) out.emplace_back(b.key(), b.value().detach());
  return out;
}

void copy_weights(policy::TransformerImpl& dst, policy::TransformerImpl& src) {
  torch::NoGradGuard ng;
  auto dp = dst.named_parameters();
  for (const auto& p : src.named_parameters()) dp[p.key()].copy_(p.value());
  auto db = dst.named_buffers();
  for (const auto& b : src.named_buffers()) db[b.key()].copy_(b.value());
}

}  // namespace

const std::vector<std::string>& resumable_keys() {
  static const std::vector<std::string> keys = {
      "grpo.steps",       "grpo.stop_after",    "grpo.log_every",
      "grpo.log_samples", "grpo.eval_every",    "grpo.eval_problems",
      "grpo.max_minutes", "checkpoint",         "dist",
      "rollout.workers",  "rollout.token_file", "rollout.max_batch",
      "rollout.tls"};
  return keys;
}

Status GrpoRecipe::validate() const {
  RETURN_IF_ERROR(grpo.loss.validate());
  RETURN_IF_ERROR(task.validate());
  if (model.dtype != policy::Precision::kF32)
    return InvalidArgument(
        "model.dtype=bf16: GRPO keeps fp32 master weights; use model.compute=bf16 (or auto) for "
        "bf16 compute");
  if (grpo.mtp_coef > 0 && model.n_mtp_layers == 0)
    return InvalidArgument("grpo.mtp_coef={} needs MTP layers, but model.n_mtp_layers=0",
                           grpo.mtp_coef);
  return OkStatus();
}

GrpoTrainer::GrpoTrainer(const GrpoRecipe& recipe, train::DataParallel& dp,
                         train::ResolvedTokenizer tok, data::TaskSource tasks,
                         reward::CombinedReward rewards, train::TrainingRun run)
    : r_(recipe),
      dp_(dp),
      tok_(std::move(tok)),
      tasks_(std::move(tasks)),
      rewards_(std::move(rewards)),
      run_(std::move(run)) {}

GrpoTrainer::~GrpoTrainer() {
  wait_for_overlap();
}

void GrpoTrainer::wait_for_overlap() {
  if (!next_.valid()) return;
  // This thread's core is idle until the rollout is in: the engine's decode may take it
  // as one more decode thread meanwhile (EngineOptions::use_lent_cores).
  LendCores lend(1);
  next_.wait();
}

StatusOr<std::unique_ptr<GrpoTrainer>> GrpoTrainer::create(const GrpoRecipe& r,
                                                           const RolloutFactory& make_source,
                                                           train::DataParallel* dp) {
  RETURN_IF_ERROR(r.validate());
  RETURN_IF_ERROR(reward::load_reward_plugins(r.reward_plugins));  // before rewards are built
  RETURN_IF_ERROR(train::prepare_run(r.dist, r.checkpoint, r.model.from));

  // Tokenizer, task, rewards.
  ASSIGN_OR_RETURN(auto tok, train::resolve_tokenizer(r.tokenizer, r.model.from, r.checkpoint.dir,
                                                      /*train_one=*/{}));
  // The prompt format model.from records, unless the recipe names one (data/prompt_format.h).
  ASSIGN_OR_RETURN(const data::TaskSection task, r.task.with_model_format(r.model.from));
  ASSIGN_OR_RETURN(data::TaskSource tasks, data::TaskSource::create(task, r.model.from));
  ASSIGN_OR_RETURN(reward::CombinedReward rewards,
                   reward::build_task_rewards(r.reward, task.default_rewards()));

  // Policy and optimizer, resumed when a checkpoint exists.
  train::TrainingRunOptions ro;
  ro.model = r.model;
  ro.optim = r.grpo.optim;
  ro.checkpoint = r.checkpoint;
  ro.dist = r.dist;
  ro.vocab_size = tok.tokenizer.vocab_size();
  ro.seed = r.grpo.seed;
  ro.tokenizer_path = tok.path;
  ro.prompt_format = tasks.prompt_format();
  GrpoRecipe saved = r;  // with the template it trains with, compared on resume
  saved.task = task;
  ro.recipe = config_to_json(saved);
  ro.recipe_defaults = config_to_json(GrpoRecipe{});
  ro.may_change = resumable_keys();
  ro.max_skipped_steps = r.grpo.max_skipped_steps;
  ro.max_skipped_key = "grpo.max_skipped_steps";
  ro.log_note = r.grpo.loss.needs_reference() ? "reference: yes" : "reference: none (kl_coef = 0)";
  ro.generates = r.rollout.workers.empty() && r.rollout.overlap;
  ASSIGN_OR_RETURN(train::TrainingRun run, train::TrainingRun::start(std::move(ro)));
  train::DataParallel& ranks = dp ? *dp : run.dp();
  RETURN_IF_ERROR(check_data_parallel(r, ranks.world_size()));

  std::unique_ptr<GrpoTrainer> t(new GrpoTrainer(r, ranks, std::move(tok), std::move(tasks),
                                                 std::move(rewards), std::move(run)));
  t->step_ = t->run_.start_step();
  t->data_pos_ = t->run_.resume_dir().empty()
                     ? r.grpo.first_problem
                     : t->run_.resumed_state().value("data_pos", uint64_t{0});
  if (!t->run_.resume_dir().empty()) R1_LOG(info, "data position {}", t->data_pos_);
  t->progress_.emplace(t->step_, r.grpo.steps, console_metrics(), r.grpo.max_minutes * 60);
  ASSIGN_OR_RETURN(t->samples_,
                   SampleLog::open(r.checkpoint.dir + "/samples.jsonl", r.grpo.log_samples,
                                   t->step_));  // fresh (step 0): nothing kept
  RETURN_IF_ERROR(t->make_reference());
  RETURN_IF_ERROR(t->make_source(make_source));
  // Under dynamic sampling the collector reduces every round's rewards over the ranks. With
  // overlap it runs on the rollout thread while the update reduces on this one, so it
  // takes a group of its own (grpo/data_parallel.h); collections never overlap each other.
  if (r.rollout.overlap && r.grpo.loss.dynamic_sampling && ranks.world_size() > 1)
    t->rollout_dp_ = ranks.new_group();
  t->collector_ =
      std::make_unique<RolloutCollector>(r, t->tok_.tokenizer, t->tasks_, t->rewards_, *t->source_,
                                         t->rollout_dp_ ? *t->rollout_dp_ : t->dp_);
  // rollout.exact: the engine's exact forward in the trainer's compute precision.
  if (r.rollout.exact)
    t->collector_->set_exact(t->run_.bf16_compute() ? rollout::ExactMode::kBF16
                                                    : rollout::ExactMode::kF32);
  // rollout.compute: the engine's linear layers in the trainer's precision.
  t->collector_->set_bf16_compute(r.rollout.compute == RolloutCompute::kTrain &&
                                  t->run_.bf16_compute());
  // With overlap, generation and training take a core each: OpenBLAS splitting an sgemm
  // over the other (busy) core slows both (bench/RESULTS.md).
  if (r.rollout.overlap && r.rollout.workers.empty()) t->one_blas_thread_.emplace(1);
  t->t_start_ = SteadyClock::now();
  return t;
}

Status GrpoTrainer::make_reference() {
  if (!r_.grpo.loss.needs_reference()) return OkStatus();
  policy::TransformerImpl& model = run_.model();
  ref_ = policy::Transformer(model.args());
  copy_weights(*ref_, model);
  ref_->eval();
  for (auto& p : ref_->parameters()) p.set_requires_grad(false);
  // A resumed run continues with the reference it saved (it may have been reset since).
  if (!run_.resume_dir().empty())
    RETURN_IF_ERROR(policy::load_state(*ref_, run_.resume_dir() + "/reference.safetensors"));
  return OkStatus();
}

Status GrpoTrainer::make_source(const RolloutFactory& factory) {
  if (factory) {
    ASSIGN_OR_RETURN(source_, factory(r_, run_.model()));
  } else if (!r_.rollout.workers.empty()) {
    return InvalidArgument(
        "rollout.workers is set but this build of the trainer has no gRPC client; run it "
        "through `r1kit grpo`");
  }
  if (!source_) {
    const rollout::EngineSettings engine{r_.rollout.max_batch, r_.rollout.decode_threads};
    rollout::EngineOptions eo = engine.engine_options();
    // With overlap, this thread lends its core to the rollout while it waits for it
    // (wait_for_overlap), unless the rollout's and the trainer's threads already fill
    // the cores (a lent core would then be one more thread on a taken core).
    eo.use_lent_cores = r_.rollout.overlap &&
                        r_.rollout.decode_threads + at::get_num_threads() <= train::usable_cores();
    source_ = rollout::LocalRolloutSource::copy_of(
        run_.model(), eo, rollout::tokenizer_decoder(tok_.tokenizer), step_);
  }
  // Completions come in checked: bad ones never reach the loss (rollout/checked_source.h).
  source_ = std::make_unique<rollout::CheckedRolloutSource>(std::move(source_),
                                                            run_.model().args().vocab_size);
  // The source holds the current weights as version step_.
  return after_weight_push(source_->update_weights(named_weights(run_.model()), step_), r_, dp_);
}

StatusOr<RolloutBatch> GrpoTrainer::next_rollout() {
  StatusOr<RolloutBatch> got = next_.valid() ? next_.get() : collector_->collect(step_, data_pos_);
  RETURN_IF_ERROR(got.status());
  data_pos_ = got->data_pos_after;
  if (r_.rollout.overlap && step_ + 1 < r_.grpo.steps) {
    // Generated with this step's weights while the trainer updates them: one step stale.
    next_ = std::async(std::launch::async, [this, step = step_, pos = data_pos_] {
      return collector_->collect(step + 1, pos);
    });
  }
  return got;
}

Status GrpoTrainer::sync_weights() {
  // An overlapped rollout must finish on the weights it started with.
  wait_for_overlap();
  RETURN_IF_ERROR(
      after_weight_push(source_->update_weights(named_weights(run_.model()), step_ + 1), r_, dp_));
  if (r_.grpo.ref_reset_every > 0 && ref_ && (step_ + 1) % r_.grpo.ref_reset_every == 0)
    copy_weights(*ref_, run_.model());
  return OkStatus();
}

// Held-out accuracy on the first grpo.eval_problems problems, through the evaluation
// library (eval/evaluate.h): greedy accuracy, format and length, plus the accuracy,
// length and mean reward components of one sample at the rollout temperature (a weight-0
// `regex` reward thus tracks a behaviour on held-out problems, docs/rewards.md).
Status GrpoTrainer::evaluate(std::map<std::string, double>& m) {
  if (tasks_.eval().empty()) return OkStatus();
  wait_for_overlap();
  const auto t_eval = SteadyClock::now();
  eval::EvalOptions o;
  o.k = 1;
  o.temperature = r_.rollout.temperature;
  o.max_new_tokens = r_.rollout.max_new_tokens;
  o.greedy_pass1 = true;
  o.max_problems = r_.grpo.eval_problems;
  o.seed = r_.grpo.seed;
  o.batch = std::max<int64_t>(1, r_.rollout.max_batch);
  ASSIGN_OR_RETURN(eval::EvalReport rep,
                   eval::evaluate(*source_, tok_.tokenizer, tasks_, rewards_, o));
  m[metric::kEvalGreedyAccuracy] = rep.greedy_pass_at_1;
  m[metric::kEvalMeanLength] = rep.greedy_mean_length;
  m[metric::kEvalPassAt1] = rep.pass_at_1;
  m[metric::kEvalSampleMeanLength] = rep.mean_length;
  for (const auto& [name, mean] : rep.component_means)
    m[std::string(metric::kEvalRewardPrefix) + name] = mean;
  if (!std::isnan(rep.greedy_format_rate)) m[metric::kEvalFormat] = rep.greedy_format_rate;
  m[metric::kTimeEval] = seconds_since(t_eval);
  return OkStatus();
}

StatusOr<std::map<std::string, double>> GrpoTrainer::step() {
  if (step_ == 0 && r_.grpo.eval_every > 0) {
    // The starting point of the held-out curves: step 0, before any update.
    std::map<std::string, double> m0;
    RETURN_IF_ERROR(evaluate(m0));
    if (dp_.rank() == 0) {
      R1_LOG(info, "step 0 (before training): held-out greedy accuracy {:.3f}, sampled {:.3f}",
             m0[metric::kEvalGreedyAccuracy], m0[metric::kEvalPassAt1]);
      RETURN_IF_ERROR(run_.metrics().write(0, m0));
    }
  }
  const auto t_step = SteadyClock::now();
  StepMetrics m;
  ASSIGN_OR_RETURN(RolloutBatch ro, next_rollout());
  reduce_rollout_counts(ro, dp_);  // the job's counts (grpo/data_parallel.h)
  add_rollout_metrics(ro, step_, r_.grpo.loss.dynamic_sampling, m);
  // Samples a reward failed to score (cannot judge), cumulative over this run; logged
  // once the first failure happened (reward::Scores::failures, reward/reward.h).
  reward_failures_ += ro.reward_failures;
  if (reward_failures_ > 0)
    m[metric::kRemoteRewardFailures] = static_cast<double>(reward_failures_);
  m[metric::kLr] = run_.set_lr_for_step(step_, r_.grpo.steps);
  double ref_s = 0, train_s = 0;
  bool skipped = false;
  int64_t groups = static_cast<int64_t>(ro.groups.size());
  train::sum_over_ranks({&groups}, dp_);
  if (r_.grpo.loss.dynamic_sampling) m[metric::kDynGroupsKept] = static_cast<double>(groups);
  const bool moe = run_.model().args().n_routed_experts > 0;
  if (ro.groups.empty() && groups > 0) {  // other ranks kept groups, this one none
    const UpdateResult u = sit_out_update(run_.model(), run_.optimizer(), r_,
                                          ro.job_groups_total * r_.rollout.group_size, dp_);
    add_job_metrics(ro, nullptr, u, static_cast<bool>(ref_), moe, dp_, m);
    train_s = u.seconds;
    skipped = u.skipped_updates > 0;
  } else if (groups > 0) {
    // Reference and pi_old log-probs and the update in the same compute (train/compute.h).
    compat::CpuAutocastGuard ac(run_.bf16_compute());
    TrainBatch tb = prepare_train_batch(ro, r_, ref_ ? ref_.get() : nullptr, dp_);
    UpdateResult u = update_policy(run_.model(), run_.optimizer(), tb, r_, step_, dp_);
    add_job_metrics(ro, &tb, u, static_cast<bool>(ref_), moe, dp_, m);
    ref_s = tb.ref_seconds;
    train_s = u.seconds;
    skipped = u.skipped_updates > 0;
  } else {
    R1_LOG(warn, "step {}: no informative group after {} rounds; no update", step_ + 1, ro.rounds);
  }
  m[metric::kTimeReference] = ref_s;
  m[metric::kTimeTrain] = train_s;
  if (!m.contains(metric::kReward)) m[metric::kReward] = NAN;

  const auto t_sync = SteadyClock::now();
  RETURN_IF_ERROR(sync_weights());
  m[metric::kTimeSync] = seconds_since(t_sync);
  m[metric::kPolicyVersion] = static_cast<double>(step_ + 1);

  const double minutes = seconds_since(t_start_) / 60;
  out_of_time_ = train::any_rank(r_.grpo.max_minutes > 0 && minutes >= r_.grpo.max_minutes, dp_);
  const bool last = step_ + 1 == r_.grpo.steps || out_of_time_;
  if (r_.grpo.eval_every > 0 && ((step_ + 1) % r_.grpo.eval_every == 0 || last))
    RETURN_IF_ERROR(evaluate(m));
  m[metric::kStepTime] = seconds_since(t_step);
  m[metric::kTokensPerS] =
      static_cast<double>(ro.generated_tokens) / std::max(m[metric::kStepTime], 1e-9);
  if (dp_.rank() == 0) {
    if ((step_ + 1) % r_.grpo.log_every == 0 || last || step_ == run_.start_step())
      progress_->print(step_ + 1, m);
    if (no_signal_.update(m))
      R1_LOG(warn,
             "no learning signal for {} steps in a row: in every group all completions got the "
             "same reward (frac_reward_zero_std = 1), so every advantage is 0. Check the rewards "
             "(r1kit reward score), or raise rollout.group_size or rollout.temperature",
             NoSignalWatch::kWarnAfter);
    RETURN_IF_ERROR(samples_.log(ro, rollout::tokenizer_decoder(tok_.tokenizer), step_ + 1));
  }
  const Status counted = run_.count_step(step_ + 1, skipped, m);
  if (dp_.rank() == 0) RETURN_IF_ERROR(run_.metrics().write(step_ + 1, m));
  RETURN_IF_ERROR(counted);
  ++step_;
  return m;
}

Status GrpoTrainer::save() {
  wait_for_overlap();
  // data_pos_ is where the overlapped rollout (if any) started: a resumed run regenerates
  // it, on-policy.
  nlohmann::json state = {{"data_pos", data_pos_}, {"policy_version", step_}};
  return run_.save(step_, std::move(state), [this](const std::string& dir) -> Status {
    if (!ref_) return OkStatus();
    return policy::save_state(*ref_, dir + "/reference.safetensors");
  });
}

StatusOr<GrpoResult> GrpoTrainer::run() {
  GrpoResult result;
  while (step_ < r_.grpo.steps) {
    ASSIGN_OR_RETURN(auto m, step());
    result.rewards.push_back(m[metric::kReward]);
    result.accuracies.push_back(m.contains(metric::kAccuracy) ? m[metric::kAccuracy] : NAN);
    if (result.steps_run == 0) result.first_reward = m[metric::kReward];
    result.last_reward = m[metric::kReward];
    ++result.steps_run;
    const bool last = step_ == r_.grpo.steps || out_of_time_;
    const bool stop =
        train::any_rank(train::stop_invocation(result.steps_run, r_.grpo.stop_after, last), dp_);
    if (run_.checkpoint_due(step_, last, stop)) RETURN_IF_ERROR(save());
    if (stop) {
      wait_for_overlap();
      train::log_stopped(result.steps_run, "grpo.stop_after");
      return result;
    }
    if (out_of_time_) {
      wait_for_overlap();
      R1_LOG(info, "grpo.max_minutes={} reached after step {}", r_.grpo.max_minutes, step_);
      break;
    }
  }
  result.finished = true;
  ASSIGN_OR_RETURN(result.final_dir, run_.save_final());
  return result;
}

StatusOr<GrpoResult> run_grpo(const GrpoRecipe& recipe, const RolloutFactory& make_source,
                              train::DataParallel* dp) {
  ASSIGN_OR_RETURN(auto trainer, GrpoTrainer::create(recipe, make_source, dp));
  return trainer->run();
}

}  // namespace r1kit::grpo
