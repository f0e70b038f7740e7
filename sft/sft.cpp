#include "sft/sft.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <numeric>

#include "core/atomic_file.h"
#include "core/logging.h"
#include "core/metrics.h"
#include "core/rng.h"
#include "core/torch_compat.h"
#include "policy/checkpoint.h"
#include "policy/logprobs.h"
#include "sft/train_state.h"

namespace r1kit::sft {
namespace fs = std::filesystem;

Status SftRecipe::validate() const {
  if (data.pack && model.n_mtp_layers > 0)
    return InvalidArgument(
        "model.n_mtp_layers={} with data.pack=true: the MTP loss does not follow packed "
        "sample boundaries; set data.pack=false or model.n_mtp_layers=0",
        model.n_mtp_layers);
  if (model.dtype != "f32")
    return InvalidArgument(
        "model.dtype={}: SFT keeps fp32 master weights; use train.compute=bf16 for bf16 compute",
        model.dtype);
  return OkStatus();
}

StatusOr<std::vector<TextExample>> load_sft_examples(const SftRecipe& r) {
  if (r.data.source == "jsonl") return read_sft_jsonl(r.data.path);
  ASSIGN_OR_RETURN(data::TaskSource task, data::TaskSource::create(r.task));
  ASSIGN_OR_RETURN(auto solved, task.solved_problems(r.data.n_examples));
  std::vector<TextExample> out;
  for (auto& [question, response] : solved)
    out.push_back({std::move(question), std::move(response), std::nullopt});
  return out;
}

SftLossTerms sft_loss_terms(policy::TransformerImpl& m, const SftBatch& b) {
  policy::ForwardOptions fo;
  fo.positions = b.positions;
  fo.attn_mask = b.attn_mask;
  fo.compute_logits = false;  // the chunked log-prob helper applies the head
  auto out = m.forward(b.inputs, fo);
  const int64_t d = out.hidden.size(-1);
  auto lp = policy::token_logprobs(out.hidden.reshape({-1, d}), m.output_weight(),
                                   b.targets.reshape({-1}));
  SftLossTerms t;
  t.nll_sum = -(lp.logprobs * b.loss_mask.reshape({-1})).sum();
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

double eval_loss(policy::TransformerImpl& m, SftData& data, const SftRecipe& r, int64_t pad_id) {
  const auto& ev = data.eval();
  if (ev.empty()) return NAN;
  torch::NoGradGuard ng;
  compat::CpuAutocastGuard ac(r.train.compute == "bf16");
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

StatusOr<std::pair<data::Tokenizer, std::string>> prepare_tokenizer(
    const SftRecipe& r, const std::vector<TextExample>& examples,
    const data::ChatTemplateOptions& topts) {
  std::error_code ec;
  if (!r.tokenizer.path.empty()) {
    ASSIGN_OR_RETURN(auto tok, data::Tokenizer::load(r.tokenizer.path));
    return std::make_pair(std::move(tok), r.tokenizer.path);
  }
  if (!r.model.from.empty()) {
    const std::string p = r.model.from + "/tokenizer.model";
    if (!fs::exists(p, ec))
      return InvalidArgument("model.from={}: no tokenizer.model there; set tokenizer.path",
                             r.model.from);
    ASSIGN_OR_RETURN(auto tok, data::Tokenizer::load(p));
    return std::make_pair(std::move(tok), p);
  }
  const std::string path = r.checkpoint.dir + "/tokenizer.model";
  if (!fs::exists(path, ec)) {
    data::TokenizerTrainOptions opts;
    // The rendered texts, so the template's preamble gets its own pieces too.
    for (const auto& ex : examples) {
      data::ChatTemplateOptions o = topts;
      if (ex.system_prompt) o.system_prompt = ex.system_prompt;
      opts.lines.push_back(data::render_sft_example(o, ex.question, ex.response).text);
    }
    opts.vocab_size = static_cast<int>(r.tokenizer.vocab_size);
    R1_LOG(info, "training a {}-piece tokenizer on {} examples", opts.vocab_size, examples.size());
    RETURN_IF_ERROR(data::Tokenizer::train(opts, path));
  }
  ASSIGN_OR_RETURN(auto tok, data::Tokenizer::load(path));
  return std::make_pair(std::move(tok), path);
}

}  // namespace

StatusOr<SftResult> run_sft(const SftRecipe& r, const SftHooks& hooks) {
  if (r.dist.threads > 0) at::set_num_threads(static_cast<int>(r.dist.threads));
  std::error_code ec;
  fs::create_directories(r.checkpoint.dir, ec);
  if (ec) return Internal("create {}: {}", r.checkpoint.dir, ec.message());

  // 1. Examples, tokenizer, split.
  ASSIGN_OR_RETURN(std::vector<TextExample> examples, load_sft_examples(r));
  const data::ChatTemplateOptions topts = r.task.template_options();
  ASSIGN_OR_RETURN(auto tok_and_path, prepare_tokenizer(r, examples, topts));
  auto& [tok, tokenizer_path] = tok_and_path;
  int64_t dropped = 0;
  auto samples = tokenize_examples(examples, tok, topts, r.data.max_seq_len, &dropped);
  if (dropped > 0)
    R1_LOG(warn, "{} examples dropped: their prompt fills data.max_seq_len={}", dropped,
           r.data.max_seq_len);
  if (samples.size() < 2) return InvalidArgument("data: fewer than 2 usable examples");
  // A seeded shuffle decides the held-out split (JSONL files are often sorted).
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

  // 2. Model (fp32 master weights) and optimizer, resumed when a checkpoint exists.
  seed_everything(r.train.seed);
  ASSIGN_OR_RETURN(policy::Transformer model, r.model.build(tok.vocab_size(), r.train.seed));
  if (model->args().vocab_size < tok.vocab_size())
    return InvalidArgument("the model's vocabulary ({}) is smaller than the tokenizer's ({})",
                           model->args().vocab_size, tok.vocab_size());
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
  R1_LOG(info, "model: {:.2f}M parameters ({:.2f}M active), compute {}, {} threads", pc.total / 1e6,
         pc.active / 1e6, r.train.compute, at::get_num_threads());

  ASSIGN_OR_RETURN(auto metrics, MetricsWriter::open(r.checkpoint.dir + "/metrics.jsonl",
                                                     r.checkpoint.dir + "/tensorboard",
                                                     resume_dir.empty() ? -1 : start_step));
  const int64_t pad_id = tok.pad_id() >= 0 ? tok.pad_id() : tok.eos_id();
  const int64_t A = r.train.grad_accum, B = r.train.batch_size;
  const bool bf16 = r.train.compute == "bf16";
  SftResult result;
  model->train();
  auto params = model->parameters();
  double window_loss = 0, window_tokens = 0;
  int64_t window_n = 0;
  const auto t_start = std::chrono::steady_clock::now();
  auto t_window = t_start;
  std::vector<std::string> keys = {"loss", "eval_loss", "aux_loss",
                                   "lr",   "grad_norm", "tokens_per_s"};
  if (hooks.token_loss) keys.insert(keys.begin() + 1, hooks.token_loss_name);
  for (int64_t step = start_step; step < r.train.steps; ++step) {
    const double lr = lr_at(step, r.train.steps, r.train.optim);
    set_lr(*opt, lr);
    // The whole step's rows first: the loss is normalised by all their response tokens.
    auto rows = data.rows(step * A * B, A * B);
    std::vector<SftBatch> micro;
    int64_t n_loss = 0, n_tok = 0;
    for (int64_t a = 0; a < A; ++a) {
      std::vector<std::vector<const SftSample*>> mrows(rows.begin() + a * B,
                                                       rows.begin() + (a + 1) * B);
      micro.push_back(make_batch(mrows, r, pad_id));
      n_loss += micro.back().n_loss_tokens;
      n_tok += micro.back().n_tokens;
    }
    zero_grad(params);
    double nll = 0, aux = 0, mtp = 0, extra = 0;
    for (const auto& mb : micro) {
      compat::CpuAutocastGuard ac(bf16);
      SftLossTerms t = sft_loss_terms(*model, mb);
      torch::Tensor token_sum = t.nll_sum;
      if (hooks.token_loss) {
        const double w = hooks.token_loss_weight;
        auto e = hooks.token_loss(*model, mb, t.hidden);
        token_sum = (1 - w) * t.nll_sum + w * e;
        extra += e.item<double>();
      }
      auto loss = token_sum / std::max<int64_t>(n_loss, 1) + (t.aux + t.mtp) / A;
      loss.backward();
      nll += t.nll_sum.item<double>();
      aux += t.aux.item<double>() / A;
      mtp += t.mtp.item<double>() / A;
    }
    const double gnorm = clip_grad_norm(params, r.train.optim.grad_clip);
    opt->step();
    model->update_expert_bias(model->args().bias_update_gamma);
    const double step_loss = nll / std::max<int64_t>(n_loss, 1);
    if (step == start_step) result.first_loss = step_loss;
    window_loss += step_loss;
    window_tokens += n_tok;
    ++window_n;
    ++result.steps_run;

    const double minutes =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count() / 60;
    const bool out_of_time = r.train.max_minutes > 0 && minutes >= r.train.max_minutes;
    const bool last = step + 1 == r.train.steps || out_of_time;
    const bool log_now = (step + 1) % r.train.log_every == 0 || last;
    const bool eval_now = last || (r.train.eval_every > 0 && (step + 1) % r.train.eval_every == 0);
    std::map<std::string, double> m = {{"loss", step_loss},
                                       {"lr", lr},
                                       {"grad_norm", gnorm},
                                       {"epoch", static_cast<double>(data.epoch())},
                                       {"loss_tokens", static_cast<double>(n_loss)}};
    if (model->args().n_routed_experts > 0) m["aux_loss"] = aux;
    if (model->args().n_mtp_layers > 0) m["mtp_loss"] = mtp;
    if (hooks.token_loss) m[hooks.token_loss_name] = extra / std::max<int64_t>(n_loss, 1);
    if (eval_now) {
      const auto t_eval = std::chrono::steady_clock::now();
      m["eval_loss"] = result.eval_loss = eval_loss(*model, data, r, pad_id);
      t_window += std::chrono::steady_clock::now() - t_eval;  // tokens/s counts training only
    }
    if (log_now) {
      const double secs =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t_window).count();
      m["tokens_per_s"] = window_tokens / std::max(secs, 1e-9);
      auto shown = m;
      shown["loss"] = result.final_loss = window_loss / window_n;
      MetricsWriter::print(step + 1, r.train.steps, shown, keys);
      window_loss = window_tokens = 0;
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
    if (out_of_time) {
      R1_LOG(info, "train.max_minutes={} reached after step {}", r.train.max_minutes, step + 1);
      break;
    }
  }
  result.finished = true;
  ASSIGN_OR_RETURN(result.final_dir, save_final_model(*model, r.checkpoint.dir, tokenizer_path));
  return result;
}

}  // namespace r1kit::sft
