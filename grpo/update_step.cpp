#include "grpo/update_step.h"

#include <chrono>
#include <numeric>
#include <vector>

#include "core/rng.h"
#include "core/timer.h"
#include "policy/logprobs.h"
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
  // The normaliser counts every completion of the mini-batch; the forward/backward runs
  // over the rows that carry a gradient (all of them unless skipping).
  mb.norm = make_normalizer({batch.mask.index_select(0, torch::tensor(rows))},
                            static_cast<double>(r.rollout.max_new_tokens));
  std::vector<int64_t> kept;
  for (int64_t i : rows)
    if (!skip_zero || adv_host[i] != 0.0f) kept.push_back(i);
  mb.skipped = static_cast<int64_t>(rows.size() - kept.size());
  for (size_t a = 0; a < kept.size(); a += r.grpo.micro_batch_size) {
    const size_t b = std::min(kept.size(), a + r.grpo.micro_batch_size);
    auto idx = torch::tensor(std::vector<int64_t>(kept.begin() + a, kept.begin() + b));
    mb.micro_idx.push_back(idx);
    mb.micro_masks.push_back(batch.mask.index_select(0, idx));
  }
  return mb;
}

// Forward/backward of one micro-batch; returns its loss statistics and adds its share of
// the balance loss to `aux_sum`.
PolicyLossStats train_micro_batch(policy::TransformerImpl& model, const TrainBatch& batch,
                                  const torch::Tensor& old_lp, const torch::Tensor& idx,
                                  const torch::Tensor& mmask, const LossNormalizer& norm,
                                  const GrpoRecipe& r, double* aux_sum) {
  const GrpoLossConfig& lc = r.grpo.loss;
  std::vector<std::vector<int64_t>> prompts;
  for (int64_t i = 0; i < idx.size(0); ++i)
    prompts.push_back(batch.row_prompts[idx[i].item<int64_t>()]);
  auto ids = batch.completions.token_ids.index_select(0, idx);
  auto out =
      r.grpo.shared_prompt && r.grpo.mtp_coef == 0
          ? policy::shared_prompt_logprobs(model, prompts, ids, mmask, r.rollout.temperature, true)
          : policy::completion_logprobs(model, prompts, ids, mmask, r.rollout.temperature, true,
                                        r.grpo.mtp_coef > 0);
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

// Sums the loss normaliser and then every gradient over the ranks.
void all_reduce_normalizer(LossNormalizer& norm, train::DataParallel& dp) {
  auto t = torch::tensor({norm.tokens, norm.sequences}, torch::kDouble);
  dp.all_reduce_sum(t);
  norm.tokens = t[0].item<double>();
  norm.sequences = t[1].item<double>();
}
void all_reduce_gradients(std::vector<torch::Tensor>& params, train::DataParallel& dp) {
  for (auto& p : params) {
    if (!p.requires_grad()) continue;
    // Every rank reduces every parameter, in the same order: a rank whose rows were all
    // skipped (or whose tokens reached no copy of an expert) sends zeros.
    if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
    auto g = p.grad();
    dp.all_reduce_sum(g);
  }
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
                              r.grpo.micro_batch_size, r.grpo.shared_prompt);
  const bool skip_zero = r.grpo.skip_zero_advantage && !lc.kl_in_loss() && lc.entropy_coef == 0 &&
                         r.grpo.mtp_coef == 0;
  const auto adv_cpu = batch.advantages.advantages.to(torch::kFloat).contiguous();
  const float* adv_host = adv_cpu.data_ptr<float>();
  auto params = model.parameters();
  bool have_stats = false;
  for (int64_t epoch = 0; epoch < r.grpo.mu; ++epoch) {
    const std::vector<int64_t> order = pass_order(B, r, step, epoch);
    const int64_t MB = std::min<int64_t>(r.grpo.mini_batches, B);
    for (int64_t k = 0; k < MB; ++k) {
      const std::vector<int64_t> rows(order.begin() + B * k / MB, order.begin() + B * (k + 1) / MB);
      MiniBatch mb = plan_mini_batch(rows, batch, adv_host, skip_zero, r);
      res.skipped_rows += mb.skipped;
      // Nothing to learn from in this mini-batch (one process only: data-parallel ranks
      // must stay in step for the all-reduces below).
      if (mb.micro_idx.empty() && dp.world_size() == 1) continue;
      if (dp.world_size() > 1) all_reduce_normalizer(mb.norm, dp);
      train::zero_grad(params);
      for (size_t m = 0; m < mb.micro_idx.size(); ++m) {
        PolicyLossStats s = train_micro_batch(model, batch, old_lp, mb.micro_idx[m],
                                              mb.micro_masks[m], mb.norm, r, &res.aux_loss_sum);
        if (have_stats) {
          res.stats.merge(s);
        } else {
          res.stats = s;
          have_stats = true;
        }
      }
      if (dp.world_size() > 1) all_reduce_gradients(params, dp);
      res.grad_norm_sum += train::clip_grad_norm(params, r.grpo.optim.grad_clip);
      optimizer.step();
      if (res.updates == 0 && model.args().n_routed_experts > 0) {
        auto load = model.accumulated_expert_load();
        if (load.defined() && load.numel() > 0) res.expert_load = load.clone();
      }
      model.update_expert_bias(model.args().bias_update_gamma);
      ++res.updates;
    }
  }
  res.rows = B * r.grpo.mu;
  res.seconds = seconds_since(t0);
  return res;
}

}  // namespace r1kit::grpo
