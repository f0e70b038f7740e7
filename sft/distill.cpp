#include "sft/distill.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <numeric>
#include <set>

#include "core/atomic_file.h"
#include "core/json.h"
#include "core/logging.h"
#include "core/stop_signal.h"
#include "policy/checkpoint.h"
#include "reward/plugin.h"
#include "reward/score_group.h"
#include "rollout/engine_settings.h"
#include "rollout/local_source.h"
#include "sft/on_policy.h"
#include "train/checkpoint.h"
#include "train/setup.h"

namespace r1kit::sft {
namespace fs = std::filesystem;

// ------------------------------------------------------------------ logit distillation

torch::Tensor topk_forward_kl_sum(const torch::Tensor& student_logprobs,
                                  const torch::Tensor& teacher_logprobs,
                                  const torch::Tensor& mask) {
  TORCH_CHECK(student_logprobs.dim() == 2 && student_logprobs.sizes() == teacher_logprobs.sizes(),
              "topk_forward_kl_sum: student and teacher log-probs must both be [N, k]");
  auto t = torch::log_softmax(teacher_logprobs.detach().to(torch::kFloat), /*dim=*/-1);  // [N, k]
  auto s = student_logprobs.to(torch::kFloat);                                           // [N, k]
  auto kl = (t.exp() * (t - s)).sum(/*dim=*/-1);                                         // [N]
  if (mask.defined()) {
    TORCH_CHECK(mask.numel() == kl.numel(), "topk_forward_kl_sum: mask must be [N]");
    kl = kl * mask.reshape({-1}).to(torch::kFloat);
  }
  return kl.sum();
}

TeacherTopK teacher_topk(policy::TransformerImpl& teacher, const SftBatch& b,
                         const torch::Tensor& rows, int64_t k, int64_t vocab) {
  torch::NoGradGuard ng;
  policy::ForwardOptions fo;
  fo.positions = b.positions;
  fo.attn_mask = b.attn_mask;
  fo.token_mask = b.token_mask;  // padding: no feed-forward work
  fo.compute_logits = false;
  auto out = teacher.forward(b.inputs, fo);
  const int64_t d = out.hidden.size(-1);
  auto h = out.hidden.reshape({-1, d}).index_select(0, rows).to(torch::kFloat);  // [N, d]
  auto w = teacher.output_weight().to(torch::kFloat);                            // [V_t, d]
  auto lp = torch::log_softmax(torch::matmul(h, w.t()), /*dim=*/-1);             // [N, V_t]
  vocab = std::min<int64_t>(vocab, lp.size(1));
  auto [values, ids] = lp.narrow(1, 0, vocab).topk(std::min(k, vocab), /*dim=*/-1);
  return {values, ids};
}

std::function<torch::Tensor(policy::TransformerImpl&, const SftBatch&, const torch::Tensor&)>
make_kd_token_loss(policy::Transformer teacher, int64_t top_k, int64_t vocab) {
  teacher->eval();
  std::shared_ptr<policy::TransformerImpl> t = teacher.ptr();
  return [t, top_k, vocab](policy::TransformerImpl& student, const SftBatch& b,
                           const torch::Tensor& hidden) {
    auto rows = b.loss_mask.reshape({-1}).nonzero().reshape({-1});  // [N] response positions
    auto top = teacher_topk(*t, b, rows, top_k, vocab);             // [N, k]
    const int64_t d = hidden.size(-1);
    auto h = hidden.reshape({-1, d}).index_select(0, rows).to(torch::kFloat);       // [N, d]
    auto logits = torch::matmul(h, student.output_weight().to(torch::kFloat).t());  // [N, V_s]
    auto lp = torch::log_softmax(logits.to(torch::kFloat), /*dim=*/-1).gather(1, top.ids);
    return topk_forward_kl_sum(lp, top.logprobs);
  };
}

// ------------------------------------------------------------------ the recipe

Status DistillRecipe::validate() const {
  if (teacher.from.empty())
    return InvalidArgument("teacher.from: the teacher checkpoint is required");
  RETURN_IF_ERROR(task.validate());
  RETURN_IF_ERROR(teacher.tls.validate());
  if (mode == DistillMode::kOnPolicy) {
    if (kd.alpha > 0)
      return InvalidArgument(
          "kd.alpha={} with mode=on_policy: top-k logit distillation is the offline mode's; "
          "on-policy distillation has its own loss (on_policy.loss); set kd.alpha=0",
          kd.alpha);
    if (train.grad_accum != 1)
      return InvalidArgument(
          "train.grad_accum={} with mode=on_policy: a step is on_policy.prompts_per_step "
          "problems in one batch; set train.grad_accum=1",
          train.grad_accum);
    if (on_policy.loss == ReverseKlEstimator::kFull && !teacher.workers.empty())
      return InvalidArgument(
          "on_policy.loss=full with teacher.workers: the full-vocabulary reverse KL needs the "
          "teacher's logits in this process; use on_policy.loss=sampled (the workers' Score "
          "RPC) or drop teacher.workers");
  }
  if (sample.keep_per_prompt > sample.samples_per_prompt)
    return InvalidArgument(
        "sample.keep_per_prompt={} is more than sample.samples_per_prompt={}: at most K of "
        "the K samples can be kept",
        sample.keep_per_prompt, sample.samples_per_prompt);
  return sft_recipe().validate();
}

std::string DistillRecipe::traces_path() const {
  return sample.traces.empty() ? checkpoint.dir + "/traces.jsonl" : sample.traces;
}

SftRecipe DistillRecipe::sft_recipe() const {
  SftRecipe r;
  r.model = model;
  if (!tokenizer.path.empty())
    r.tokenizer.path = tokenizer.path;
  else if (model.from.empty())
    r.tokenizer.path = data::tokenizer_file_in(teacher.from);
  r.data.source = SftSource::kJsonl;
  r.data.path = traces_path();
  r.data.seed = data.seed;
  r.task = task;  // its chat template renders the traces' prompts
  r.data.holdout_fraction = data.holdout_fraction;
  r.data.pack = data.pack;
  r.data.max_seq_len = data.max_seq_len;
  r.train = train;
  r.checkpoint = checkpoint;
  r.dist = dist;
  return r;
}

// ------------------------------------------------------------------ stage (a): traces

nlohmann::json TraceStats::to_json() const {
  return {{"prompts", prompts},
          {"completions", completions},
          {"passed", passed},
          {"kept", kept},
          {"prompts_kept", prompts_kept},
          {"threshold", threshold},
          {"mean_reward", mean_reward},
          {"seconds", seconds},
          {"acceptance", acceptance()}};
}

TraceStats TraceStats::from_json(const nlohmann::json& j) {
  TraceStats s;
  s.prompts = j.value("prompts", int64_t{0});
  s.completions = j.value("completions", int64_t{0});
  s.passed = j.value("passed", int64_t{0});
  s.kept = j.value("kept", int64_t{0});
  s.prompts_kept = j.value("prompts_kept", int64_t{0});
  s.threshold = j.value("threshold", 0.0);
  s.mean_reward = j.value("mean_reward", 0.0);
  s.seconds = j.value("seconds", 0.0);
  return s;
}

StatusOr<TraceStats> sample_traces(rollout::RolloutSource& teacher, const data::Tokenizer& tok,
                                   const data::TaskSource& tasks,
                                   const reward::CombinedReward& rewards,
                                   const DistillSampleSection& o, const std::string& out_path,
                                   const nlohmann::json& recipe) {
  if (tok.eos_id() < 0) return FailedPrecondition("the teacher's tokenizer has no EOS id");
  const auto t0 = std::chrono::steady_clock::now();
  TraceStats st;
  if (o.min_reward) {
    st.threshold = *o.min_reward;
  } else {
    for (const auto& c : rewards.components()) st.threshold += c.weight;
  }
  rollout::SamplingParams sp;
  sp.temperature = o.temperature;
  sp.top_k = o.top_k;
  sp.top_p = o.top_p;
  sp.max_new_tokens = o.max_new_tokens;
  sp.stop_token_ids = tok.stop_ids();
  sp.seed = o.seed;
  const rollout::DecodeFn decode = rollout::tokenizer_decoder(tok);

  std::string out;             // the JSONL text
  std::set<std::string> seen;  // question + '\0' + response: no duplicate trace anywhere
  double reward_sum = 0;
  int64_t judged = 0;
  for (int64_t first = 0; first < o.n_prompts; first += o.prompts_per_batch) {
    const int64_t n = std::min(o.prompts_per_batch, o.n_prompts - first);
    auto problems = tasks.train_batch(static_cast<uint64_t>(first), n);
    rollout::GenerateRequest req;
    req.group_size = o.samples_per_prompt;
    req.sampling = sp;
    std::vector<std::string> rendered;
    for (int64_t i = 0; i < n; ++i) {
      rendered.push_back(tasks.render(problems[i]));
      rollout::PromptInput p;
      for (int32_t id : tok.encode(rendered.back())) p.ids.push_back(id);
      p.index = first + i;
      req.prompts.push_back(std::move(p));
    }
    ASSIGN_OR_RETURN(auto groups, teacher.generate(req));
    if (static_cast<int64_t>(groups.size()) != n)
      return Internal("the teacher returned {} groups for {} prompts", groups.size(), n);
    for (int64_t i = 0; i < n; ++i) {
      const auto& problem = problems[i];
      const auto& g = groups[i];
      const reward::ScoredGroup group = reward::score_completions(
          rewards, rendered[i], problem.metadata, g.completions, decode, sp.stop_token_ids);
      const std::vector<reward::Sample>& samples = group.samples;
      const reward::GroupScores& scores = group.scores;
      // Candidates: passed the threshold (and stopped), best total first, then sample order.
      std::vector<size_t> passed;
      for (size_t j = 0; j < samples.size(); ++j) {
        const double r = scores.total[j];
        ++st.completions;
        if (reward::is_no_score(r)) continue;
        reward_sum += r;
        ++judged;
        if (r < st.threshold) continue;
        if (o.require_stop && g.completions[j].finish_reason != rollout::FinishReason::kStop)
          continue;
        ++st.passed;
        passed.push_back(j);
      }
      std::stable_sort(passed.begin(), passed.end(),
                       [&](size_t a, size_t b) { return scores.total[a] > scores.total[b]; });
      int64_t kept_here = 0;
      for (size_t j : passed) {
        if (kept_here >= o.keep_per_prompt) break;
        if (!seen.insert(problem.question + '\0' + samples[j].completion).second) continue;
        nlohmann::json comps = nlohmann::json::object();
        for (size_t c = 0; c < scores.names.size(); ++c)
          comps[scores.names[c]] = scores.components[c][j];
        nlohmann::json line = {{"prompt", problem.question},
                               {"response", samples[j].completion},
                               {"reward", scores.total[j]},
                               {"rewards", comps},
                               {"index", first + i},
                               {"sample", j},
                               {"tokens", g.completions[j].token_ids.size()},
                               {"metadata", problem.metadata}};
        out += line.dump() + "\n";
        ++kept_here;
      }
      st.kept += kept_here;
      st.prompts_kept += kept_here > 0;
    }
    st.prompts += n;
    R1_LOG(info, "traces: {}/{} prompts, {} of {} completions pass (acceptance {:.1f}%), {} kept",
           st.prompts, o.n_prompts, st.passed, st.completions, 100.0 * st.acceptance(), st.kept);
  }
  st.mean_reward = judged > 0 ? reward_sum / judged : 0;
  st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  RETURN_IF_ERROR(write_file_atomic(out_path, out));
  nlohmann::json stats = st.to_json();
  if (!recipe.is_null()) stats["recipe"] = recipe;
  RETURN_IF_ERROR(write_file_atomic(out_path + ".stats.json", stats.dump(2) + "\n"));
  return st;
}

// ------------------------------------------------------------------ the whole run

namespace {

StatusOr<std::unique_ptr<rollout::RolloutSource>> local_teacher(const DistillRecipe& r) {
  const rollout::EngineSettings engine{
      r.teacher.max_batch, 1,
      std::string(enum_name<policy::Precision>(r.teacher.dtype, policy::kPrecisionNames))};
  ASSIGN_OR_RETURN(const policy::LoadOptions lo, engine.load_options("teacher.dtype"));
  ASSIGN_OR_RETURN(auto src, rollout::LocalRolloutSource::from_checkpoint(
                                 r.teacher.from, engine.engine_options(), lo));
  return std::unique_ptr<rollout::RolloutSource>(std::move(src));
}

// Keys of sampling_inputs that do not change the traces.
const std::vector<std::string>& trace_reusable_keys() {
  static const std::vector<std::string> keys = {"teacher.max_batch",  "teacher.workers",
                                                "teacher.token_file", "teacher.tls",
                                                "sample.traces",      "sample.prompts_per_batch"};
  return keys;
}

// Whether the trace file (present) is reused: yes when it was sampled with the keys of
// the recipe now, or before they were recorded (a trace file of the user's own); no (sample
// again) when a key changed and the student has not trained on it yet; else an error
// naming the key.
StatusOr<bool> reuse_traces(const DistillRecipe& r, const std::string& path,
                            const nlohmann::json& stats) {
  if (!stats.is_object() || !stats.contains("recipe")) return true;
  const nlohmann::json now = sampling_inputs(r);
  const std::string key = train::first_changed_key(stats["recipe"], now, trace_reusable_keys());
  if (key.empty()) return true;
  const std::string was = train::json_at_path(stats["recipe"], key).dump();
  const std::string is = train::json_at_path(now, key).dump();
  std::error_code ec;
  if (fs::exists(r.checkpoint.dir + "/final", ec) ||
      !train::latest_checkpoint(r.checkpoint.dir).empty())
    return FailedPrecondition(
        "{} was sampled with {}={}, the recipe now has {}, and the student in {} was trained on "
        "it; restore the key, or use another checkpoint.dir",
        path, key, was, is, r.checkpoint.dir);
  R1_LOG(warn, "traces: {} was sampled with {}={}, the recipe now has {}: sampling again", path,
         key, was, is);
  return false;
}

}  // namespace

nlohmann::json sampling_inputs(const DistillRecipe& r) {
  const nlohmann::json all = config_to_json(r);
  nlohmann::json out = nlohmann::json::object();
  for (const char* k : {"teacher", "task", "reward", "reward_plugins", "sample"}) out[k] = all[k];
  return out;
}

StatusOr<std::unique_ptr<rollout::RolloutSource>> make_teacher_source(
    const DistillRecipe& r, const TeacherFactory& make_teacher) {
  if (make_teacher) return make_teacher(r);
  if (!r.teacher.workers.empty())
    return InvalidArgument(
        "teacher.workers is set but this build of the trainer has no gRPC client; run it "
        "through `r1kit distill`");
  return local_teacher(r);
}

StatusOr<DistillResult> run_distill(const DistillRecipe& r, const TeacherFactory& make_teacher) {
  if (r.mode == DistillMode::kOnPolicy) {
    DistillResult res;
    res.on_policy = true;
    ASSIGN_OR_RETURN(OnPolicyResult op, run_on_policy_distill(r, make_teacher));
    res.student = std::move(op.student);
    res.eval_reverse_kl_before = op.eval_reverse_kl_before;
    return res;
  }
  RETURN_IF_ERROR(reward::load_reward_plugins(r.reward_plugins));  // before rewards are built
  RETURN_IF_ERROR(train::prepare_run(r.dist, r.checkpoint));
  std::error_code ec;
  DistillResult res;
  res.traces_path = r.traces_path();
  // The prompt format teacher.from records, unless the recipe names one
  // (data/prompt_format.h): the traces' prompts and the student's.
  ASSIGN_OR_RETURN(const data::TaskSection task, r.task.with_model_format(r.teacher.from));
  const std::string teacher_tok_path = data::tokenizer_file_in(r.teacher.from);

  // (a) Traces, unless the file is there already, sampled with the same keys: by rank 0
  // alone, while the other ranks wait and then reuse them.
  train::DataParallel& dp = train::process_group();
  if (dp.rank() != 0) dp.barrier();
  bool reuse = false;
  if (fs::exists(res.traces_path, ec)) {
    auto stats = read_file(res.traces_path + ".stats.json");
    const auto j = stats.ok() ? parse_json_or_discarded(*stats) : nlohmann::json();
    ASSIGN_OR_RETURN(reuse, reuse_traces(r, res.traces_path, j));
    if (reuse && j.is_object()) res.traces = TraceStats::from_json(j);
  }
  if (reuse) {
    R1_LOG(info, "traces: reusing {} (delete it to sample again)", res.traces_path);
  } else {
    ASSIGN_OR_RETURN(auto tok, data::Tokenizer::load(teacher_tok_path));
    ASSIGN_OR_RETURN(auto tasks, data::TaskSource::create(task, r.teacher.from));
    ASSIGN_OR_RETURN(auto rewards, reward::build_task_rewards(r.reward, task.default_rewards()));
    ASSIGN_OR_RETURN(auto teacher, make_teacher_source(r, make_teacher));
    std::string names;
    for (const auto& c : rewards.components())
      names += fmt::format("{}{} x{} ({})", names.empty() ? "" : ", ", c.name, c.weight, c.role);
    R1_LOG(info, "traces: teacher {} samples {} x {} completions (rewards: {})", r.teacher.from,
           r.sample.n_prompts, r.sample.samples_per_prompt, names);
    ASSIGN_OR_RETURN(res.traces, sample_traces(*teacher, tok, tasks, rewards, r.sample,
                                               res.traces_path, sampling_inputs(r)));
    res.sampled = true;
  }
  R1_LOG(info,
         "traces: {} kept from {} prompts ({} with a trace); {} of {} completions reached reward "
         ">= {:g}: acceptance {:.1f}%, mean reward {:.3f}",
         res.traces.kept, res.traces.prompts, res.traces.prompts_kept, res.traces.passed,
         res.traces.completions, res.traces.threshold, 100.0 * res.traces.acceptance(),
         res.traces.mean_reward);

  if (dp.rank() == 0) dp.barrier();
  if (stop_requested()) {  // Ctrl-C while the teacher sampled: the traces are kept
    R1_LOG(info, "stopped by signal {} after the traces; rerun to train the student",
           stop_signal());
    return res;
  }

  // (b) The student, unless its final model is there already.
  const std::string final_dir = r.checkpoint.dir + "/final";
  if (fs::exists(final_dir + "/model.safetensors", ec)) {
    R1_LOG(info, "student: {} exists (delete it to train again)", final_dir);
    res.student.finished = true;
    res.student.final_dir = final_dir;
    return res;
  }
  SftRecipe sr = r.sft_recipe();
  sr.task = task;
  // Fewer than 2 traces (an empty file included): say why, rather than "no examples".
  ASSIGN_OR_RETURN(const std::string text, read_file(res.traces_path));
  const auto n_traces = std::count(text.begin(), text.end(), '\n');
  std::vector<TextExample> examples;
  if (n_traces >= 2) {
    ASSIGN_OR_RETURN(examples, read_sft_jsonl(res.traces_path));
  }
  if (examples.size() < 2)
    return FailedPrecondition(
        "{}: {} traces, too few to train on (acceptance {:.1f}%); sample more "
        "(sample.n_prompts, sample.samples_per_prompt), lower sample.min_reward, or use a "
        "better teacher; delete the file to sample again",
        res.traces_path, examples.size(), 100.0 * res.traces.acceptance());
  SftHooks hooks;  // the examples are sr's data.path, the traces
  if (r.kd.alpha > 0) {
    // Logit distillation needs one vocabulary: the student's tokenizer must be the teacher's.
    const std::string student_tok_path =
        !sr.tokenizer.path.empty() ? sr.tokenizer.path : data::tokenizer_file_in(sr.model.from);
    ASSIGN_OR_RETURN(auto ttok, data::Tokenizer::load(teacher_tok_path));
    ASSIGN_OR_RETURN(auto stok, data::Tokenizer::load(student_tok_path));
    if (ttok.model_bytes() != stok.model_bytes())
      return FailedPrecondition(
          "kd.alpha={}: the student's tokenizer ({}) differs from the teacher's ({}); logit "
          "distillation needs a shared vocabulary (set kd.alpha=0 or share the tokenizer)",
          r.kd.alpha, student_tok_path, teacher_tok_path);
    ASSIGN_OR_RETURN(policy::Transformer teacher, policy::load_model(r.teacher.from));
    hooks.token_loss = make_kd_token_loss(teacher, r.kd.top_k, ttok.vocab_size());
    hooks.token_loss_weight = r.kd.alpha;
    hooks.token_loss_name = "kd_loss";
    R1_LOG(info, "student: SFT mixed with top-{} logit distillation, alpha {}", r.kd.top_k,
           r.kd.alpha);
  }
  ASSIGN_OR_RETURN(res.student, run_sft(sr, hooks));
  return res;
}

}  // namespace r1kit::sft
