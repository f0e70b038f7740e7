#include "grpo/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <future>
#include <map>
#include <numeric>
#include <optional>

#include "core/atomic_file.h"
#include "core/blas_threads.h"
#include "core/logging.h"
#include "core/metrics.h"
#include "core/rng.h"
#include "core/safetensors.h"
#include "data/tokenizer.h"
#include "eval/evaluate.h"
#include "grpo/advantages.h"
#include "grpo/completion_batch.h"
#include "grpo/dynamic_sampling.h"
#include "grpo/kl.h"
#include "grpo/policy_loss.h"
#include "policy/checkpoint.h"
#include "policy/logprobs.h"
#include "reward/plugin.h"
#include "reward/reward.h"
#include "rollout/local_source.h"
#include "sft/train_state.h"

namespace r1kit::grpo {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// One step's rollout: the problems, their groups and every reward.
struct Rollout {
  std::vector<data::TaskSample> problems;
  std::vector<std::vector<int64_t>> prompt_ids;  // [N] prompt tokens
  std::vector<rollout::Group> groups;            // [N] G completions each
  torch::Tensor rewards;                         // [N, G] float64 weighted totals (NaN allowed)
  std::vector<std::string> names;                // reward component names
  std::vector<torch::Tensor> components;         // [K] of [N, G] float64
  uint64_t data_pos_after = 0;                   // next unused training problem
  int64_t rounds = 0;                            // generation rounds (dynamic sampling)
  double pass_rate = 1;                          // informative groups / groups seen
  int64_t groups_seen = 0;                       // groups generated this step
  int64_t zero_std_groups = 0;                   // groups with no signal among those seen
  double generate_s = 0, reward_s = 0;           // wall times
  int64_t generated_tokens = 0;                  // every completion token generated
};

// Everything the loop needs besides the model and optimizer.
struct Context {
  const GrpoRecipe& r;
  data::Tokenizer tok;
  data::TaskSource tasks;
  reward::CombinedReward rewards;
  rollout::RolloutSource* source = nullptr;
  int rank = 0, world = 1;  // data parallelism: rank r takes its own slice of problems
};

rollout::NamedTensors named_weights(policy::TransformerImpl& m) {
  rollout::NamedTensors out;
  for (const auto& p : m.named_parameters()) out.emplace_back(p.key(), p.value().detach());
  for (const auto& b : m.named_buffers()) out.emplace_back(b.key(), b.value().detach());
  return out;
}

// Samples and scores one step's groups, refilling zero-variance groups when dynamic
// sampling is on. Pure function of (step, data_pos) and the source's weights.
StatusOr<Rollout> collect_rollout(Context& c, int64_t step, uint64_t data_pos) {
  const GrpoRecipe& r = c.r;
  const int64_t P = r.rollout.prompts_per_step, G = r.rollout.group_size;
  Rollout out;
  DynamicSampler ds(P, r.grpo.loss.dynamic_sampling ? r.grpo.loss.dynamic_sampling_max_rounds : 1);
  std::vector<torch::Tensor> kept_rewards;
  std::vector<std::vector<torch::Tensor>> kept_components;
  while (ds.should_generate()) {
    const int64_t n = r.grpo.loss.dynamic_sampling ? ds.needed() : P;
    rollout::GenerateRequest req;
    req.group_size = G;
    req.sampling.temperature = r.rollout.temperature;
    req.sampling.top_k = r.rollout.top_k;
    req.sampling.top_p = r.rollout.top_p;
    req.sampling.max_new_tokens = r.rollout.max_new_tokens;
    if (c.tok.eos_id() >= 0) req.sampling.stop_token_ids = {static_cast<int64_t>(c.tok.eos_id())};
    req.sampling.seed = derive_seed(r.grpo.seed, {0x524f4c4cULL, static_cast<uint64_t>(step)});
    // Every rank draws n problems of its own: rank r takes [pos + r n, pos + (r+1) n).
    const uint64_t first = data_pos + static_cast<uint64_t>(c.rank * n);
    std::vector<data::TaskSample> problems = c.tasks.train_batch(first, n);
    std::vector<std::vector<int64_t>> prompts;
    for (int64_t i = 0; i < n; ++i) {
      std::vector<int64_t> ids;
      for (int32_t id : c.tok.encode(c.tasks.render(problems[i]))) ids.push_back(id);
      prompts.push_back(ids);
      req.prompts.push_back({std::move(ids), static_cast<int64_t>(first) + i});
    }
    data_pos += static_cast<uint64_t>(n * c.world);
    const auto t_gen = Clock::now();
    ASSIGN_OR_RETURN(auto groups, c.source->generate(req));
    out.generate_s += seconds_since(t_gen);

    const auto t_rew = Clock::now();
    auto rewards = torch::empty({n, G}, torch::kDouble);
    std::vector<torch::Tensor> comps;
    for (int64_t i = 0; i < n; ++i) {
      std::vector<reward::Sample> samples(G);
      const std::string prompt_text = c.tasks.render(problems[i]);
      for (int64_t j = 0; j < G; ++j) {
        const auto& comp = groups[i].completions[j];
        out.generated_tokens += static_cast<int64_t>(comp.token_ids.size());
        std::vector<int32_t> ids(comp.token_ids.begin(), comp.token_ids.end());
        samples[j].prompt = prompt_text;
        samples[j].completion = c.tok.decode(ids);
        samples[j].completion_ids = std::move(ids);
        samples[j].metadata = problems[i].metadata;
      }
      reward::GroupScores s = c.rewards.score(samples);
      if (comps.empty()) {
        out.names = s.names;
        for (size_t k = 0; k < s.names.size(); ++k)
          comps.push_back(torch::empty({n, G}, torch::kDouble));
      }
      for (int64_t j = 0; j < G; ++j) {
        rewards[i][j] = s.total[j];
        for (size_t k = 0; k < comps.size(); ++k) comps[k][i][j] = s.components[k][j];
      }
    }
    out.reward_s += seconds_since(t_rew);
    out.groups_seen += n;
    out.zero_std_groups += n - informative_groups(rewards).sum().item<int64_t>();

    std::vector<int64_t> keep;
    if (r.grpo.loss.dynamic_sampling) {
      keep = ds.add_round(rewards);
    } else {
      ds.add_round(rewards);
      keep.resize(n);
      std::iota(keep.begin(), keep.end(), 0);
    }
    for (int64_t i : keep) {
      out.problems.push_back(problems[i]);
      out.prompt_ids.push_back(prompts[i]);
      out.groups.push_back(std::move(groups[i]));
      kept_rewards.push_back(rewards[i]);
      kept_components.emplace_back();
      for (auto& t : comps) kept_components.back().push_back(t[i]);
    }
  }
  out.rounds = ds.rounds();
  out.pass_rate = ds.pass_rate();
  out.data_pos_after = data_pos;
  if (!kept_rewards.empty()) {
    out.rewards = torch::stack(kept_rewards);
    for (size_t k = 0; k < out.names.size(); ++k) {
      std::vector<torch::Tensor> rows;
      for (auto& kc : kept_components) rows.push_back(kc[k]);
      out.components.push_back(torch::stack(rows));
    }
  }
  return out;
}

// Log-probs of rows [idx] of a packed batch, in micro-batches, without gradient.
torch::Tensor logprobs_no_grad(policy::TransformerImpl& m,
                               const std::vector<std::vector<int64_t>>& row_prompts,
                               const CompletionBatch& batch, double temperature, int64_t micro) {
  torch::NoGradGuard ng;
  const int64_t B = batch.token_ids.size(0);
  std::vector<torch::Tensor> parts;
  for (int64_t b0 = 0; b0 < B; b0 += micro) {
    const int64_t b1 = std::min(B, b0 + micro);
    std::vector<std::vector<int64_t>> p(row_prompts.begin() + b0, row_prompts.begin() + b1);
    parts.push_back(completion_logprobs(m, p, batch.token_ids.slice(0, b0, b1),
                                        batch.mask.slice(0, b0, b1), temperature, false)
                        .logprobs);
  }
  return torch::cat(parts);
}

// Mean over finite entries (NaN: "no score"); NaN when there are none.
double finite_mean(const torch::Tensor& t) {
  auto f = t.flatten();
  auto ok = torch::isfinite(f);
  const int64_t n = ok.sum().item<int64_t>();
  return n == 0 ? NAN : f.masked_select(ok).sum().item<double>() / n;
}
double finite_std(const torch::Tensor& t) {
  auto f = t.flatten();
  auto v = f.masked_select(torch::isfinite(f));
  return v.numel() < 2 ? 0.0 : v.std().item<double>();
}

// Held-out accuracy on the first `n` problems, through the evaluation library
// (eval/evaluate.h): greedy accuracy, format and length, plus mean accuracy of one sample
// at the rollout temperature.
StatusOr<std::map<std::string, double>> held_out_eval(Context& c, int64_t n) {
  if (c.tasks.eval().empty()) return std::map<std::string, double>{};
  eval::EvalOptions o;
  o.k = 1;
  o.temperature = c.r.rollout.temperature;
  o.max_new_tokens = c.r.rollout.max_new_tokens;
  o.greedy_pass1 = true;
  o.max_problems = n;
  o.seed = c.r.grpo.seed;
  o.batch = std::max<int64_t>(1, c.r.rollout.max_batch);
  ASSIGN_OR_RETURN(eval::EvalReport rep, eval::evaluate(*c.source, c.tok, c.tasks, c.rewards, o));
  std::map<std::string, double> m = {{"eval/greedy_accuracy", rep.greedy_pass_at_1},
                                     {"eval/mean_length", rep.greedy_mean_length},
                                     {"eval/pass@1", rep.pass_at_1}};
  if (!std::isnan(rep.greedy_format_rate)) m["eval/format"] = rep.greedy_format_rate;
  return m;
}

void copy_weights(policy::TransformerImpl& dst, policy::TransformerImpl& src) {
  torch::NoGradGuard ng;
  auto dp = dst.named_parameters();
  for (const auto& p : src.named_parameters()) dp[p.key()].copy_(p.value());
  auto db = dst.named_buffers();
  for (const auto& b : src.named_buffers()) db[b.key()].copy_(b.value());
}

}  // namespace

Status GrpoRecipe::validate() const {
  RETURN_IF_ERROR(grpo.loss.validate());
  RETURN_IF_ERROR(task.validate());
  if (model.dtype != "f32")
    return InvalidArgument("model.dtype={}: GRPO keeps fp32 master weights", model.dtype);
  if (grpo.mtp_coef > 0 && model.n_mtp_layers == 0)
    return InvalidArgument("grpo.mtp_coef={} needs MTP layers, but model.n_mtp_layers=0",
                           grpo.mtp_coef);
  return OkStatus();
}

CompletionLogProbs completion_logprobs(policy::TransformerImpl& m,
                                       const std::vector<std::vector<int64_t>>& prompt_ids,
                                       const torch::Tensor& completions, const torch::Tensor& mask,
                                       double temperature, bool with_entropy, bool with_mtp) {
  const int64_t B = completions.size(0), T = completions.size(1);
  TORCH_CHECK(static_cast<int64_t>(prompt_ids.size()) == B, "one prompt per completion row");
  int64_t L = 0;
  for (const auto& p : prompt_ids) L = std::max<int64_t>(L, static_cast<int64_t>(p.size()) + T);
  // Row i: prompt_i, completion_i, then padding (token 0) on the right. Causal attention
  // means padding never reaches a real position.
  auto ids = torch::zeros({B, L}, torch::kLong);
  auto pos = torch::zeros({B, T}, torch::kLong);  // hidden state predicting completion[t]
  auto comp_in_seq = torch::zeros({B, L}, torch::kFloat);
  auto ids_a = ids.accessor<int64_t, 2>();
  auto pos_a = pos.accessor<int64_t, 2>();
  auto cis_a = comp_in_seq.accessor<float, 2>();
  auto comp = completions.contiguous();
  auto comp_a = comp.accessor<int64_t, 2>();
  auto mask_c = mask.contiguous();
  auto mask_a = mask_c.accessor<float, 2>();
  for (int64_t i = 0; i < B; ++i) {
    const int64_t lp = static_cast<int64_t>(prompt_ids[i].size());
    TORCH_CHECK(lp >= 1, "empty prompt in row ", i);
    for (int64_t t = 0; t < lp; ++t) ids_a[i][t] = prompt_ids[i][t];
    for (int64_t t = 0; t < T; ++t) {
      ids_a[i][lp + t] = comp_a[i][t];
      pos_a[i][t] = lp - 1 + t;
      cis_a[i][lp + t] = mask_a[i][t];
    }
  }
  policy::ForwardOptions fo;
  fo.compute_logits = false;
  auto out = m.forward(ids, fo);
  const int64_t d = out.hidden.size(-1);
  auto h = out.hidden.gather(1, pos.unsqueeze(-1).expand({B, T, d}));
  auto lp = policy::token_logprobs(h.reshape({-1, d}), m.output_weight(), comp.reshape({-1}),
                                   temperature > 0 ? temperature : 1.0, with_entropy);
  CompletionLogProbs r;
  r.logprobs = lp.logprobs.reshape({B, T}) * mask_c;
  if (with_entropy) r.entropy = lp.entropy.reshape({B, T}) * mask_c;
  r.aux_loss = out.aux_loss;
  if (with_mtp) r.mtp_loss = m.mtp_loss(ids, out.last_hidden, comp_in_seq);
  return r;
}

StatusOr<GrpoResult> run_grpo(const GrpoRecipe& r, const RolloutFactory& make_source,
                              DataParallel* dp_in) {
  RETURN_IF_ERROR(r.validate());
  RETURN_IF_ERROR(reward::load_reward_plugins(r.reward_plugins));  // before rewards are built
  DataParallel single;
  DataParallel& dp = dp_in ? *dp_in : single;
  if (r.dist.threads > 0) at::set_num_threads(static_cast<int>(r.dist.threads));
  std::error_code ec;
  fs::create_directories(r.checkpoint.dir, ec);
  if (ec) return Internal("create {}: {}", r.checkpoint.dir, ec.message());

  // 1. Tokenizer, task, rewards.
  std::string tokenizer_path = r.tokenizer.path;
  if (tokenizer_path.empty() && !r.model.from.empty())
    tokenizer_path = r.model.from + "/tokenizer.model";
  if (tokenizer_path.empty())
    return InvalidArgument(
        "GRPO needs a tokenizer: set tokenizer.path, or model.from to a checkpoint that has one");
  ASSIGN_OR_RETURN(data::Tokenizer tok, data::Tokenizer::load(tokenizer_path));
  ASSIGN_OR_RETURN(data::TaskSource tasks, data::TaskSource::create(r.task));
  ASSIGN_OR_RETURN(reward::CombinedReward rewards,
                   reward::build_task_rewards(r.reward, r.task.default_rewards()));
  Context c{r, tok, std::move(tasks), std::move(rewards)};
  c.rank = dp.rank();
  c.world = dp.world_size();

  // 2. Policy, optimizer, reference; resumed when a checkpoint exists.
  seed_everything(r.grpo.seed);
  ASSIGN_OR_RETURN(policy::Transformer model, r.model.build(tok.vocab_size(), r.grpo.seed));
  if (model->args().vocab_size < tok.vocab_size())
    return InvalidArgument("the model's vocabulary ({}) is smaller than the tokenizer's ({})",
                           model->args().vocab_size, tok.vocab_size());
  auto opt = sft::make_adamw(model->named_parameters(), r.grpo.optim);
  policy::Transformer ref{nullptr};
  if (r.grpo.loss.needs_reference()) {
    ref = policy::Transformer(model->args());
    copy_weights(*ref, *model);
    ref->eval();
    for (auto& p : ref->parameters()) p.set_requires_grad(false);
  }
  int64_t start_step = 0;
  uint64_t data_pos = r.grpo.first_problem;
  const std::string resume_dir =
      r.checkpoint.resume ? sft::latest_checkpoint(r.checkpoint.dir) : "";
  if (!resume_dir.empty()) {
    ASSIGN_OR_RETURN(auto state, sft::load_train_checkpoint(*model, *opt, resume_dir));
    if (state.contains("recipe"))
      RETURN_IF_ERROR(sft::check_resume_compatible(
          state["recipe"], config_to_json(r),
          {"grpo.steps", "grpo.stop_after", "grpo.log_every", "grpo.eval_every",
           "grpo.eval_problems", "grpo.max_minutes", "checkpoint", "dist", "rollout.workers",
           "rollout.token_file", "rollout.max_batch"}));
    start_step = state["step"].get<int64_t>();
    data_pos = state.value("data_pos", uint64_t{0});
    if (ref) {
      const std::string ref_path = resume_dir + "/reference.safetensors";
      ASSIGN_OR_RETURN(auto file, SafetensorsFile::open(ref_path));
      torch::NoGradGuard ng;
      for (auto& p : ref->named_parameters()) {
        ASSIGN_OR_RETURN(auto t, file->load(p.key()));
        p.value().copy_(t);
      }
      for (auto& b : ref->named_buffers()) {
        ASSIGN_OR_RETURN(auto t, file->load(b.key()));
        b.value().copy_(t);
      }
    }
    R1_LOG(info, "resuming from {} (step {}, data position {})", resume_dir, start_step, data_pos);
  }
  const auto pc = policy::count_params(model->args());
  R1_LOG(info, "policy: {:.2f}M parameters ({:.2f}M active); reference: {}; {} threads",
         pc.total / 1e6, pc.active / 1e6, ref ? "yes" : "none (kl_coef = 0)",
         at::get_num_threads());

  // 3. The rollout source, holding the current weights as version start_step.
  std::unique_ptr<rollout::RolloutSource> source;
  if (make_source) {
    ASSIGN_OR_RETURN(source, make_source(r, *model));
  } else {
    if (!r.rollout.workers.empty())
      return InvalidArgument(
          "rollout.workers is set but this build of the trainer has no gRPC client; run it "
          "through `r1kit grpo`");
  }
  if (!source) {
    rollout::EngineOptions eo;
    eo.max_batch = r.rollout.max_batch;
    eo.decode_threads = static_cast<int>(r.rollout.decode_threads);
    source = rollout::LocalRolloutSource::copy_of(*model, eo, rollout::tokenizer_decoder(tok),
                                                  start_step);
  }
  RETURN_IF_ERROR(source->update_weights(named_weights(*model), start_step));
  c.source = source.get();

  ASSIGN_OR_RETURN(auto metrics, MetricsWriter::open(r.checkpoint.dir + "/metrics.jsonl",
                                                     r.checkpoint.dir + "/tensorboard",
                                                     resume_dir.empty() ? -1 : start_step));
  const GrpoLossConfig& lc = r.grpo.loss;
  const AdvantageOptions adv_opts = lc.advantage_options();
  const PolicyLossOptions pl_opts = lc.policy_loss_options();
  const int64_t G = r.rollout.group_size;
  const double temperature = r.rollout.temperature;
  const bool need_old = r.grpo.mu > 1 || r.grpo.mini_batches > 1;
  auto params = model->parameters();
  GrpoResult result;
  const auto t_start = Clock::now();
  const std::vector<std::string> keys = {"reward",
                                         "accuracy",
                                         "frac_reward_zero_std",
                                         "completions/mean_length",
                                         "kl",
                                         "entropy",
                                         "clip_ratio/region_mean",
                                         "grad_norm",
                                         "eval/greedy_accuracy",
                                         "step_time"};

  auto save = [&](int64_t step_done, uint64_t pos) -> Status {
    nlohmann::json state = {
        {"recipe", config_to_json(r)}, {"data_pos", pos}, {"policy_version", step_done}};
    auto extra = [&](const std::string& dir) -> Status {
      if (!ref) return OkStatus();
      std::vector<std::pair<std::string, torch::Tensor>> t;
      for (const auto& p : ref->named_parameters()) t.emplace_back(p.key(), p.value());
      for (const auto& b : ref->named_buffers()) t.emplace_back(b.key(), b.value());
      return write_safetensors(dir + "/reference.safetensors", t);
    };
    return sft::save_train_checkpoint(*model, *opt, r.checkpoint.dir, step_done, state,
                                      tokenizer_path, 0, extra);
  };

  // With overlap, generation and training take a core each: OpenBLAS splitting an sgemm
  // over the other (busy) core made GRPO steps ~1.5x slower (bench/RESULTS.md).
  std::optional<BlasThreadsGuard> one_blas_thread;
  if (r.rollout.overlap && r.rollout.workers.empty()) one_blas_thread.emplace(1);
  std::future<StatusOr<Rollout>> next;  // overlap: the next step's rollout
  for (int64_t step = start_step; step < r.grpo.steps; ++step) {
    const auto t_step = Clock::now();
    std::map<std::string, double> m;
    // --- 1-3. Rollout and rewards (possibly generated during the previous step).
    StatusOr<Rollout> got = next.valid() ? next.get() : collect_rollout(c, step, data_pos);
    RETURN_IF_ERROR(got.status());
    Rollout ro = std::move(*got);
    data_pos = ro.data_pos_after;
    if (r.rollout.overlap && step + 1 < r.grpo.steps) {
      // Generated with this step's weights while the trainer updates them: one step stale.
      next = std::async(std::launch::async,
                        [&c, step, pos = data_pos] { return collect_rollout(c, step + 1, pos); });
    }
    const int64_t N = static_cast<int64_t>(ro.groups.size());
    m["timing/generate"] = ro.generate_s;
    if (N > 0)  // 0 on-policy; 1 with rollout.overlap
      m["rollout/staleness"] =
          static_cast<double>(step - ro.groups[0].completions[0].policy_version);
    m["timing/reward"] = ro.reward_s;
    // Batches a remote reward server failed to score (cannot judge), cumulative; logged
    // once the first failure happened (reward/grpc/remote.h).
    if (const int64_t failed = reward::remote_failures(); failed > 0)
      m["reward/remote_failures"] = static_cast<double>(failed);
    m["frac_reward_zero_std"] =
        ro.groups_seen > 0 ? static_cast<double>(ro.zero_std_groups) / ro.groups_seen : 0.0;
    if (lc.dynamic_sampling) {
      m["dynamic_sampling/pass_rate"] = ro.pass_rate;
      m["dynamic_sampling/rounds"] = static_cast<double>(ro.rounds);
      m["dynamic_sampling/groups_kept"] = static_cast<double>(N);
    }

    const double lr = sft::lr_at(step, r.grpo.steps, r.grpo.optim);
    sft::set_lr(*opt, lr);
    m["learning_rate"] = lr;
    double train_s = 0, ref_s = 0;
    if (N > 0) {
      // --- 4. Rewards -> advantages.
      CompletionBatch batch = pack_completions(ro.groups);
      const int64_t B = batch.token_ids.size(0);
      std::vector<std::vector<int64_t>> row_prompts;
      for (int64_t i = 0; i < N; ++i)
        for (int64_t j = 0; j < G; ++j) row_prompts.push_back(ro.prompt_ids[i]);
      auto rewards = ro.rewards.reshape({-1}).to(torch::kFloat);
      m["reward"] = finite_mean(rewards);
      m["reward_std"] = finite_std(rewards);
      for (size_t k = 0; k < ro.names.size(); ++k) {
        m["rewards/" + ro.names[k] + "/mean"] = finite_mean(ro.components[k]);
        if (static_cast<int64_t>(k) == c.rewards.role_index(reward::kRoleAccuracy))
          m["accuracy"] = finite_mean(ro.components[k].ge(1.0 - 1e-9).to(torch::kDouble));
      }
      auto lengths = batch.mask.sum(1);
      m["completions/mean_length"] = lengths.mean().item<double>();
      m["completions/min_length"] = lengths.min().item<double>();
      m["completions/max_length"] = lengths.max().item<double>();
      m["completions/clipped_ratio"] = batch.truncated.to(torch::kFloat).mean().item<double>();

      torch::Tensor ref_lp;
      if (ref) {
        const auto t_ref = Clock::now();
        ref_lp = logprobs_no_grad(*ref, row_prompts, batch, temperature, r.grpo.micro_batch_size);
        ref_s = seconds_since(t_ref);
      }
      if (lc.kl_in_reward())
        rewards = kl_penalized_rewards(rewards, batch.behaviour_logprobs, ref_lp, batch.mask,
                                       lc.kl_estimator_kind(), lc.kl_coef);
      Advantages adv = compute_advantages(rewards, G, adv_opts);
      // Unscored completions and (optionally) truncated ones get no loss.
      auto mask = batch.mask * adv.valid.to(torch::kFloat).unsqueeze(1);
      if (lc.mask_truncated_completions) mask = mask_truncated(mask, batch.truncated);

      // --- 5. mu passes over mini-batches of micro-batches.
      const auto t_train = Clock::now();
      torch::Tensor old_lp;
      if (need_old) {
        old_lp = logprobs_no_grad(*model, row_prompts, batch, temperature, r.grpo.micro_batch_size);
      }
      // A completion whose advantage is 0 (its group's rewards were all equal) adds nothing to
      // the clipped surrogate whatever its ratio, so with no KL or entropy term in the loss
      // and no MTP loss it needs no forward/backward: the policy gradient is unchanged (the
      // normaliser still counts its tokens); only the MoE balance loss and the logged
      // entropy/clip statistics then cover the trained completions alone.
      const bool skip_zero = r.grpo.skip_zero_advantage && !lc.kl_in_loss() &&
                             lc.entropy_coef == 0 && r.grpo.mtp_coef == 0;
      const auto adv_cpu = adv.advantages.to(torch::kFloat).contiguous();
      const float* adv_host = adv_cpu.data_ptr<float>();
      int64_t skipped_rows = 0;
      PolicyLossStats stats;
      double gnorm_sum = 0, aux_sum = 0;
      int64_t n_updates = 0;
      bool have_stats = false;
      for (int64_t epoch = 0; epoch < r.grpo.mu; ++epoch) {
        std::vector<int64_t> order(B);
        std::iota(order.begin(), order.end(), 0);
        if (r.grpo.mini_batches > 1) {
          auto gen = at::detail::createCPUGenerator(derive_seed(
              r.grpo.seed,
              {0x4d494e49ULL, static_cast<uint64_t>(step), static_cast<uint64_t>(epoch)}));
          auto p = torch::randperm(B, gen, torch::kLong);
          for (int64_t i = 0; i < B; ++i) order[i] = p[i].item<int64_t>();
        }
        const int64_t MB = std::min<int64_t>(r.grpo.mini_batches, B);
        for (int64_t mb = 0; mb < MB; ++mb) {
          const int64_t lo = B * mb / MB, hi = B * (mb + 1) / MB;
          // The normaliser counts every completion of the mini-batch; the forward/backward
          // runs over the rows that carry a gradient (all of them unless skipping).
          const std::vector<int64_t> rows(order.begin() + lo, order.begin() + hi);
          LossNormalizer norm = make_normalizer(
              {mask.index_select(0, torch::tensor(rows))},
              static_cast<double>(r.rollout.max_new_tokens));
          std::vector<int64_t> kept;
          for (int64_t i : rows)
            if (!skip_zero || adv_host[i] != 0.0f) kept.push_back(i);
          skipped_rows += static_cast<int64_t>(rows.size() - kept.size());
          std::vector<torch::Tensor> micro_idx, micro_masks;
          for (size_t a = 0; a < kept.size(); a += r.grpo.micro_batch_size) {
            const size_t b = std::min(kept.size(), a + r.grpo.micro_batch_size);
            auto idx = torch::tensor(std::vector<int64_t>(kept.begin() + a, kept.begin() + b));
            micro_idx.push_back(idx);
            micro_masks.push_back(mask.index_select(0, idx));
          }
          // Nothing to learn from in this mini-batch (one process only: data-parallel ranks
          // must stay in step for the all-reduces below).
          if (micro_idx.empty() && dp.world_size() == 1) continue;
          if (dp.world_size() > 1) {
            auto t = torch::tensor({norm.tokens, norm.sequences}, torch::kDouble);
            dp.all_reduce_sum(t);
            norm.tokens = t[0].item<double>();
            norm.sequences = t[1].item<double>();
          }
          sft::zero_grad(params);
          for (size_t k = 0; k < micro_idx.size(); ++k) {
            const auto& idx = micro_idx[k];
            std::vector<std::vector<int64_t>> p;
            for (int64_t i = 0; i < idx.size(0); ++i)
              p.push_back(row_prompts[idx[i].item<int64_t>()]);
            auto mmask = micro_masks[k];
            auto out = completion_logprobs(*model, p, batch.token_ids.index_select(0, idx), mmask,
                                           temperature, true, r.grpo.mtp_coef > 0);
            PolicyLossInputs in;
            in.logprobs = out.logprobs;
            in.old_logprobs = need_old ? old_lp.index_select(0, idx) : out.logprobs.detach();
            in.advantages = adv.advantages.index_select(0, idx);
            in.mask = mmask;
            in.behaviour_logprobs = batch.behaviour_logprobs.index_select(0, idx);
            if (ref) in.ref_logprobs = ref_lp.index_select(0, idx);
            in.entropy = lc.entropy_coef > 0 ? out.entropy : out.entropy.detach();
            PolicyLoss pl = policy_loss(in, pl_opts, norm);
            // The balance (and MTP) losses: this micro-batch's token share of the mini-batch.
            const double share = norm.tokens > 0 ? mmask.sum().item<double>() / norm.tokens : 0.0;
            auto loss = pl.loss + out.aux_loss * share;
            if (r.grpo.mtp_coef > 0) loss = loss + out.mtp_loss * (r.grpo.mtp_coef * share);
            loss.backward();
            aux_sum += out.aux_loss.item<double>() * share;
            if (!have_stats) {
              stats = pl.stats;
              have_stats = true;
            } else {
              stats.merge(pl.stats);
            }
          }
          if (dp.world_size() > 1)
            for (auto& p : params) {
              if (!p.requires_grad()) continue;
              // Every rank reduces every parameter, in the same order: a rank whose rows were
              // all skipped (or whose tokens reached no copy of an expert) sends zeros.
              if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
              auto g = p.grad();
              dp.all_reduce_sum(g);
            }
          gnorm_sum += sft::clip_grad_norm(params, r.grpo.optim.grad_clip);
          opt->step();
          if (model->args().n_routed_experts > 0) {
            auto load = model->accumulated_expert_load();
            if (load.defined() && load.numel() > 0 && n_updates == 0) {
              auto frac = load / load.sum(1, true).clamp_min(1);
              m["moe/max_load_over_mean"] =
                  (std::get<0>(frac.max(1)) * frac.size(1)).mean().item<double>();
              for (int64_t l = 0; l < frac.size(0); ++l)
                for (int64_t e = 0; e < frac.size(1); ++e)
                  m[fmt::format("moe/load/layer{}/expert{}", l, e)] = frac[l][e].item<double>();
            }
          }
          model->update_expert_bias(model->args().bias_update_gamma);
          ++n_updates;
        }
      }
      train_s = seconds_since(t_train);
      m["train/skipped_frac"] = static_cast<double>(skipped_rows) / static_cast<double>(B * r.grpo.mu);
      const double updates = static_cast<double>(std::max<int64_t>(n_updates, 1));
      m["loss"] = stats.loss / updates;
      m["pg_loss"] = stats.pg_loss / updates;
      m["grad_norm"] = gnorm_sum / updates;
      m["entropy"] = stats.entropy_mean;
      m["clip_ratio/low_mean"] = stats.clip_ratio_low;
      m["clip_ratio/high_mean"] = stats.clip_ratio_high;
      m["clip_ratio/region_mean"] = stats.clip_ratio;
      m["ppo_kl"] = stats.approx_kl;
      m["ratio/mean"] = stats.ratio_mean;
      m["ratio/max"] = stats.ratio_max;
      m["tis/mean"] = stats.tis_mean;
      m["tis/clip_ratio"] = stats.tis_clip_ratio;
      if (ref) m["kl"] = stats.kl_mean;
      if (model->args().n_routed_experts > 0) m["aux_loss"] = aux_sum / updates;
      m["num_tokens"] = static_cast<double>(mask.sum().item<double>());
    } else {
      R1_LOG(warn, "step {}: no informative group after {} rounds; no update", step + 1, ro.rounds);
    }
    m["timing/reference"] = ref_s;
    m["timing/train"] = train_s;
    if (!m.contains("reward")) m["reward"] = NAN;

    // --- 6. Weight sync (waits for an overlapped rollout first: it must finish on the
    // weights it started with).
    const auto t_sync = Clock::now();
    if (next.valid()) next.wait();
    RETURN_IF_ERROR(source->update_weights(named_weights(*model), step + 1));
    if (r.grpo.ref_reset_every > 0 && ref && (step + 1) % r.grpo.ref_reset_every == 0)
      copy_weights(*ref, *model);
    m["timing/sync"] = seconds_since(t_sync);
    m["policy_version"] = static_cast<double>(step + 1);

    // --- 7. Evaluation, metrics, checkpoints.
    const double minutes = seconds_since(t_start) / 60;
    const bool out_of_time = r.grpo.max_minutes > 0 && minutes >= r.grpo.max_minutes;
    const bool last = step + 1 == r.grpo.steps || out_of_time;
    if (r.grpo.eval_every > 0 && ((step + 1) % r.grpo.eval_every == 0 || last)) {
      if (next.valid()) next.wait();
      const auto t_eval = Clock::now();
      ASSIGN_OR_RETURN(auto ev, held_out_eval(c, r.grpo.eval_problems));
      m.insert(ev.begin(), ev.end());
      m["timing/eval"] = seconds_since(t_eval);
    }
    m["step_time"] = seconds_since(t_step);
    m["tokens_per_s"] = static_cast<double>(ro.generated_tokens) / std::max(m["step_time"], 1e-9);
    if (dp.rank() == 0) {
      if ((step + 1) % r.grpo.log_every == 0 || last || step == start_step)
        MetricsWriter::print(step + 1, r.grpo.steps, m, keys);
      RETURN_IF_ERROR(metrics->write(step + 1, m));
    }
    result.rewards.push_back(m["reward"]);
    result.accuracies.push_back(m.contains("accuracy") ? m["accuracy"] : NAN);
    if (result.steps_run == 0) result.first_reward = m["reward"];
    result.last_reward = m["reward"];
    ++result.steps_run;

    const bool stop = r.grpo.stop_after > 0 && result.steps_run >= r.grpo.stop_after && !last;
    if (dp.rank() == 0 &&
        ((r.checkpoint.every > 0 && ((step + 1) % r.checkpoint.every == 0 || last)) || stop)) {
      if (next.valid()) next.wait();
      // data_pos is where the overlapped rollout (if any) started: a resumed run
      // regenerates it, on-policy.
      RETURN_IF_ERROR(save(step + 1, data_pos));
    }
    if (stop) {
      if (next.valid()) next.wait();
      R1_LOG(info, "stopping after {} steps (grpo.stop_after); rerun to resume", result.steps_run);
      return result;
    }
    if (out_of_time) {
      if (next.valid()) next.wait();
      R1_LOG(info, "grpo.max_minutes={} reached after step {}", r.grpo.max_minutes, step + 1);
      break;
    }
  }
  result.finished = true;
  ASSIGN_OR_RETURN(result.final_dir,
                   sft::save_final_model(*model, r.checkpoint.dir, tokenizer_path));
  return result;
}

}  // namespace r1kit::grpo
