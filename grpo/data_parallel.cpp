#include "grpo/data_parallel.h"

#include <algorithm>
#include <cmath>
#include <iterator>

#include "core/timer.h"
#include "train/grad_sync.h"
#include "train/optim.h"

namespace r1kit::grpo {

Status check_data_parallel(const GrpoRecipe& r, int world) {
  if (world == 1) return OkStatus();
  if (r.rollout.prompts_per_step < world)
    return InvalidArgument(
        "rollout.prompts_per_step={} is global and smaller than the {} ranks; raise it to at "
        "least the world size",
        r.rollout.prompts_per_step, world);
  return OkStatus();
}

torch::Tensor gather_round_rewards(const torch::Tensor& mine, const train::Shard& shard, int64_t n,
                                   train::DataParallel& dp) {
  if (dp.world_size() == 1) return mine;
  auto all = torch::zeros({n, mine.size(1)}, torch::kDouble);
  if (shard.size() > 0) all.narrow(0, shard.begin, shard.size()).copy_(mine);
  dp.all_reduce_sum(all);  // x + 0 = x: every row is its rank's, exactly (NaN stays NaN)
  return all;
}

bool reduce_mini_batch(LossNormalizer& norm, int64_t rows_trained, train::DataParallel& dp) {
  if (dp.world_size() == 1) return rows_trained > 0;
  auto t = torch::tensor({norm.tokens, norm.sequences, static_cast<double>(rows_trained)},
                         torch::kDouble);
  dp.all_reduce_sum(t);
  norm.tokens = t[0].item<double>();
  norm.sequences = t[1].item<double>();
  return t[2].item<double>() > 0;
}

UpdateResult sit_out_update(policy::TransformerImpl& model, torch::optim::Optimizer& optimizer,
                            const GrpoRecipe& r, int64_t job_rows_total, train::DataParallel& dp) {
  const auto t0 = SteadyClock::now();
  UpdateResult res;
  auto params = model.parameters();
  // prepare_train_batch's reductions, then update_policy's mini-batches (its
  // global_rows: the job's shuffle with mini_batches > 1, else one per pass).
  job_advantages(torch::zeros({0}), {}, job_rows_total, r, dp);
  const int64_t MB =
      r.grpo.mini_batches > 1 ? std::min<int64_t>(r.grpo.mini_batches, job_rows_total) : 1;
  for (int64_t pass = 0; pass < r.grpo.mu * MB; ++pass) {
    LossNormalizer norm;
    if (!reduce_mini_batch(norm, 0, dp)) continue;
    train::zero_grad(params);
    dp.sum_gradients(params);
    double loss = 0;
    train::sum_over_ranks({&loss}, dp);  // as the ranks that train: skip together
    const train::GuardedStep gs =
        train::guarded_step(optimizer, params, r.grpo.optim.grad_clip, loss);
    res.grad_norm_sum += gs.grad_norm;
    res.skipped_updates += gs.skipped;
    auto load = train::update_expert_bias(model, dp);  // the other ranks' loads
    if (res.updates == 0) res.expert_load = load;
    ++res.updates;
  }
  res.seconds = seconds_since(t0);
  return res;
}

namespace {

// Every rank's `values` ([K] doubles) as [W, K], row r rank r's.
torch::Tensor gather_rows(const std::vector<double>& values, train::DataParallel& dp) {
  const auto K = static_cast<int64_t>(values.size());
  auto mine = torch::tensor(values, torch::kDouble);
  auto all = torch::empty({dp.world_size() * K}, torch::kDouble);
  dp.all_gather(mine, all);
  return all.view({dp.world_size(), K});
}

// PolicyLossStats as doubles and back, to gather them over the ranks: these fields, then
// tokens and sequences.
constexpr double PolicyLossStats::*kStatFields[] = {&PolicyLossStats::loss,
                                                    &PolicyLossStats::pg_loss,
                                                    &PolicyLossStats::kl,
                                                    &PolicyLossStats::entropy,
                                                    &PolicyLossStats::clip_ratio_low,
                                                    &PolicyLossStats::clip_ratio_high,
                                                    &PolicyLossStats::clip_ratio,
                                                    &PolicyLossStats::dual_clip_ratio,
                                                    &PolicyLossStats::ratio_mean,
                                                    &PolicyLossStats::ratio_min,
                                                    &PolicyLossStats::ratio_max,
                                                    &PolicyLossStats::approx_kl,
                                                    &PolicyLossStats::kl_mean,
                                                    &PolicyLossStats::entropy_mean,
                                                    &PolicyLossStats::tis_mean,
                                                    &PolicyLossStats::tis_min,
                                                    &PolicyLossStats::tis_max,
                                                    &PolicyLossStats::tis_clip_ratio,
                                                    &PolicyLossStats::mismatch_kl};
constexpr int64_t kPackedStats = std::size(kStatFields) + 2;

std::vector<double> pack(const PolicyLossStats& s) {
  std::vector<double> v;
  for (auto f : kStatFields) v.push_back(s.*f);
  v.push_back(static_cast<double>(s.tokens));
  v.push_back(static_cast<double>(s.sequences));
  return v;
}

PolicyLossStats unpack(const double* v) {
  PolicyLossStats s;
  for (auto f : kStatFields) s.*f = *v++;
  s.tokens = std::llround(v[0]);
  s.sequences = std::llround(v[1]);
  return s;
}

}  // namespace

Status after_weight_push(Status pushed, const GrpoRecipe& r, train::DataParallel& dp) {
  if (r.rollout.workers.empty() || dp.world_size() == 1) return pushed;
  dp.barrier();
  if (train::any_rank(!pushed.ok(), dp) && pushed.ok())
    return Unavailable(
        "rank {}: the weight update of rollout.workers failed on another rank (see its log)",
        dp.rank());
  return pushed;
}

Advantages job_advantages(const torch::Tensor& rewards, const std::vector<int64_t>& job_rows,
                          int64_t job_total, const GrpoRecipe& r, train::DataParallel& dp) {
  const int64_t G = r.rollout.group_size;
  const AdvantageOptions options = r.grpo.loss.advantage_options();
  if (dp.world_size() == 1 || r.grpo.loss.scale_rewards != RewardScale::kBatch)
    return compute_advantages(rewards, G, options);
  TORCH_CHECK(static_cast<int64_t>(job_rows.size()) == rewards.numel(),
              "job_advantages: ", rewards.numel(), " rewards but ", job_rows.size(), " places");
  const auto values = gather_values(rewards, dp);
  const auto places =
      gather_values(torch::tensor(job_rows, torch::kLong).reshape({-1}), dp).to(torch::kLong);
  TORCH_CHECK(values.numel() == job_total, "job_advantages: the ranks hold ", values.numel(),
              " rows of a batch of ", job_total);
  auto all = torch::empty({job_total}, torch::kDouble);
  all.index_put_({places}, values);
  const Advantages job = compute_advantages(all, G, options);
  Advantages out;
  const auto rows = torch::tensor(job_rows, torch::kLong).reshape({-1});
  const auto groups = rows.numel() > 0 ? rows.slice(0, 0, rows.numel(), G).div(G, "floor")
                                       : torch::zeros({0}, torch::kLong);
  out.advantages = job.advantages.index_select(0, rows);
  out.valid = job.valid.index_select(0, rows);
  out.group_mean = job.group_mean.index_select(0, groups);
  out.group_std = job.group_std.index_select(0, groups);
  out.zero_std = job.zero_std.index_select(0, groups);
  return out;
}

void reduce_rollout_counts(RolloutBatch& ro, train::DataParallel& dp) {
  if (dp.world_size() == 1) return;
  train::sum_over_ranks({&ro.groups_seen, &ro.zero_std_groups, &ro.rejected_groups,
                         &ro.generated_tokens, &ro.reward_failures},
                        dp);
  auto times = gather_rows({ro.generate_s, ro.reward_s}, dp);
  auto slowest = std::get<0>(times.max(0));
  ro.generate_s = slowest[0].item<double>();
  ro.reward_s = slowest[1].item<double>();
}

torch::Tensor gather_values(const torch::Tensor& mine, train::DataParallel& dp) {
  auto flat =
      mine.defined() ? mine.reshape({-1}).to(torch::kDouble) : torch::zeros({0}, torch::kDouble);
  const int W = dp.world_size();
  if (W == 1) return flat;
  auto counts = torch::zeros({W}, torch::kLong);
  counts[dp.rank()] = flat.numel();
  dp.all_reduce_sum(counts);
  const int64_t offset = counts.narrow(0, 0, dp.rank()).sum().item<int64_t>();
  auto all = torch::zeros({counts.sum().item<int64_t>()}, torch::kDouble);
  all.narrow(0, offset, flat.numel()).copy_(flat);
  dp.all_reduce_sum(all);  // x + 0 = x: every entry is its rank's, exactly (NaN stays NaN)
  return all;
}

void add_job_metrics(const RolloutBatch& ro, const TrainBatch* batch, const UpdateResult& u,
                     bool has_reference, bool moe, train::DataParallel& dp, StepMetrics& m) {
  if (dp.world_size() == 1) {
    if (!batch) return;
    add_batch_metrics(ro, *batch, m);
    add_update_metrics(u, *batch, has_reference, moe, m);
    return;
  }
  // The batch metrics on the whole job's rows.
  BatchMetricInputs in;
  if (batch) in = batch_metric_inputs(ro, *batch);
  BatchMetricInputs job;
  job.names = ro.names;
  job.accuracy_component = ro.accuracy_component;
  int64_t n_components = static_cast<int64_t>(in.components.size());
  const double num_tokens = batch ? batch->mask.sum().item<double>() : 0.0;

  // One gather for the counts and the loss statistics: [W, K].
  std::vector<double> mine = pack(u.stats);
  for (double x : {static_cast<double>(n_components), static_cast<double>(u.rows),
                   static_cast<double>(u.skipped_rows), u.aux_loss_sum, u.route_mismatch.mismatched,
                   u.route_mismatch.recorded, num_tokens, u.logprob_max_abs_diff})
    mine.push_back(x);
  const auto rows = gather_rows(mine, dp);
  const auto sums = rows.sum(0), maxes = std::get<0>(rows.max(0));
  const double* at = sums.data_ptr<double>() + kPackedStats;
  n_components = std::llround(maxes[kPackedStats].item<double>());

  job.rewards = gather_values(in.rewards, dp);
  for (int64_t k = 0; k < n_components; ++k)
    job.components.push_back(gather_values(
        k < static_cast<int64_t>(in.components.size()) ? in.components[k] : torch::Tensor(), dp));
  job.lengths = gather_values(in.lengths, dp);
  job.truncated = gather_values(in.truncated, dp);
  if (job.rewards.numel() > 0) add_batch_metrics(job, m);

  // The update: every rank's statistics merged in rank order, as one process merges its
  // micro-batches; the counts summed.
  UpdateResult all = u;
  all.stats = unpack(rows[0].data_ptr<double>());
  for (int r = 1; r < dp.world_size(); ++r) all.stats.merge(unpack(rows[r].data_ptr<double>()));
  all.rows = std::llround(at[1]);
  all.skipped_rows = std::llround(at[2]);
  all.aux_loss_sum = at[3];
  all.route_mismatch.mismatched = at[4];
  all.route_mismatch.recorded = at[5];
  all.logprob_max_abs_diff = maxes[kPackedStats + 7].item<double>();  // the ranks' max
  // all.expert_load is u's: train::update_expert_bias summed it over the ranks already.
  if (all.rows > 0) add_update_metrics(all, at[6], has_reference, moe, m);
}

}  // namespace r1kit::grpo
