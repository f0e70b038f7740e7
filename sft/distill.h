// `r1kit distill RECIPE`: reasoning distilled from a teacher into a student, offline
// (mode: offline, below: teacher traces, then SFT) or on-policy (mode: on_policy: the
// student samples and learns the teacher's per-token log-probs on its own samples;
// sft/on_policy.h, loss in sft/reverse_kl.h).
//
// Follows DeepSeek-R1 §2.4 / §4.1 ("Distillation: Empower Small Models with Reasoning
// Capability"): the teacher samples reasoning traces, rejection sampling keeps the
// right and well-formed ones (R1 §2.3.3), and a smaller student of any configuration is
// fine-tuned on them with plain SFT (sft/sft.h, reused as is). Two stages, each
// skipped when its output exists, so an interrupted run continues:
//   (a) traces: problems from the recipe's task (data/task_source.h), rendered through
//       the chat template, K completions per prompt from a RolloutSource, scored by the
//       recipe's rewards; completions with total reward >= threshold (default: the sum
//       of the reward weights, i.e. right AND well-formed) that ended on EOS are kept,
//       deduplicated, at most M per prompt, into RUN/traces.jsonl
//       ({"prompt", "response", "reward", ...}: the SFT JSONL shape), with the sampling
//       keys stored beside it (sampling_inputs) so that a changed one is not reused;
//   (b) student: run_sft on the traces, with RUN as its run directory.
// Different on purpose:
// - optional logit distillation (R1 itself uses SFT only; this follows MiniLLM/
//   DistillKit-style top-k KD): when teacher and student share the tokenizer, the loss
//   at every response position is mixed with the teacher's top-k distribution,
//     loss = (1 - alpha) * NLL + alpha * KL(p_T^k || p_S),
//   p_T^k the teacher's top-k probabilities renormalised over the k tokens, p_S the
//   student's FULL-vocabulary log-probs of those k tokens (not renormalised: mass the
//   student puts outside the teacher's top-k is penalised too). Both are normalised by
//   the step's response tokens, like the NLL (sft.h).
// - truncated completions (no EOS within max_new_tokens) are rejected by default: a
//   student trained on them would learn not to stop.
#pragma once

#include <torch/torch.h>

#include <cmath>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "core/config.h"
#include "core/status.h"
#include "core/tls_files.h"
#include "data/task_source.h"
#include "data/tokenizer.h"
#include "policy/model.h"
#include "policy/model_config.h"
#include "reward/reward.h"
#include "rollout/rollout_source.h"
#include "sft/pretrain.h"
#include "sft/reverse_kl.h"
#include "sft/sft.h"

namespace r1kit::sft {

// ------------------------------------------------------------------ logit distillation

// Forward KL from the teacher's top-k distribution to the student, SUMMED over the
// positions with mask 1:
//   sum_n mask_n * sum_j p_nj * (log p_nj - s_nj),   p_n = softmax(teacher_logprobs_n)
// teacher_logprobs: [N, k] the teacher's log-probs of its k most likely tokens (any
//                   normalisation: they are renormalised over the k tokens here);
// student_logprobs: [N, k] the student's full-vocabulary log-probs of the same tokens;
// mask:             [N] float (or undefined: every position).
// Differentiable w.r.t. student_logprobs; the teacher side is detached. fp32 math.
torch::Tensor topk_forward_kl_sum(const torch::Tensor& student_logprobs,
                                  const torch::Tensor& teacher_logprobs,
                                  const torch::Tensor& mask = {});

// loss = (1 - alpha) * sft + alpha * kd.
inline torch::Tensor mix_distill_loss(const torch::Tensor& sft, const torch::Tensor& kd,
                                      double alpha) {
  return (1 - alpha) * sft + alpha * kd;
}

// The teacher's top-k at some positions of an SFT batch.
struct TeacherTopK {
  torch::Tensor logprobs;  // [N, k] float32 full-vocabulary log-probs, descending
  torch::Tensor ids;       // [N, k] int64 token ids
};
// Runs `teacher` (no grad) on the batch (same positions and attention mask as the
// student) and returns its top-k tokens at the flat positions `rows` ([N] int64 indices
// into B*T) among the first `vocab` ids (the shared tokenizer's).
TeacherTopK teacher_topk(policy::TransformerImpl& teacher, const SftBatch& batch,
                         const torch::Tensor& rows, int64_t k, int64_t vocab);

// The SftHooks::token_loss of logit distillation: the summed top-k forward KL at every
// response position of the batch. `teacher` is put in eval mode and never trained.
std::function<torch::Tensor(policy::TransformerImpl&, const SftBatch&, const torch::Tensor&)>
make_kd_token_loss(policy::Transformer teacher, int64_t top_k, int64_t vocab);

// ------------------------------------------------------------------ the recipe

// offline: teacher traces, then SFT (stages (a) and (b) above); on_policy: the student
// samples, the teacher scores (sft/on_policy.h).
enum class DistillMode { kOffline, kOnPolicy };
inline constexpr EnumName<DistillMode> kDistillModeNames[] = {
    {DistillMode::kOffline, "offline"}, {DistillMode::kOnPolicy, "on_policy"}};

struct TeacherSection {
  std::string from;  // the teacher checkpoint (with tokenizer.model)
  policy::Precision dtype = policy::Precision::kF32;  // sampling / scoring dtype (f32 | bf16)
  int64_t max_batch = 64;  // in-process engine: sequences decoded at once
  // gRPC rollout workers serving the teacher (`r1kit rollout-worker --model teacher.from`);
  // empty = the teacher runs in this process. teacher.from still names its checkpoint
  // (the tokenizer and the prompt format come from it).
  std::vector<std::string> workers;
  std::string token_file;  // bearer token for the workers; empty = none
  TlsClientFiles tls;      // TLS to the workers; off
  void visit(ConfigVisitor& v) {
    v.field("from", from,
            "teacher checkpoint directory with its tokenizer.model (e.g. runs/sft-tiny/final)");
    v.field("dtype", dtype, "teacher dtype while sampling or scoring", policy::kPrecisionNames);
    v.field("max_batch", max_batch, "in-process engine: sequences decoded at once",
            Range::at_least(1));
    v.field("workers", workers,
            "gRPC rollout workers serving teacher.from (host:port); empty = in-process teacher");
    v.field("token_file", token_file, "file holding the workers' bearer token");
    v.section("tls", tls,
              "TLS to the workers: ca_file (turns it on), cert_file/key_file (mutual TLS)");
  }
};

// mode: on_policy (sft/on_policy.h). Step s takes training problems [s*P, (s+1)*P) of the
// task; the student samples G completions of each (temperature 1, no truncation; sample
// j of problem i seeded with derive_seed(seed, {i, j})), the teacher scores them, and one
// AdamW step lowers the per-token reverse KL (sft/reverse_kl.h).
struct OnPolicySection {
  int64_t prompts_per_step = 16;                           // P: problems per optimizer step
  int64_t samples_per_prompt = 4;                          // G: student completions per problem
  int64_t max_new_tokens = 64;                             // completion cap, tokens
  ReverseKlEstimator loss = ReverseKlEstimator::kSampled;  // sampled | full
  int64_t max_batch = 64;      // the student's engine: sequences decoded at once
  uint64_t seed = 1;           // sampling seed
  int64_t eval_problems = 32;  // held-out problems of eval_reverse_kl; 0 = none
  void visit(ConfigVisitor& v) {
    v.field("prompts_per_step", prompts_per_step, "P: training problems per optimizer step",
            Range::at_least(1));
    v.field("samples_per_prompt", samples_per_prompt, "G: student completions per problem",
            Range::at_least(1));
    v.field("max_new_tokens", max_new_tokens, "completion cap, tokens", Range::at_least(1));
    v.field("loss", loss,
            "sampled: the teacher's log-probs of the sampled tokens, as a per-token policy-"
            "gradient penalty (any teacher, gRPC workers included); full: the exact reverse KL "
            "over the whole vocabulary (in-process teacher only; [tokens, V] logits in memory)",
            kReverseKlEstimatorNames);
    v.field("max_batch", max_batch, "the student's engine: sequences decoded at once",
            Range::at_least(1));
    v.field("seed", seed, "sampling seed (sample j of problem i: derive_seed(seed, {i, j}))");
    v.field("eval_problems", eval_problems,
            "held-out problems whose sampled reverse KL (eval_reverse_kl) is measured at "
            "train.eval_every and at the end; 0 = none",
            Range::non_negative());
  }
};

struct DistillSampleSection {
  int64_t n_prompts = 512;           // training problems the teacher answers
  int64_t samples_per_prompt = 8;    // K completions per problem
  int64_t keep_per_prompt = 2;       // M: most traces kept per problem
  std::optional<double> min_reward;  // keep total >= this; none = sum of reward weights
  bool require_stop = true;          // reject completions cut at max_new_tokens
  double temperature = 0.7;          // sampling temperature (0 = greedy)
  int64_t top_k = 0;                 // 0 = off
  double top_p = 1.0;                // 1 = off
  int64_t max_new_tokens = 128;      // completion cap, tokens
  int64_t prompts_per_batch = 64;    // prompts per generate() call (progress cadence)
  uint64_t seed = 1;                 // sampling seed
  std::string traces;                // trace file; "" = RUN/traces.jsonl
  void visit(ConfigVisitor& v) {
    v.field("n_prompts", n_prompts, "training problems the teacher answers", Range::at_least(1));
    v.field("samples_per_prompt", samples_per_prompt, "K: completions sampled per problem",
            Range::at_least(1));
    v.field("keep_per_prompt", keep_per_prompt, "M: most traces kept per problem (deduplicated)",
            Range::at_least(1));
    v.field("min_reward", min_reward,
            "keep completions whose total reward >= this; null = the sum of the reward "
            "weights (right and well-formed)");
    v.field("require_stop", require_stop, "reject completions that did not end on EOS");
    v.field("temperature", temperature, "sampling temperature; 0 = greedy", Range::non_negative());
    v.field("top_k", top_k, "keep the k most likely tokens; 0 = off", Range::non_negative());
    v.field("top_p", top_p, "nucleus sampling mass; 1 = off", Range::between(0, 1));
    v.field("max_new_tokens", max_new_tokens, "completion cap, tokens", Range::at_least(1));
    v.field("prompts_per_batch", prompts_per_batch, "prompts per generate() call",
            Range::at_least(1));
    v.field("seed", seed, "sampling seed (sample j of problem i: derive_seed(seed, {i, j}))");
    v.field("traces", traces,
            "trace JSONL; \"\" = RUN/traces.jsonl. Present: reused when sampled with the same "
            "sampling keys (recorded beside it), else sampled again");
  }
};

struct KdSection {
  double alpha = 0;    // weight of the logit-distillation loss; 0 = plain SFT
  int64_t top_k = 16;  // teacher tokens per position
  void visit(ConfigVisitor& v) {
    v.field("alpha", alpha,
            "loss = (1-alpha)*sft + alpha*kd; 0 = SFT on traces only (needs the teacher's "
            "tokenizer when > 0)",
            Range::between(0, 1));
    v.field("top_k", top_k, "teacher's most likely tokens per position", Range::at_least(1));
  }
};

struct DistillTokenizerSection {
  std::string path;  // the student's tokenizer; empty: model.from's, else the teacher's
  void visit(ConfigVisitor& v) {
    v.field("path", path, "student tokenizer; empty = model.from's, else the teacher's");
  }
};

struct DistillDataSection {
  double holdout_fraction = 0.05;  // traces held out for the student's eval loss
  bool pack = true;                // pack traces into rows of max_seq_len
  int64_t max_seq_len = 256;       // row length / truncation length
  uint64_t seed = 1;               // train/held-out split
  void visit(ConfigVisitor& v) {
    v.field("holdout_fraction", holdout_fraction, "share of traces held out for eval_loss",
            Range::between(0, 0.5));
    v.field("pack", pack, "pack several traces per row (see docs/sft.md)");
    v.field("max_seq_len", max_seq_len, "row length in tokens; longer traces are truncated",
            Range::at_least(8));
    v.field("seed", seed, "shuffles the train/held-out split");
  }
};

struct DistillRecipe {
  DistillMode mode = DistillMode::kOffline;
  TeacherSection teacher;
  data::TaskSection task;
  std::vector<reward::RewardSpec> reward;   // empty = the task's defaults
  std::vector<std::string> reward_plugins;  // shared libraries loaded before `reward` is built
  DistillSampleSection sample;
  policy::ModelConfig model;  // the student
  DistillTokenizerSection tokenizer;
  DistillDataSection data;
  KdSection kd;
  OnPolicySection on_policy;
  SftTrainSection train;
  train::CheckpointSection checkpoint{"runs/distill", 100, true};
  train::DistSection dist;

  void visit(ConfigVisitor& v) {
    v.field("mode", mode,
            "offline: teacher traces, then SFT (+ top-k KD); on_policy: the student samples and "
            "minimises the per-token reverse KL to the teacher on its own samples",
            kDistillModeNames);
    v.section("teacher", teacher, "the model whose traces are distilled");
    v.section("task", task, "problems the teacher answers (procedural or jsonl)");
    v.field("reward", reward,
            "list of {name, weight, role, ...args} filtering the traces (docs/rewards.md); "
            "empty = the task's checker + format");
    v.field("reward_plugins", reward_plugins,
            "reward plug-in libraries (.so) loaded at start, before `reward` is built; "
            "relative paths resolve against the current directory");
    v.section("sample", sample, "teacher sampling and rejection sampling");
    v.section("model", model, "the student (any preset, e.g. tiny-dense, or model.from)");
    v.section("tokenizer", tokenizer, "the student's tokenizer");
    v.section("data", data, "the student's SFT data (the traces)");
    v.section("kd", kd, "optional logit distillation mixed with the SFT loss (offline)");
    v.section("on_policy", on_policy, "mode: on_policy: sampling and loss");
    v.section("train", train,
              "the student's training loop (as sft recipes; on_policy: batch_size, grad_accum "
              "and eval_batches are unused, on_policy.prompts_per_step sets the batch)");
    v.section("checkpoint", checkpoint, "run directory: traces, student checkpoints, final/");
    v.section("dist", dist, "threads");
  }
  Status validate() const;

  std::string traces_path() const;
  // The SFT recipe of stage (b): data from the traces, the task's chat template.
  SftRecipe sft_recipe() const;
};

// ------------------------------------------------------------------ stage (a): traces

struct TraceStats {
  int64_t prompts = 0;       // problems sampled
  int64_t completions = 0;   // prompts * K
  int64_t passed = 0;        // completions with total >= threshold (and EOS if required)
  int64_t kept = 0;          // traces written (deduplicated, at most M per prompt)
  int64_t prompts_kept = 0;  // problems with at least one trace
  double threshold = 0;      // the reward threshold used
  double mean_reward = 0;    // mean total over judged completions
  double seconds = 0;        // wall time
  double acceptance() const { return completions > 0 ? double(passed) / completions : 0; }
  nlohmann::json to_json() const;
  static TraceStats from_json(const nlohmann::json& j);
};

// Samples, scores and filters traces for problems [0, opts.n_prompts) of `tasks` and
// writes them atomically to `out_path` (plus `out_path`.stats.json). Prompts are
// tasks.render(problem) encoded with `tok`; sampling stops on tok.stop_ids().
// `recipe`, when given, is stored in the stats file as "recipe" (sampling_inputs).
StatusOr<TraceStats> sample_traces(rollout::RolloutSource& teacher, const data::Tokenizer& tok,
                                   const data::TaskSource& tasks,
                                   const reward::CombinedReward& rewards,
                                   const DistillSampleSection& opts, const std::string& out_path,
                                   const nlohmann::json& recipe = {});

// The recipe keys that decide the traces (teacher, task, reward, reward_plugins, sample;
// not the engine batch, the trace path or the progress cadence), as config_to_json gives
// them. A rerun compares them with those stored beside the trace file: when one changed,
// the traces are sampled again if the student has not started training on them (no
// checkpoint, no final model), else the run is refused naming the key.
nlohmann::json sampling_inputs(const DistillRecipe& recipe);

// ------------------------------------------------------------------ the whole run

// Makes the teacher's RolloutSource (default: LocalRolloutSource::from_checkpoint of
// teacher.from): it samples the traces (offline) or scores the student's samples
// (on_policy, RolloutSource::score). apps/ pass the gRPC pool when teacher.workers is set;
// tests may pass a fake.
using TeacherFactory =
    std::function<StatusOr<std::unique_ptr<rollout::RolloutSource>>(const DistillRecipe&)>;

// The teacher's source: make_teacher(recipe) when given, else the in-process engine over
// teacher.from (teacher.dtype, teacher.max_batch); teacher.workers without a factory is
// an error (only apps/ link the gRPC client).
StatusOr<std::unique_ptr<rollout::RolloutSource>> make_teacher_source(
    const DistillRecipe& recipe, const TeacherFactory& make_teacher);

struct DistillResult {
  bool on_policy = false;  // mode: on_policy (no traces; student.*_loss are reverse KLs)
  TraceStats traces;       // of the sampling run (read back when it was skipped)
  bool sampled = false;    // false: the trace file existed and was reused
  SftResult student;       // stage (b) or on-policy; steps_run == 0 when final/ existed
  double eval_reverse_kl_before = NAN;  // on_policy: held-out reverse KL before the steps
  std::string traces_path;
};

StatusOr<DistillResult> run_distill(const DistillRecipe& recipe,
                                    const TeacherFactory& make_teacher = {});

}  // namespace r1kit::sft
