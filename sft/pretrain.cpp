#include "sft/pretrain.h"

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/atomic_file.h"
#include "core/logging.h"
#include "core/metric_names.h"
#include "core/metrics.h"
#include "core/rng.h"
#include "core/torch_compat.h"
#include "data/chat_template.h"
#include "data/tokenizer.h"
#include "policy/checkpoint.h"
#include "sft/sft.h"
#include "train/grad_sync.h"
#include "train/setup.h"

namespace r1kit::sft {
namespace fs = std::filesystem;
using policy::Transformer;

namespace {

// [B, T+1] windows of the token stream at offsets drawn from (seed, step).
torch::Tensor sample_batch(const torch::Tensor& stream, int64_t B, int64_t T, uint64_t seed,
                           uint64_t step) {
  auto gen = at::detail::createCPUGenerator(derive_seed(seed, {0x62617463ULL, step}));
  const int64_t max_start = stream.size(0) - (T + 1);
  auto starts = torch::randint(max_start + 1, {B}, gen, torch::kLong);
  auto offs = starts.unsqueeze(1) + torch::arange(T + 1, torch::kLong).unsqueeze(0);
  return stream.index_select(0, offs.reshape({-1})).view({B, T + 1});
}

struct StepLoss {
  torch::Tensor total;  // what is minimised
  double lm = 0;        // next-token cross-entropy
  double aux = 0;       // balance loss
  double mtp = 0;       // MTP loss
};

StepLoss lm_loss(policy::TransformerImpl& m, const torch::Tensor& batch) {
  const int64_t T = batch.size(1) - 1;
  auto inputs = batch.narrow(1, 0, T);
  auto targets = batch.narrow(1, 1, T);
  auto out = m.forward(inputs);
  auto lm = torch::nn::functional::cross_entropy(out.logits.reshape({-1, out.logits.size(-1)}),
                                                 targets.reshape({-1}));
  StepLoss l;
  l.total = lm + out.aux_loss;
  l.lm = lm.item<double>();
  l.aux = out.aux_loss.item<double>();
  if (m.args().n_mtp_layers > 0) {
    auto mtp = m.mtp_loss(inputs, out.last_hidden);
    l.total = l.total + mtp;
    l.mtp = mtp.item<double>();
  }
  return l;
}

// Every term of `l` is a mean over the batch's rows: this rank's share of the job's batch
// is `share` of it; the logged values become the job's means.
void scale_to_share(StepLoss& l, double share, train::DataParallel& dp) {
  l.total = l.total * share;
  l.lm *= share;
  l.aux *= share;
  l.mtp *= share;
  train::sum_over_ranks({&l.lm, &l.aux, &l.mtp}, dp);
}

double eval_loss(policy::TransformerImpl& m, const torch::Tensor& stream, const PretrainRecipe& r,
                 bool bf16) {
  if (stream.size(0) < r.train.seq_len + 2) return NAN;
  torch::NoGradGuard ng;
  compat::CpuAutocastGuard ac(bf16);
  m.eval();
  double sum = 0;
  for (int64_t i = 0; i < r.train.eval_batches; ++i) {
    auto b = sample_batch(stream, r.train.batch_size, r.train.seq_len, r.train.seed ^ 0xE7A1ULL, i);
    auto inputs = b.narrow(1, 0, r.train.seq_len);
    auto out = m.forward(inputs);
    sum += torch::nn::functional::cross_entropy(out.logits.reshape({-1, out.logits.size(-1)}),
                                                b.narrow(1, 1, r.train.seq_len).reshape({-1}))
               .item<double>();
  }
  m.train();
  return sum / r.train.eval_batches;
}

}  // namespace

StatusOr<PretrainResult> run_pretrain(const PretrainRecipe& r) {
  RETURN_IF_ERROR(train::prepare_run(r.dist, r.checkpoint, r.model.from));
  std::error_code ec;

  // 1. Corpus.
  const std::string corpus_path = r.checkpoint.dir + "/corpus.txt";
  std::vector<std::string> lines;
  data::PromptFormat format;  // recorded with every checkpoint
  {
    ASSIGN_OR_RETURN(data::TaskSource task, data::TaskSource::create(r.task));
    format = task.prompt_format();
    ASSIGN_OR_RETURN(auto solved, task.solved_problems(r.data.n_examples));
    const data::ChatTemplateOptions& opts = task.template_options();
    for (const auto& [question, response] : solved)
      lines.push_back(data::render_sft_example(opts, question, response).text);
  }
  std::string corpus;
  for (const auto& line : lines) corpus += line + "\n";
  if (train::process_group().rank() == 0 && !fs::exists(corpus_path, ec))
    RETURN_IF_ERROR(write_file_atomic(corpus_path, corpus));

  // 2. Tokenizer (trained on the corpus unless the recipe names one) and token stream
  // (each line followed by EOS).
  ASSIGN_OR_RETURN(auto resolved,
                   train::resolve_tokenizer(
                       r.tokenizer, r.model.from, r.checkpoint.dir, [&](const std::string& path) {
                         data::TokenizerTrainOptions opts;
                         opts.input_files = {corpus_path};
                         opts.vocab_size = static_cast<int>(r.tokenizer.vocab_size);
                         R1_LOG(info, "training a {}-piece tokenizer on {}", opts.vocab_size,
                                corpus_path);
                         return data::Tokenizer::train(opts, path);
                       }));
  const data::Tokenizer& tok = resolved.tokenizer;
  std::vector<int64_t> ids;
  for (const auto& line : lines) {
    for (int32_t id : tok.encode(line)) ids.push_back(id);
    ids.push_back(tok.eos_id());
  }
  const int64_t n_eval = static_cast<int64_t>(ids.size() * r.data.holdout_fraction);
  auto all = torch::tensor(ids, torch::kLong);
  auto train_stream = all.narrow(0, 0, all.size(0) - n_eval);
  auto eval_stream = all.narrow(0, all.size(0) - n_eval, n_eval);
  if (train_stream.size(0) < r.train.seq_len + 2)
    return InvalidArgument(
        "data.n_examples={}: the corpus ({} tokens) is shorter than train.seq_len", lines.size(),
        train_stream.size(0));
  R1_LOG(info, "corpus: {} examples, {} tokens ({} held out), vocabulary {}", lines.size(),
         ids.size(), n_eval, tok.vocab_size());

  // 3. Model and optimizer, resumed from the newest checkpoint when there is one.
  train::TrainingRunOptions ro = train::run_options(r, tok.vocab_size(), resolved.path);
  ro.prompt_format = format;
  ro.may_change = resumable_keys();  // sft.h: the train and checkpoint keys are shared
  ASSIGN_OR_RETURN(train::TrainingRun run, train::TrainingRun::start(std::move(ro)));
  policy::TransformerImpl& model = run.model();
  const int64_t start_step = run.start_step();
  // Data parallelism: each rank takes its shard of the batch's rows (docs/distributed.md).
  train::DataParallel& dp = run.dp();
  const int W = dp.world_size();
  if (r.train.batch_size < W)
    return InvalidArgument("train.batch_size={} is global and smaller than the {} ranks",
                           r.train.batch_size, W);
  const train::Shard mine = train::shard_of(r.train.batch_size, dp.rank(), W);
  PretrainResult result;
  model.train();
  auto params = model.parameters();
  double window_loss = 0;
  int64_t window_n = 0;
  auto t_window = std::chrono::steady_clock::now();
  const ProgressLine progress(start_step, r.train.steps, train::lm_console_metrics());
  for (int64_t step = start_step; step < r.train.steps; ++step) {
    const double lr = run.set_lr_for_step(step, r.train.steps);
    auto batch =
        sample_batch(train_stream, r.train.batch_size, r.train.seq_len, r.train.seed, step);
    if (W > 1) batch = batch.narrow(0, mine.begin, mine.size());
    train::zero_grad(params);
    StepLoss loss;
    {
      compat::CpuAutocastGuard ac(run.bf16_compute());
      loss = lm_loss(model, batch);
      if (W > 1) scale_to_share(loss, static_cast<double>(mine.size()) / r.train.batch_size, dp);
      dp.before_last_backward();
      loss.total.backward();
    }
    dp.sum_gradients(params);
    double step_loss = loss.total.item<double>();
    train::sum_over_ranks({&step_loss}, dp);  // every rank skips a non-finite step, or none
    const train::GuardedStep gs =
        train::guarded_step(run.optimizer(), params, r.train.optim.grad_clip, step_loss);
    const double gnorm = gs.grad_norm;
    const torch::Tensor expert_load = train::update_expert_bias(model, dp);
    if (step == start_step) result.first_loss = loss.lm;
    window_loss += loss.lm;
    ++window_n;
    ++result.steps_run;

    const bool last = step + 1 == r.train.steps;
    const bool log_now = (step + 1) % r.train.log_every == 0 || last;
    const bool eval_now = last || (r.train.eval_every > 0 && (step + 1) % r.train.eval_every == 0);
    std::map<std::string, double> m = {
        {metric::kLoss, loss.lm}, {metric::kLr, lr}, {metric::kGradNorm, gnorm}};
    if (model.args().n_routed_experts > 0) m[metric::kAuxLoss] = loss.aux;
    train::add_moe_load_metrics(expert_load, &m);
    if (model.args().n_mtp_layers > 0) m[metric::kMtpLoss] = loss.mtp;
    if (eval_now)
      m[metric::kEvalLoss] = result.eval_loss =
          eval_loss(model, eval_stream, r, run.bf16_compute());
    if (log_now) {
      const double secs =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t_window).count();
      m[metric::kTokensPerS] =
          window_n * r.train.batch_size * r.train.seq_len / std::max(secs, 1e-9);
      auto shown = m;
      shown[metric::kLoss] = result.final_loss = window_loss / window_n;  // mean over the window
      if (dp.rank() == 0) progress.print(step + 1, shown);
      window_loss = 0;
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
  }
  result.finished = true;
  ASSIGN_OR_RETURN(result.final_dir, run.save_final());
  return result;
}

}  // namespace r1kit::sft
