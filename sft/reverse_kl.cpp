#include "sft/reverse_kl.h"

#include <algorithm>

namespace r1kit::sft {

ReverseKlLoss sampled_reverse_kl(const torch::Tensor& student_logprobs,
                                 const torch::Tensor& teacher_logprobs, const torch::Tensor& mask) {
  TORCH_CHECK(student_logprobs.dim() == 2 && student_logprobs.sizes() == teacher_logprobs.sizes() &&
                  student_logprobs.sizes() == mask.sizes(),
              "sampled_reverse_kl: student, teacher and mask must all be [B, T], got ",
              student_logprobs.sizes(), ", ", teacher_logprobs.sizes(), ", ", mask.sizes());
  auto s = student_logprobs.to(torch::kFloat);           // [B, T]
  auto u = teacher_logprobs.detach().to(torch::kFloat);  // [B, T]
  auto m = mask.detach().to(torch::kFloat);              // [B, T]
  auto k = (s.detach() - u) * m;                         // [B, T] k_t, 0 off the mask
  ReverseKlLoss out;
  out.tokens = static_cast<int64_t>(m.sum().item<double>());
  const double n = static_cast<double>(std::max<int64_t>(out.tokens, 1));
  out.loss = (k * s).sum() / n;
  out.reverse_kl = k.sum().item<double>() / n;
  return out;
}

ReverseKlLoss full_reverse_kl(const torch::Tensor& student_logits,
                              const torch::Tensor& teacher_logits, const torch::Tensor& mask) {
  TORCH_CHECK(student_logits.dim() == 2 && student_logits.sizes() == teacher_logits.sizes(),
              "full_reverse_kl: student and teacher logits must both be [N, V], got ",
              student_logits.sizes(), " and ", teacher_logits.sizes());
  TORCH_CHECK(mask.numel() == student_logits.size(0), "full_reverse_kl: mask must be [N]");
  auto ls = torch::log_softmax(student_logits.to(torch::kFloat), /*dim=*/-1);           // [N, V]
  auto lt = torch::log_softmax(teacher_logits.detach().to(torch::kFloat), /*dim=*/-1);  // [N, V]
  auto kl = (ls.exp() * (ls - lt)).sum(/*dim=*/-1);                                     // [N]
  auto m = mask.detach().reshape({-1}).to(torch::kFloat);                               // [N]
  ReverseKlLoss out;
  out.tokens = static_cast<int64_t>(m.sum().item<double>());
  const double n = static_cast<double>(std::max<int64_t>(out.tokens, 1));
  out.loss = (kl * m).sum() / n;
  out.reverse_kl = out.loss.item<double>();
  return out;
}

}  // namespace r1kit::sft
