#include "sft/sft.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <numeric>

#include "core/atomic_file.h"
#include "core/logging.h"
#include "core/metric_names.h"
#include "core/metrics.h"
#include "core/rng.h"
#include "core/torch_compat.h"
#include "policy/checkpoint.h"
#include "policy/logprobs.h"
#include "train/grad_sync.h"
#include "train/setup.h"

namespace r1kit::sft {
namespace fs = std::filesystem;

Status SftRecipe::validate() const {
  if (data.pack && model.n_mtp_layers > 0)
    return InvalidArgument(
        "model.n_mtp_layers={} with data.pack=true: the MTP loss does not follow packed "
        "sample boundaries; set data.pack=false or model.n_mtp_layers=0",
        model.n_mtp_layers);
  if (model.dtype != policy::Precision::kF32)
    return InvalidArgument(
        "model.dtype=bf16: SFT keeps fp32 master weights; use model.compute=bf16 (or auto) "
        "for bf16 compute");
  return OkStatus();
}

StatusOr<std::vector<TextExample>> load_sft_examples(const SftRecipe& r) {
  if (r.data.source == SftSource::kJsonl) {
    // A Jinja chat template renders multi-turn conversations too.
    const auto spec = data::parse_chat_template_spec(r.task.chat_template);
    return read_sft_jsonl(r.data.path, spec.ok() && spec->kind == data::ChatTemplateKind::kJinja);
  }
  ASSIGN_OR_RETURN(data::TaskSource task, data::TaskSource::create(r.task, r.model.from));
  ASSIGN_OR_RETURN(auto solved, task.solved_problems(r.data.n_examples));
  std::vector<TextExample> out;
  for (auto& [question, response] : solved)
    out.push_back({std::move(question), std::move(response), std::nullopt, {}});
  return out;
}

SftLossTerms sft_loss_terms(policy::TransformerImpl& m, const SftBatch& b) {
  policy::ForwardOptions fo;
  fo.positions = b.positions;
  fo.attn_mask = b.attn_mask;
  fo.token_mask = b.token_mask;  // padding: no feed-forward work, no expert load
  fo.compute_logits = false;     // the chunked log-prob helper applies the head
  auto out = m.forward(b.inputs, fo);
  // The output projection on the trained positions only.
  auto lp = policy::masked_token_logprobs(out.hidden, m.output_weight(), b.targets, b.loss_mask,
                                          1.0, false);
  SftLossTerms t;
  t.nll_sum = -lp.logprobs.sum();
  t.hidden = out.hidden;
  t.aux = out.aux_loss;
  t.mtp = m.args().n_mtp_layers > 0 ? m.mtp_loss(b.inputs, out.last_hidden, b.loss_mask)
                                    : torch::zeros({}, torch::kFloat);
  return t;
}

namespace {

// The data of a run: train/eval samples and the row order of every epoch.
class SftData {
 public:
  SftData(std::vector<SftSample> train, std::vector<SftSample> eval, const SftRecipe& r)
      : train_(std::move(train)), eval_(std::move(eval)), r_(r) {}

  // Rows of global index [first, first + n) of the endless stream of epochs. A row is
  // one sample (unpacked) or the samples packed into it.
  std::vector<std::vector<const SftSample*>> rows(int64_t first, int64_t n) {
    std::vector<std::vector<const SftSample*>> out;
    for (int64_t g = first; g < first + n; ++g) {
      while (g >= epoch_start_ + static_cast<int64_t>(epoch_rows_.size())) next_epoch();
      while (g < epoch_start_) reset();
      out.push_back(epoch_rows_[g - epoch_start_]);
    }
    return out;
  }
  int64_t epoch() const { return epoch_; }
  const std::vector<SftSample>& eval() const { return eval_; }
  const std::vector<SftSample>& train() const { return train_; }

 private:
  void reset() {
    epoch_ = -1;
    epoch_start_ = 0;
    epoch_rows_.clear();
  }
  void next_epoch() {
    epoch_start_ += static_cast<int64_t>(epoch_rows_.size());
    ++epoch_;
    std::vector<int64_t> perm(train_.size());
    std::iota(perm.begin(), perm.end(), 0);
    auto gen = at::detail::createCPUGenerator(
        derive_seed(r_.train.seed, {0x53465445ULL, static_cast<uint64_t>(epoch_)}));
    auto p = torch::randperm(static_cast<int64_t>(train_.size()), gen, torch::kLong);
    std::vector<const SftSample*> order;
    for (int64_t i = 0; i < p.size(0); ++i) order.push_back(&train_[p[i].item<int64_t>()]);
    epoch_rows_.clear();
    if (r_.data.pack) {
      for (const auto& row : pack_rows(order, r_.data.max_seq_len)) {
        std::vector<const SftSample*> samples;
        for (int64_t i : row) samples.push_back(order[i]);
        epoch_rows_.push_back(std::move(samples));
      }
    } else {
      for (const auto* s : order) epoch_rows_.push_back({s});
    }
  }

  std::vector<SftSample> train_, eval_;
  const SftRecipe& r_;
  int64_t epoch_ = -1;
  int64_t epoch_start_ = 0;  // global index of epoch_rows_[0]
  std::vector<std::vector<const SftSample*>> epoch_rows_;
};

SftBatch make_batch(const std::vector<std::vector<const SftSample*>>& rows, const SftRecipe& r,
                    int64_t pad_id) {
  if (r.data.pack) return make_packed_batch(rows, r.data.max_seq_len, pad_id);
  std::vector<const SftSample*> samples;
  for (const auto& row : rows) samples.push_back(row.front());
  return make_padded_batch(samples, pad_id);
}

double eval_loss(policy::TransformerImpl& m, SftData& data, const SftRecipe& r, int64_t pad_id,
                 bool bf16) {
  const auto& ev = data.eval();
  if (ev.empty()) return NAN;
  torch::NoGradGuard ng;
  compat::CpuAutocastGuard ac(bf16);
  m.eval();
  double nll = 0;
  int64_t n = 0;
  const int64_t B = r.train.batch_size;
  for (int64_t k = 0; k < r.train.eval_batches && k * B < static_cast<int64_t>(ev.size()); ++k) {
    std::vector<const SftSample*> samples;
    for (int64_t i = k * B; i < std::min<int64_t>((k + 1) * B, ev.size()); ++i)
      samples.push_back(&ev[i]);
    auto b = make_padded_batch(samples, pad_id);
    nll += sft_loss_terms(m, b).nll_sum.item<double>();
    n += b.n_loss_tokens;
  }
  m.train();
  return n > 0 ? nll / n : NAN;
}

// The tokenizer: the recipe's, model.from's, or one trained on the rendered examples (so
// the template's preamble gets its own pieces too).
StatusOr<train::ResolvedTokenizer> sft_tokenizer(const SftRecipe& r,
                                                 const std::vector<TextExample>& examples,
                                                 const data::ChatTemplateOptions& topts) {
  return train::resolve_tokenizer(r.tokenizer, r.model.from, r.checkpoint.dir,
                                  [&](const std::string& path) {
                                    data::TokenizerTrainOptions opts;
                                    for (const auto& ex : examples) {
                                      ASSIGN_OR_RETURN(std::string text, example_text(ex, topts));
                                      opts.lines.push_back(std::move(text));
                                    }
                                    opts.vocab_size = static_cast<int>(r.tokenizer.vocab_size);
                                    R1_LOG(info, "training a {}-piece tokenizer on {} examples",
                                           opts.vocab_size, examples.size());
                                    return data::Tokenizer::train(opts, path);
                                  });
}

// Tokenized examples, split into training and held-out samples by a seeded shuffle
// (JSONL files are often sorted).
StatusOr<SftData> split_sft_data(const SftRecipe& r, const std::vector<TextExample>& examples,
                                 const data::Tokenizer& tok,
                                 const data::ChatTemplateOptions& topts) {
  int64_t dropped = 0;
  ASSIGN_OR_RETURN(auto samples,
                   tokenize_examples(examples, tok, topts, r.data.max_seq_len, &dropped));
  if (dropped > 0)
    R1_LOG(warn, "{} examples dropped: their prompt fills data.max_seq_len={}", dropped,
           r.data.max_seq_len);
  if (samples.size() < 2) return InvalidArgument("data: fewer than 2 usable examples");
  auto gen = at::detail::createCPUGenerator(derive_seed(r.data.seed, {0x53504C54ULL}));
  auto perm = torch::randperm(static_cast<int64_t>(samples.size()), gen, torch::kLong);
  const int64_t n_eval = static_cast<int64_t>(samples.size() * r.data.holdout_fraction);
  std::vector<SftSample> train, eval;
  for (int64_t i = 0; i < perm.size(0); ++i)
    (i < n_eval ? eval : train).push_back(std::move(samples[perm[i].item<int64_t>()]));
  SftData data(std::move(train), std::move(eval), r);
  int64_t resp_tokens = 0;
  for (const auto& s : data.train()) resp_tokens += s.ids.size() - s.n_prompt;
  R1_LOG(info, "sft data: {} train / {} held-out examples, {} response tokens, vocabulary {}",
         data.train().size(), data.eval().size(), resp_tokens, tok.vocab_size());
  return data;
}

}  // namespace

const std::vector<std::string>& resumable_keys() {
  static const std::vector<std::string> keys = {
      "train.steps",        "train.stop_after",  "train.log_every", "train.eval_every",
      "train.eval_batches", "train.max_minutes", "checkpoint",      "dist"};
  return keys;
}

namespace {

train::TrainingRunOptions sft_run_options(const SftRecipe& r, int64_t vocab_size,
                                          const std::string& tokenizer_path) {
  train::TrainingRunOptions ro = train::run_options(r, vocab_size, tokenizer_path);
  ro.may_change = resumable_keys();
  return ro;
}

}  // namespace

StatusOr<SftResult> run_sft(const SftRecipe& recipe, const SftHooks& hooks) {
  RETURN_IF_ERROR(train::prepare_run(recipe.dist, recipe.checkpoint, recipe.model.from));
  // The prompt format model.from records, unless the recipe names one (data/prompt_format.h).
  SftRecipe r = recipe;
  ASSIGN_OR_RETURN(r.task, recipe.task.with_model_format(recipe.model.from));

  // 1. Examples, tokenizer, split.
  ASSIGN_OR_RETURN(std::vector<TextExample> examples, load_sft_examples(r));
  ASSIGN_OR_RETURN(const data::ChatTemplateOptions topts, r.task.template_options(r.model.from));
  ASSIGN_OR_RETURN(train::ResolvedTokenizer resolved, sft_tokenizer(r, examples, topts));
  const data::Tokenizer& tok = resolved.tokenizer;
  ASSIGN_OR_RETURN(SftData data, split_sft_data(r, examples, tok, topts));

  // 2. Model (fp32 master weights) and optimizer, resumed when a checkpoint exists.
  train::TrainingRunOptions ro = sft_run_options(r, tok.vocab_size(), resolved.path);
  ro.prompt_format = data::prompt_format_of(topts, config_to_json(r.task));
  ASSIGN_OR_RETURN(train::TrainingRun run, train::TrainingRun::start(std::move(ro)));
  policy::TransformerImpl& model = run.model();
  const int64_t start_step = run.start_step();
  const int64_t pad_id = tok.pad_id() >= 0 ? tok.pad_id() : tok.eos_id();
  const int64_t A = r.train.grad_accum, B = r.train.batch_size;
  const bool bf16 = run.bf16_compute();
  // Data parallelism: each micro-batch of B rows is split across the ranks (docs/distributed.md).
  train::DataParallel& dp = run.dp();
  const int W = dp.world_size();
  if (B < W)
    return InvalidArgument("train.batch_size={} is global and smaller than the {} ranks", B, W);
  const train::Shard mine = train::shard_of(B, dp.rank(), W);
  const double share = static_cast<double>(mine.size()) / B;  // of each micro-batch's rows
  SftResult result;
  model.train();
  auto params = model.parameters();
  double window_loss = 0, window_tokens = 0;
  int64_t window_n = 0;
  const auto t_start = std::chrono::steady_clock::now();
  auto t_window = t_start;
  std::vector<ConsoleMetric> keys = train::lm_console_metrics();
  if (hooks.token_loss) keys.insert(keys.begin() + 1, ConsoleMetric(hooks.token_loss_name.c_str()));
  const ProgressLine progress(start_step, r.train.steps, std::move(keys), r.train.max_minutes * 60);
  for (int64_t step = start_step; step < r.train.steps; ++step) {
    const double lr = run.set_lr_for_step(step, r.train.steps);
    // The whole step's rows first: the loss is normalised by all their response tokens.
    auto rows = data.rows(step * A * B, A * B);
    std::vector<SftBatch> micro;
    int64_t n_loss = 0, n_tok = 0;
    for (int64_t a = 0; a < A; ++a) {
      std::vector<std::vector<const SftSample*>> mrows(rows.begin() + a * B + mine.begin,
                                                       rows.begin() + a * B + mine.end);
      micro.push_back(make_batch(mrows, r, pad_id));
      n_loss += micro.back().n_loss_tokens;
      n_tok += micro.back().n_tokens;
    }
    train::sum_over_ranks({&n_loss, &n_tok}, dp);  // global normaliser
    train::zero_grad(params);
    double nll = 0, aux = 0, mtp = 0, extra = 0;
    for (const auto& mb : micro) {
      compat::CpuAutocastGuard ac(bf16);
      SftLossTerms t = sft_loss_terms(model, mb);
      torch::Tensor token_sum = t.nll_sum;
      if (hooks.token_loss) {
        const double w = hooks.token_loss_weight;
        auto e = hooks.token_loss(model, mb, t.hidden);
        token_sum = (1 - w) * t.nll_sum + w * e;
        extra += e.item<double>();
      }
      // The balance and MTP losses are means over a micro-batch: this rank's rows' share.
      auto per_batch = W > 1 ? (t.aux + t.mtp) * share : t.aux + t.mtp;
      auto loss = token_sum / std::max<int64_t>(n_loss, 1) + per_batch / A;
      if (&mb == &micro.back()) dp.before_last_backward();
      loss.backward();
      nll += t.nll_sum.item<double>();
      aux += t.aux.item<double>() * (W > 1 ? share : 1.0) / A;
      mtp += t.mtp.item<double>() * (W > 1 ? share : 1.0) / A;
    }
    dp.sum_gradients(params);
    train::sum_over_ranks({&nll, &aux, &mtp, &extra}, dp);  // the job's metrics
    const double step_loss = nll / std::max<int64_t>(n_loss, 1);
    const train::GuardedStep gs = train::guarded_step(
        run.optimizer(), params, r.train.optim.grad_clip, step_loss + aux + mtp);
    const double gnorm = gs.grad_norm;
    const torch::Tensor expert_load = train::update_expert_bias(model, dp);
    if (step == start_step) result.first_loss = step_loss;
    window_loss += step_loss;
    window_tokens += n_tok;
    ++window_n;
    ++result.steps_run;

    const double minutes =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count() / 60;
    const bool out_of_time =
        train::any_rank(r.train.max_minutes > 0 && minutes >= r.train.max_minutes, dp);
    const bool last = step + 1 == r.train.steps || out_of_time;
    const bool log_now = (step + 1) % r.train.log_every == 0 || last;
    const bool eval_now = last || (r.train.eval_every > 0 && (step + 1) % r.train.eval_every == 0);
    std::map<std::string, double> m = {{metric::kLoss, step_loss},
                                       {metric::kLr, lr},
                                       {metric::kGradNorm, gnorm},
                                       {metric::kEpoch, static_cast<double>(data.epoch())},
                                       {metric::kLossTokens, static_cast<double>(n_loss)}};
    if (model.args().n_routed_experts > 0) m[metric::kAuxLoss] = aux;
    train::add_moe_load_metrics(expert_load, &m);
    if (model.args().n_mtp_layers > 0) m[metric::kMtpLoss] = mtp;
    if (hooks.token_loss) m[hooks.token_loss_name] = extra / std::max<int64_t>(n_loss, 1);
    if (eval_now) {
      const auto t_eval = std::chrono::steady_clock::now();
      m[metric::kEvalLoss] = result.eval_loss = eval_loss(model, data, r, pad_id, bf16);
      t_window += std::chrono::steady_clock::now() - t_eval;  // tokens/s counts training only
    }
    if (log_now) {
      const double secs =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t_window).count();
      m[metric::kTokensPerS] = window_tokens / std::max(secs, 1e-9);
      auto shown = m;
      shown[metric::kLoss] = result.final_loss = window_loss / window_n;
      if (dp.rank() == 0) progress.print(step + 1, shown);
      window_loss = window_tokens = 0;
      window_n = 0;
      t_window = std::chrono::steady_clock::now();
    }
    const Status counted = run.count_step(step + 1, gs.skipped, m);
    RETURN_IF_ERROR(run.metrics().write(step + 1, m));
    RETURN_IF_ERROR(counted);
    const bool stop =
        train::any_rank(train::stop_invocation(result.steps_run, r.train.stop_after, last), dp);
    if (run.checkpoint_due(step + 1, last, stop)) RETURN_IF_ERROR(run.save(step + 1));
    if (stop) {
      train::log_stopped(result.steps_run, "train.stop_after");
      return result;
    }
    if (out_of_time) {
      R1_LOG(info, "train.max_minutes={} reached after step {}", r.train.max_minutes, step + 1);
      break;
    }
  }
  result.finished = true;
  ASSIGN_OR_RETURN(result.final_dir, run.save_final());
  return result;
}

}  // namespace r1kit::sft
