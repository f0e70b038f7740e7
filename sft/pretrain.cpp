#include "sft/pretrain.h"

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/atomic_file.h"
#include "core/logging.h"
#include "core/metrics.h"
#include "core/rng.h"
#include "data/chat_template.h"
#include "data/tokenizer.h"
#include "policy/checkpoint.h"
#include "sft/train_state.h"

namespace r1kit::sft {
namespace fs = std::filesystem;
using policy::Transformer;

namespace {

StatusOr<data::Tokenizer> prepare_tokenizer(const PretrainRecipe& r,
                                            const std::string& corpus_path) {
  if (!r.tokenizer.path.empty()) return data::Tokenizer::load(r.tokenizer.path);
  std::error_code ec;
  // A model to continue from brings its own tokenizer: its ids must not change.
  if (!r.model.from.empty() && fs::exists(r.model.from + "/tokenizer.model", ec))
    return data::Tokenizer::load(r.model.from + "/tokenizer.model");
  const std::string path = r.checkpoint.dir + "/tokenizer.model";
  if (!fs::exists(path, ec)) {
    data::TokenizerTrainOptions opts;
    opts.input_files = {corpus_path};
    opts.vocab_size = static_cast<int>(r.tokenizer.vocab_size);
    R1_LOG(info, "training a {}-piece tokenizer on {}", opts.vocab_size, corpus_path);
    RETURN_IF_ERROR(data::Tokenizer::train(opts, path));
  }
  return data::Tokenizer::load(path);
}

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

double eval_loss(policy::TransformerImpl& m, const torch::Tensor& stream, const PretrainRecipe& r) {
  if (stream.size(0) < r.train.seq_len + 2) return NAN;
  torch::NoGradGuard ng;
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
  // 0 keeps LibTorch's default. On the 2-vCPU build machine one thread is fastest
  // (measured: tiny training step 0.75 s with 1 thread, 2.1 s with 2; bench/RESULTS.md).
  if (r.dist.threads > 0) at::set_num_threads(static_cast<int>(r.dist.threads));
  std::error_code ec;
  fs::create_directories(r.checkpoint.dir, ec);
  if (ec) return Internal("create {}: {}", r.checkpoint.dir, ec.message());

  // 1. Corpus.
  const std::string corpus_path = r.checkpoint.dir + "/corpus.txt";
  std::vector<std::string> lines;
  {
    ASSIGN_OR_RETURN(data::TaskSource task, data::TaskSource::create(r.task));
    ASSIGN_OR_RETURN(auto solved, task.solved_problems(r.data.n_examples));
    const data::ChatTemplateOptions opts = r.task.template_options();
    for (const auto& [question, response] : solved)
      lines.push_back(data::render_sft_example(opts, question, response).text);
  }
  std::string corpus;
  for (const auto& line : lines) corpus += line + "\n";
  if (!fs::exists(corpus_path, ec)) RETURN_IF_ERROR(write_file_atomic(corpus_path, corpus));

  // 2. Tokenizer and token stream (each line followed by EOS).
  ASSIGN_OR_RETURN(data::Tokenizer tok, prepare_tokenizer(r, corpus_path));
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
  std::string tokenizer_path = r.checkpoint.dir + "/tokenizer.model";
  if (!r.tokenizer.path.empty())
    tokenizer_path = r.tokenizer.path;
  else if (!r.model.from.empty() && fs::exists(r.model.from + "/tokenizer.model", ec))
    tokenizer_path = r.model.from + "/tokenizer.model";
  seed_everything(r.train.seed);
  ASSIGN_OR_RETURN(Transformer model, r.model.build(tok.vocab_size(), r.train.seed));
  auto opt = make_adamw(model->named_parameters(), r.train.optim);
  int64_t start_step = 0;
  const std::string resume_dir = r.checkpoint.resume ? latest_checkpoint(r.checkpoint.dir) : "";
  if (!resume_dir.empty()) {
    ASSIGN_OR_RETURN(auto state, load_train_checkpoint(*model, *opt, resume_dir));
    // Keys that do not change what is computed may differ; anything else would break
    // an exact resume and is refused.
    if (state.contains("recipe"))
      RETURN_IF_ERROR(check_resume_compatible(
          state["recipe"], config_to_json(r),
          {"train.steps", "train.stop_after", "train.log_every", "train.eval_every",
           "train.eval_batches", "train.max_minutes", "checkpoint", "dist"}));
    start_step = state["step"].get<int64_t>();
    R1_LOG(info, "resuming from {} (step {})", resume_dir, start_step);
  }
  const auto pc = policy::count_params(model->args());
  R1_LOG(info, "model: {:.2f}M parameters ({:.2f}M active), {} threads", pc.total / 1e6,
         pc.active / 1e6, at::get_num_threads());

  ASSIGN_OR_RETURN(auto metrics, MetricsWriter::open(r.checkpoint.dir + "/metrics.jsonl",
                                                     r.checkpoint.dir + "/tensorboard",
                                                     resume_dir.empty() ? -1 : start_step));
  PretrainResult result;
  model->train();
  auto params = model->parameters();
  double window_loss = 0;
  int64_t window_n = 0;
  auto t_window = std::chrono::steady_clock::now();
  const std::vector<std::string> keys = {"loss", "aux_loss",  "mtp_loss",    "eval_loss",
                                         "lr",   "grad_norm", "tokens_per_s"};
  for (int64_t step = start_step; step < r.train.steps; ++step) {
    const double lr = lr_at(step, r.train.steps, r.train.optim);
    set_lr(*opt, lr);
    auto batch =
        sample_batch(train_stream, r.train.batch_size, r.train.seq_len, r.train.seed, step);
    StepLoss loss = lm_loss(*model, batch);
    zero_grad(params);
    loss.total.backward();
    const double gnorm = clip_grad_norm(params, r.train.optim.grad_clip);
    opt->step();
    model->update_expert_bias(model->args().bias_update_gamma);
    if (step == start_step) result.first_loss = loss.lm;
    window_loss += loss.lm;
    ++window_n;
    ++result.steps_run;

    const bool last = step + 1 == r.train.steps;
    const bool log_now = (step + 1) % r.train.log_every == 0 || last;
    const bool eval_now = last || (r.train.eval_every > 0 && (step + 1) % r.train.eval_every == 0);
    std::map<std::string, double> m = {{"loss", loss.lm}, {"lr", lr}, {"grad_norm", gnorm}};
    if (model->args().n_routed_experts > 0) m["aux_loss"] = loss.aux;
    if (model->args().n_mtp_layers > 0) m["mtp_loss"] = loss.mtp;
    if (eval_now) m["eval_loss"] = result.eval_loss = eval_loss(*model, eval_stream, r);
    if (log_now) {
      const double secs =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t_window).count();
      m["tokens_per_s"] = window_n * r.train.batch_size * r.train.seq_len / std::max(secs, 1e-9);
      auto shown = m;
      shown["loss"] = result.final_loss = window_loss / window_n;  // mean over the window
      MetricsWriter::print(step + 1, r.train.steps, shown, keys);
      window_loss = 0;
      window_n = 0;
      t_window = std::chrono::steady_clock::now();
    }
    RETURN_IF_ERROR(metrics->write(step + 1, m));
    const bool stop = r.train.stop_after > 0 && result.steps_run >= r.train.stop_after && !last;
    if ((r.checkpoint.every > 0 && ((step + 1) % r.checkpoint.every == 0 || last)) || stop)
      RETURN_IF_ERROR(save_train_checkpoint(*model, *opt, r.checkpoint.dir, step + 1,
                                            {{"recipe", config_to_json(r)}}, tokenizer_path));
    if (stop) {
      R1_LOG(info, "stopping after {} steps (train.stop_after); rerun to resume", result.steps_run);
      return result;
    }
  }
  result.finished = true;
  ASSIGN_OR_RETURN(result.final_dir, save_final_model(*model, r.checkpoint.dir, tokenizer_path));
  return result;
}

}  // namespace r1kit::sft
