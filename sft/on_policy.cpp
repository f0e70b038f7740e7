#include "sft/on_policy.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>

#include "core/logging.h"
#include "core/metric_names.h"
#include "core/metrics.h"
#include "core/rng.h"
#include "core/torch_compat.h"
#include "policy/checkpoint.h"
#include "policy/logprobs.h"
#include "rollout/engine_settings.h"
#include "rollout/local_source.h"
#include "train/setup.h"

namespace r1kit::sft {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// The student's samples of one step, laid out for the loss: row b is sample b % G of
// problem b / G.
struct StudentSamples {
  std::vector<std::vector<int64_t>> prompts;      // [B] prompt ids
  std::vector<std::vector<int64_t>> completions;  // [B] completion ids
  std::vector<std::vector<float>> logprobs;       // [B] the engine's log pi_S of each token
  torch::Tensor ids;                              // [B, T] int64, right-padded with 0
  torch::Tensor mask;                             // [B, T] float, 1 on completion tokens
  int64_t tokens = 0;                             // sum of mask
  int64_t clipped = 0;                            // completions cut at max_new_tokens
  int64_t min_len = 0, max_len = 0;
};

// G samples of each problem from the student's source; prompt i gets index
// first_index + i (its seed stream).
StatusOr<StudentSamples> sample_student(rollout::RolloutSource& student,
                                        const data::TaskSource& tasks,
                                        const std::vector<data::TaskSample>& problems,
                                        uint64_t first_index, const data::Tokenizer& tok, int64_t G,
                                        int64_t max_new_tokens, uint64_t seed) {
  rollout::GenerateRequest req;
  req.group_size = G;
  req.sampling.temperature = 1.0;  // the student's own distribution: no truncation
  req.sampling.max_new_tokens = max_new_tokens;
  req.sampling.stop_token_ids = tok.stop_ids();
  req.sampling.seed = seed;
  for (size_t i = 0; i < problems.size(); ++i) {
    rollout::PromptInput p;
    for (int32_t id : tok.encode(tasks.render(problems[i]))) p.ids.push_back(id);
    p.index = static_cast<int64_t>(first_index + i);
    req.prompts.push_back(std::move(p));
  }
  ASSIGN_OR_RETURN(std::vector<rollout::Group> groups, student.generate(req));
  if (groups.size() != problems.size())
    return Internal("the student returned {} groups for {} prompts", groups.size(),
                    problems.size());
  StudentSamples s;
  int64_t T = 1;
  s.min_len = max_new_tokens;
  for (size_t i = 0; i < groups.size(); ++i)
    for (const rollout::Completion& c : groups[i].completions) {
      s.prompts.push_back(req.prompts[i].ids);
      s.completions.push_back(c.token_ids);
      s.logprobs.push_back(c.logprobs);
      const auto len = static_cast<int64_t>(c.token_ids.size());
      T = std::max(T, len);
      s.min_len = std::min(s.min_len, len);
      s.max_len = std::max(s.max_len, len);
      s.tokens += len;
      s.clipped += c.finish_reason == rollout::FinishReason::kLength;
    }
  const auto B = static_cast<int64_t>(s.completions.size());
  s.ids = torch::zeros({B, T}, torch::kLong);
  s.mask = torch::zeros({B, T}, torch::kFloat);
  auto ia = s.ids.accessor<int64_t, 2>();
  auto ma = s.mask.accessor<float, 2>();
  for (int64_t b = 0; b < B; ++b)
    for (size_t t = 0; t < s.completions[b].size(); ++t) {
      ia[b][t] = s.completions[b][t];
      ma[b][t] = 1.f;
    }
  return s;
}

// The teacher's log-probs of the samples' tokens, [B, T] (0 off the mask).
StatusOr<torch::Tensor> teacher_logprobs(rollout::RolloutSource& teacher, const StudentSamples& s) {
  rollout::ScoreRequest req{s.prompts, s.completions};
  ASSIGN_OR_RETURN(rollout::ScoreResult got, teacher.score(req));
  const std::string problem = rollout::score_result_problem(req, got);
  if (!problem.empty()) return Internal("the teacher's scores: {}", problem);
  auto out = torch::zeros(s.ids.sizes(), torch::kFloat);  // [B, T]
  auto oa = out.accessor<float, 2>();
  for (size_t b = 0; b < got.logprobs.size(); ++b)
    for (size_t t = 0; t < got.logprobs[b].size(); ++t) oa[b][t] = got.logprobs[b][t];
  return out;
}

// The held-out reverse KL: one sample of each of the first `n` held-out problems at
// temperature 1, mean over their tokens of log pi_S - log pi_T (the engine's log-probs
// are the student's own at temperature 1).
StatusOr<double> eval_reverse_kl(rollout::RolloutSource& student, rollout::RolloutSource& teacher,
                                 const data::TaskSource& tasks, const data::Tokenizer& tok,
                                 const OnPolicySection& op) {
  const auto& ev = tasks.eval();
  const size_t n = std::min(ev.size(), static_cast<size_t>(op.eval_problems));
  if (n == 0) return NAN;
  std::vector<data::TaskSample> problems(ev.begin(), ev.begin() + n);
  ASSIGN_OR_RETURN(StudentSamples s,
                   sample_student(student, tasks, problems, 0, tok, 1, op.max_new_tokens,
                                  derive_seed(op.seed, {0x4556414CULL})));  // "EVAL"
  ASSIGN_OR_RETURN(torch::Tensor u, teacher_logprobs(teacher, s));
  double sum = 0;
  auto ua = u.accessor<float, 2>();
  for (size_t b = 0; b < s.logprobs.size(); ++b)
    for (size_t t = 0; t < s.logprobs[b].size(); ++t) sum += s.logprobs[b][t] - ua[b][t];
  return s.tokens > 0 ? sum / static_cast<double>(s.tokens) : NAN;
}

// Logits [B*T, V] of the completion positions from completion_logprobs' hidden states, in
// fp32 also under bf16 autocast (as policy::token_logprobs' head).
torch::Tensor completion_logits(policy::TransformerImpl& m, const policy::CompletionLogProbs& lp) {
  compat::CpuAutocastOff fp32;
  const int64_t d = lp.hidden.size(-1);
  return torch::matmul(lp.hidden.reshape({-1, d}).to(torch::kFloat),
                       m.output_weight().to(torch::kFloat).t());
}

rollout::NamedTensors weights_of(policy::TransformerImpl& m) {
  rollout::NamedTensors out;
  for (const auto& p : m.named_parameters()) out.emplace_back(p.key(), p.value().detach());
  for (const auto& b : m.named_buffers()) out.emplace_back(b.key(), b.value().detach());
  return out;
}

// Keys that may change on resume: the SFT trainer's, where the teacher is served and how
// many sequences an engine decodes at once, and the offline mode's sections (unused here).
std::vector<std::string> on_policy_resumable_keys() {
  std::vector<std::string> keys = resumable_keys();
  for (const char* k : {"teacher.max_batch", "teacher.workers", "teacher.token_file", "teacher.tls",
                        "on_policy.max_batch", "on_policy.eval_problems", "sample", "data",
                        "reward", "reward_plugins"})
    keys.emplace_back(k);
  return keys;
}

// The student's tokenizer (tokenizer.path, else model.from's, else the teacher's), which
// must be the teacher's: the teacher scores the student's token ids.
StatusOr<train::ResolvedTokenizer> shared_tokenizer(const DistillRecipe& r) {
  const std::string teacher_path = data::tokenizer_file_in(r.teacher.from);
  const std::string student_path = !r.tokenizer.path.empty() ? r.tokenizer.path
                                   : !r.model.from.empty()   ? data::tokenizer_file_in(r.model.from)
                                                             : teacher_path;
  ASSIGN_OR_RETURN(data::Tokenizer ttok, data::Tokenizer::load(teacher_path));
  ASSIGN_OR_RETURN(data::Tokenizer stok, data::Tokenizer::load(student_path));
  if (ttok.model_bytes() != stok.model_bytes())
    return FailedPrecondition(
        "mode=on_policy: the student's tokenizer ({}) differs from the teacher's ({}); the "
        "teacher scores the student's token ids, so both must use the same tokenizer (set "
        "tokenizer.path to the teacher's, or start the student from a model that has it)",
        student_path, teacher_path);
  return train::ResolvedTokenizer{std::move(stok), student_path};
}

}  // namespace

StatusOr<OnPolicyResult> run_on_policy_distill(const DistillRecipe& r,
                                               const TeacherFactory& make_teacher) {
  RETURN_IF_ERROR(train::prepare_run(r.dist, r.checkpoint, r.model.from));
  OnPolicyResult out;
  SftResult& result = out.student;
  const std::string final_dir = r.checkpoint.dir + "/final";
  std::error_code ec;
  if (std::filesystem::exists(final_dir + "/model.safetensors", ec)) {
    R1_LOG(info, "student: {} exists (delete it to train again)", final_dir);
    result.finished = true;
    result.final_dir = final_dir;
    return out;
  }
  if (train::process_group().world_size() > 1)
    return Unimplemented("mode=on_policy runs in one process; start it without torchrun");
  const OnPolicySection& op = r.on_policy;
  ASSIGN_OR_RETURN(const data::TaskSection task, r.task.with_model_format(r.teacher.from));
  ASSIGN_OR_RETURN(const data::TaskSource tasks, data::TaskSource::create(task, r.teacher.from));
  ASSIGN_OR_RETURN(const train::ResolvedTokenizer resolved, shared_tokenizer(r));
  const data::Tokenizer& tok = resolved.tokenizer;

  // The student (fp32 master weights, AdamW), resumed from its newest checkpoint.
  train::TrainingRunOptions ro = train::run_options(r, tok.vocab_size(), resolved.path);
  ro.prompt_format = tasks.prompt_format();
  ro.may_change = on_policy_resumable_keys();
  ASSIGN_OR_RETURN(train::TrainingRun run, train::TrainingRun::start(std::move(ro)));
  policy::TransformerImpl& model = run.model();
  const int64_t start_step = run.start_step();
  const bool bf16 = run.bf16_compute();

  // The teacher: its full model for loss=full (scored through the same model otherwise).
  const bool full = op.loss == ReverseKlEstimator::kFull;
  policy::Transformer teacher_model{nullptr};
  std::unique_ptr<rollout::RolloutSource> teacher;
  if (full) {
    const rollout::EngineSettings te{
        r.teacher.max_batch, 1,
        std::string(enum_name<policy::Precision>(r.teacher.dtype, policy::kPrecisionNames))};
    ASSIGN_OR_RETURN(const policy::LoadOptions lo, te.load_options("teacher.dtype"));
    ASSIGN_OR_RETURN(teacher_model, policy::load_model(r.teacher.from, lo));
    if (teacher_model->args().vocab_size != model.args().vocab_size)
      return FailedPrecondition(
          "on_policy.loss=full: the teacher's vocabulary ({} ids) differs from the student's "
          "({}); use on_policy.loss=sampled",
          teacher_model->args().vocab_size, model.args().vocab_size);
    teacher_model->eval();
    teacher = std::make_unique<rollout::LocalRolloutSource>(teacher_model, te.engine_options());
  } else {
    ASSIGN_OR_RETURN(teacher, make_teacher_source(r, make_teacher));
  }
  const rollout::EngineSettings se{op.max_batch, 1};
  auto student = rollout::LocalRolloutSource::copy_of(model, se.engine_options(),
                                                      rollout::tokenizer_decoder(tok), start_step);
  R1_LOG(info,
         "on-policy distillation: teacher {}{}, {} x {} student samples a step, loss {}, up to "
         "{} tokens",
         r.teacher.from, r.teacher.workers.empty() ? "" : " (gRPC workers)", op.prompts_per_step,
         op.samples_per_prompt, enum_name<ReverseKlEstimator>(op.loss, kReverseKlEstimatorNames),
         op.max_new_tokens);

  result.eval_loss = NAN;
  if (op.eval_problems > 0) {
    ASSIGN_OR_RETURN(result.eval_loss, eval_reverse_kl(*student, *teacher, tasks, tok, op));
    R1_LOG(info, "on-policy: held-out reverse KL at step {}: {:.4f}", start_step, result.eval_loss);
  }
  out.eval_reverse_kl_before = result.eval_loss;
  model.train();
  auto params = model.parameters();
  double window_kl = 0;
  int64_t window_n = 0;
  const auto t_start = Clock::now();
  const ProgressLine progress(start_step, r.train.steps,
                              {metric::kReverseKl,
                               metric::kEvalReverseKl,
                               metric::kLr,
                               {metric::kGradNorm, "gnorm"},
                               {metric::kMeanLength, "len"},
                               {metric::kTokensPerS, "tok/s"}},
                              r.train.max_minutes * 60);
  for (int64_t step = start_step; step < r.train.steps; ++step) {
    const auto t_step = Clock::now();
    const double lr = run.set_lr_for_step(step, r.train.steps);
    const uint64_t first = static_cast<uint64_t>(step * op.prompts_per_step);
    auto problems = tasks.train_batch(first, op.prompts_per_step);
    ASSIGN_OR_RETURN(StudentSamples s,
                     sample_student(*student, tasks, problems, first, tok, op.samples_per_prompt,
                                    op.max_new_tokens, op.seed));
    const double t_generate = seconds_since(t_step);
    const auto t_teacher0 = Clock::now();
    torch::Tensor u;               // [B, T] teacher log-probs (loss=sampled)
    torch::Tensor teacher_logits;  // [B*T, V] (loss=full)
    if (full) {
      torch::NoGradGuard ng;
      compat::CpuAutocastGuard ac(bf16);
      auto lp = policy::completion_logprobs(*teacher_model, s.prompts, s.ids, s.mask, 1.0, false);
      teacher_logits = completion_logits(*teacher_model, lp);
    } else {
      ASSIGN_OR_RETURN(u, teacher_logprobs(*teacher, s));
    }
    const double t_teacher = seconds_since(t_teacher0);

    const auto t_train0 = Clock::now();
    train::zero_grad(params);
    ReverseKlLoss kl;
    double aux = 0;
    {
      compat::CpuAutocastGuard ac(bf16);
      auto lp = policy::completion_logprobs(model, s.prompts, s.ids, s.mask, 1.0, false);
      kl = full
               ? full_reverse_kl(completion_logits(model, lp), teacher_logits, s.mask.reshape({-1}))
               : sampled_reverse_kl(lp.logprobs, u, s.mask);
      auto loss = kl.loss + lp.aux_loss;
      loss.backward();
      aux = lp.aux_loss.item<double>();
    }
    const train::GuardedStep gs =
        train::guarded_step(run.optimizer(), params, r.train.optim.grad_clip, kl.reverse_kl + aux);
    train::update_expert_bias(model, run.dp());
    RETURN_IF_ERROR(student->update_weights(weights_of(model), step + 1));
    const double t_train = seconds_since(t_train0);
    if (step == start_step) result.first_loss = kl.reverse_kl;
    window_kl += kl.reverse_kl;
    ++window_n;
    ++result.steps_run;

    const double minutes = seconds_since(t_start) / 60;
    const bool out_of_time = r.train.max_minutes > 0 && minutes >= r.train.max_minutes;
    const bool last = step + 1 == r.train.steps || out_of_time;
    const bool log_now = (step + 1) % r.train.log_every == 0 || last;
    const bool eval_now =
        op.eval_problems > 0 &&
        (last || (r.train.eval_every > 0 && (step + 1) % r.train.eval_every == 0));
    const double n_seq = static_cast<double>(s.completions.size());
    std::map<std::string, double> m = {
        {metric::kLoss, kl.reverse_kl},
        {metric::kReverseKl, kl.reverse_kl},
        {metric::kLr, lr},
        {metric::kGradNorm, gs.grad_norm},
        {metric::kNumTokens, static_cast<double>(kl.tokens)},
        {metric::kMeanLength, static_cast<double>(s.tokens) / n_seq},
        {metric::kMinLength, static_cast<double>(s.min_len)},
        {metric::kMaxLength, static_cast<double>(s.max_len)},
        {metric::kClippedRatio, static_cast<double>(s.clipped) / n_seq},
        {metric::kTokensPerS,
         static_cast<double>(s.tokens) / std::max(seconds_since(t_step), 1e-9)},
        {metric::kTimeGenerate, t_generate},
        {metric::kTimeTeacher, t_teacher},
        {metric::kTimeTrain, t_train}};
    if (model.args().n_routed_experts > 0) m[metric::kAuxLoss] = aux;
    if (eval_now) {
      ASSIGN_OR_RETURN(result.eval_loss, eval_reverse_kl(*student, *teacher, tasks, tok, op));
      m[metric::kEvalReverseKl] = result.eval_loss;
    }
    if (log_now) {
      auto shown = m;
      shown[metric::kReverseKl] = result.final_loss = window_kl / window_n;
      progress.print(step + 1, shown);
      window_kl = 0;
      window_n = 0;
    }
    const Status counted = run.count_step(step + 1, gs.skipped, m);
    RETURN_IF_ERROR(run.metrics().write(step + 1, m));
    RETURN_IF_ERROR(counted);
    const bool stop = train::stop_invocation(result.steps_run, r.train.stop_after, last);
    if (run.checkpoint_due(step + 1, last, stop)) RETURN_IF_ERROR(run.save(step + 1));
    if (stop) {
      train::log_stopped(result.steps_run, "train.stop_after");
      return out;
    }
    if (out_of_time) {
      R1_LOG(info, "train.max_minutes={} reached after step {}", r.train.max_minutes, step + 1);
      break;
    }
  }
  if (op.eval_problems > 0 && result.steps_run > 0)
    R1_LOG(info, "on-policy: held-out reverse KL {:.4f} -> {:.4f}", out.eval_reverse_kl_before,
           result.eval_loss);
  result.finished = true;
  ASSIGN_OR_RETURN(result.final_dir, run.save_final());
  return out;
}

}  // namespace r1kit::sft
