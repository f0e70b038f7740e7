#include "grpo/update_step.h"

#include <chrono>
#include <numeric>
#include <vector>

#include "core/rng.h"
#include "core/timer.h"
#include "grpo/data_parallel.h"
#include "policy/logprobs.h"
#include "train/grad_sync.h"
#include "train/optim.h"

namespace r1kit::grpo {
namespace {

// The rows of one mini-batch, split into micro-batches of at most `micro` rows; rows
// skipped for a zero advantage still count in the normaliser.
struct MiniBatch {
  LossNormalizer norm;
  std::vector<torch::Tensor> micro_idx;    // row indices of each micro-batch
  std::vector<torch::Tensor> micro_masks;  // their loss masks
  int64_t skipped = 0;
};

// Row order of pass `epoch`: identity with one mini-batch, else a seeded permutation.
std::vector<int64_t> pass_order(int64_t B, const GrpoRecipe& r, int64_t step, int64_t epoch) {
  std::vector<int64_t> order(B);
  std::iota(order.begin(), order.end(), 0);
  if (r.grpo.mini_batches > 1) {
    auto gen = at::detail::createCPUGenerator(derive_seed(
        r.grpo.seed, {0x4d494e49ULL, static_cast<uint64_t>(step), static_cast<uint64_t>(epoch)}));
    auto p = torch::randperm(B, gen, torch::kLong);
    for (int64_t i = 0; i < B; ++i) order[i] = p[i].item<int64_t>();
  }
  return order;
}

MiniBatch plan_mini_batch(const std::vector<int64_t>& rows, const TrainBatch& batch,
                          const float* adv_host, bool skip_zero, const GrpoRecipe& r) {
  MiniBatch mb;
  mb.norm.max_length = static_cast<double>(r.rollout.max_new_tokens);
  if (rows.empty()) return mb;  // another rank's rows only (grpo/data_parallel.h)
  // The normaliser counts every completion of the mini-batch; the forward/backward runs
  // over the rows that carry a gradient (all of them unless skipping).
  mb.norm = make_normalizer({batch.mask.index_select(0, torch::tensor(rows))},
                            static_cast<double>(r.rollout.max_new_tokens));
  // A row without loss tokens (every completion token masked, as the overlong mask does
  // to a truncated completion) adds nothing to any term of the loss: it is skipped, so
  // a mini-batch of such rows is no update rather than a division by zero tokens.
  const auto row_tokens = batch.mask.sum(1).to(torch::kFloat).contiguous();
  const float* tokens_host = row_tokens.data_ptr<float>();
  std::vector<int64_t> kept;
  for (int64_t i : rows)
    if (tokens_host[i] > 0 && (!skip_zero || adv_host[i] != 0.0f)) kept.push_back(i);
  mb.skipped = static_cast<int64_t>(rows.size() - kept.size());
  for (size_t a = 0; a < kept.size(); a += r.grpo.micro_batch_size) {
    const size_t b = std::min(kept.size(), a + r.grpo.micro_batch_size);
    auto idx = torch::tensor(std::vector<int64_t>(kept.begin() + a, kept.begin() + b));
    mb.micro_idx.push_back(idx);
    mb.micro_masks.push_back(batch.mask.index_select(0, idx));
  }
  return mb;
}

// The engine's routing to replay (grpo.routing_replay: rollout), else undefined.
torch::Tensor replayed(const TrainBatch& batch, const GrpoRecipe& r) {
  return r.grpo.routing_replay == RoutingReplay::kRollout ? batch.routed_experts : torch::Tensor();
}

// Forward/backward of one micro-batch; returns its loss statistics, adds its share of
// the balance loss to `aux_sum` and its MoE routing to `routes`.
PolicyLossStats train_micro_batch(policy::TransformerImpl& model, const TrainBatch& batch,
                                  const torch::Tensor& old_lp, const torch::Tensor& idx,
                                  const torch::Tensor& mmask, const LossNormalizer& norm,
                                  const GrpoRecipe& r, double* aux_sum, RouteMismatch* routes) {
  const GrpoLossConfig& lc = r.grpo.loss;
  std::vector<std::vector<int64_t>> prompts;
  for (int64_t i = 0; i < idx.size(0); ++i)
    prompts.push_back(batch.row_prompts[idx[i].item<int64_t>()]);
  auto ids = batch.completions.token_ids.index_select(0, idx);
  const bool shared = r.use_shared_prompt();  // then no per-row routing to compare
  const torch::Tensor recorded = !shared && batch.routed_experts.defined()
                                     ? batch.routed_experts.index_select(0, idx)
                                     : torch::Tensor();
  const torch::Tensor replay = replayed(batch, r).defined() ? recorded : torch::Tensor();
  auto out = shared
                 ? policy::shared_prompt_logprobs(model, prompts, ids, mmask, r.rollout.temperature,
                                                  true, r.rollout.truncation())
                 : policy::completion_logprobs(model, prompts, ids, mmask, r.rollout.temperature,
                                               true, r.grpo.mtp_coef > 0, r.rollout.truncation(),
                                               replay, recorded.defined());
  if (recorded.defined()) routes->add(recorded, out.experts);
  PolicyLossInputs in;
  in.logprobs = out.logprobs;
  in.old_logprobs = old_lp.defined() ? old_lp.index_select(0, idx) : out.logprobs.detach();
  in.advantages = batch.advantages.advantages.index_select(0, idx);
  in.mask = mmask;
  in.behaviour_logprobs = batch.completions.behaviour_logprobs.index_select(0, idx);
  if (batch.ref_logprobs.defined()) in.ref_logprobs = batch.ref_logprobs.index_select(0, idx);
  in.entropy = lc.entropy_coef > 0 ? out.entropy : out.entropy.detach();
  PolicyLoss pl = policy_loss(in, lc.policy_loss_options(), norm);
  // The balance (and MTP) losses: this micro-batch's token share of the mini-batch.
  const double share = norm.tokens > 0 ? mmask.sum().item<double>() / norm.tokens : 0.0;
  auto loss = pl.loss + out.aux_loss * share;
  if (r.grpo.mtp_coef > 0) loss = loss + out.mtp_loss * (r.grpo.mtp_coef * share);
  loss.backward();
  *aux_sum += out.aux_loss.item<double>() * share;
  return pl.stats;
}

}  // namespace

UpdateResult update_policy(policy::TransformerImpl& model, torch::optim::Optimizer& optimizer,
                           const TrainBatch& batch, const GrpoRecipe& r, int64_t step,
                           train::DataParallel& dp) {
  const auto t0 = SteadyClock::now();
  const GrpoLossConfig& lc = r.grpo.loss;
  const int64_t B = batch.completions.token_ids.size(0);
  UpdateResult res;
  torch::Tensor old_lp;  // pi_old: recomputed when the policy moves within the step
  if (r.grpo.mu > 1 || r.grpo.mini_batches > 1)
    old_lp = logprobs_no_grad(model, batch.row_prompts, batch.completions, r.rollout.temperature,
                              r.grpo.micro_batch_size, r.rollout.truncation(), replayed(batch, r),
                              r.use_shared_prompt());
  const bool skip_zero = r.grpo.skip_zero_advantage && !lc.kl_in_loss() && lc.entropy_coef == 0 &&
                         r.grpo.mtp_coef == 0;
  const auto adv_cpu = batch.advantages.advantages.to(torch::kFloat).contiguous();
  const float* adv_host = adv_cpu.data_ptr<float>();
  auto params = model.parameters();
  bool have_stats = false;
  // Several ranks with mini_batches > 1 shuffle the step's global batch: the same
  // permutation of every rank's rows as one process draws; each rank trains its own rows
  // of each mini-batch (grpo/data_parallel.h).
  const bool global_rows = dp.world_size() > 1 && r.grpo.mini_batches > 1 &&
                           static_cast<int64_t>(batch.job_rows.size()) == B;
  const int64_t BJ = global_rows ? batch.job_rows_total : B;
  std::vector<int64_t> local_of(global_rows ? BJ : 0, -1);  // global row -> row here
  for (int64_t i = 0; global_rows && i < B; ++i) local_of[batch.job_rows[i]] = i;
  for (int64_t epoch = 0; epoch < r.grpo.mu; ++epoch) {
    const std::vector<int64_t> order = pass_order(BJ, r, step, epoch);
    const int64_t MB = std::min<int64_t>(r.grpo.mini_batches, BJ);
    for (int64_t k = 0; k < MB; ++k) {
      std::vector<int64_t> rows;
      for (int64_t q = BJ * k / MB; q < BJ * (k + 1) / MB; ++q) {
        const int64_t i = global_rows ? local_of[order[q]] : order[q];
        if (i >= 0) rows.push_back(i);
      }
      MiniBatch mb = plan_mini_batch(rows, batch, adv_host, skip_zero, r);
      res.skipped_rows += mb.skipped;
      // Nothing to learn from in this mini-batch on any rank (grpo/data_parallel.h).
      if (!reduce_mini_batch(mb.norm, static_cast<int64_t>(mb.micro_idx.size()), dp)) continue;
      train::zero_grad(params);
      double loss = 0;
      for (size_t m = 0; m < mb.micro_idx.size(); ++m) {
        if (m + 1 == mb.micro_idx.size()) dp.before_last_backward();
        PolicyLossStats s =
            train_micro_batch(model, batch, old_lp, mb.micro_idx[m], mb.micro_masks[m], mb.norm, r,
                              &res.aux_loss_sum, &res.route_mismatch);
        loss += s.loss;
        if (have_stats) {
          res.stats.merge(s);
        } else {
          res.stats = s;
          have_stats = true;
        }
      }
      dp.sum_gradients(params);
      train::sum_over_ranks({&loss}, dp);  // every rank skips a non-finite step, or none
      const train::GuardedStep gs =
          train::guarded_step(optimizer, params, r.grpo.optim.grad_clip, loss);
      res.grad_norm_sum += gs.grad_norm;
      res.skipped_updates += gs.skipped;
      // The loads of the first update, summed over the ranks, go to the logs.
      auto load = train::update_expert_bias(model, dp);
      if (res.updates == 0) res.expert_load = load;
      ++res.updates;
    }
  }
  res.rows = B * r.grpo.mu;
  res.seconds = seconds_since(t0);
  return res;
}

}  // namespace r1kit::grpo
