// The loss of on-policy distillation (`r1kit distill` with mode: on_policy): the
// per-token reverse KL from the student to the teacher on the student's own samples.
//
// Follows Agarwal et al., "On-Policy Distillation of Language Models: Learning from
// Self-Generated Mistakes" (GKD, ICLR 2024; §3, student-generated data, lambda = 1, with
// the reverse KL as the divergence) and Thinking Machines' "On-Policy Distillation"
// (2025; the per-token reverse KL as a per-token advantage, discount 0). A batch is B
// completions y ~ pi_S(. | x) sampled at temperature 1 with no truncation from the current
// student; at every completion token t (mask m_t = 1) with context c_t = (x, y_<t):
//
//   s_t = log pi_S(y_t | c_t)   (student, differentiable)
//   u_t = log pi_T(y_t | c_t)   (teacher, fixed)
//   k_t = s_t - u_t             an unbiased one-sample estimate of KL_t below
//   KL_t = sum_v pi_S(v | c_t) (log pi_S(v | c_t) - log pi_T(v | c_t))
//
// Two estimators of the gradient of the mean per-token reverse KL, (1/N) sum_t m_t KL_t
// with N = sum_t m_t:
//
// - kSampled (the teacher's log-probs of the sampled tokens only: a teacher on gRPC
//   workers answers them through the Score RPC). A policy gradient with the per-token
//   reward -k_t (Thinking Machines):
//     loss = (1/N) sum_t m_t * sg(k_t) * s_t,          sg = stop-gradient
//   grad = (1/N) sum_t m_t k_t grad s_t, and E_{y_t ~ pi_S}[k_t grad s_t] = grad KL_t
//   (the score-function identity, E[grad s_t] = 0): unbiased for each visited context;
//   like discount 0, it ignores how y_t changes the later contexts.
// - kFull (an in-process teacher, same vocabulary): the exact per-position KL over the
//   whole vocabulary, differentiated directly (no sampling noise at a visited context):
//     loss = (1/N) sum_t m_t KL_t
//
// Both report `reverse_kl`: (1/N) sum_t m_t k_t for kSampled, (1/N) sum_t m_t KL_t for
// kFull (their expectations agree). The math runs in fp32.
//
// Different on purpose: no importance ratio. The completions come from a copy of the
// student's current weights (one optimizer step per batch), so pi_behaviour = pi_S; and
// no KL-to-reference or entropy term: the teacher is the only target.
#pragma once

#include <torch/torch.h>

#include <cstdint>

#include "core/config.h"

namespace r1kit::sft {

enum class ReverseKlEstimator { kSampled, kFull };
inline constexpr EnumName<ReverseKlEstimator> kReverseKlEstimatorNames[] = {
    {ReverseKlEstimator::kSampled, "sampled"}, {ReverseKlEstimator::kFull, "full"}};

struct ReverseKlLoss {
  torch::Tensor loss;     // scalar, differentiable: what backward() takes
  double reverse_kl = 0;  // detached: the mean per-token reverse KL (estimate), nats
  int64_t tokens = 0;     // N: completion tokens with mask 1
};

// kSampled. student_logprobs: [B, T] s_t (differentiable); teacher_logprobs: [B, T] u_t
// (detached here); mask: [B, T] float, 1 on completion tokens. N = 0 gives loss 0.
ReverseKlLoss sampled_reverse_kl(const torch::Tensor& student_logprobs,
                                 const torch::Tensor& teacher_logprobs, const torch::Tensor& mask);

// kFull. student_logits: [N', V] (differentiable); teacher_logits: [N', V] (detached
// here), both over the same vocabulary (log-softmax is taken here); mask: [N'] float.
ReverseKlLoss full_reverse_kl(const torch::Tensor& student_logits,
                              const torch::Tensor& teacher_logits, const torch::Tensor& mask);

}  // namespace r1kit::sft
