// The clipped policy loss; see policy_loss.h for the formulas and the normalisation
// contract.
#include "grpo/policy_loss.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace r1kit::grpo {
namespace {

constexpr double kMaxLogRatio = 20.0;  // exp(20) ~ 5e8: keeps ratios finite (verl clamps too)

void check_bt(const torch::Tensor& t, const torch::Tensor& mask, const char* name) {
  TORCH_CHECK(t.defined(), "policy_loss: ", name, " is undefined");
  TORCH_CHECK(t.sizes() == mask.sizes(), "policy_loss: ", name, " ", t.sizes(), " must match mask ",
              mask.sizes());
}

// x where the mask holds, 0 elsewhere (gradient flows only through loss tokens).
torch::Tensor masked(const torch::Tensor& x, const torch::Tensor& mask_b) {
  return torch::where(mask_b, x, torch::zeros_like(x));
}

double masked_mean(const torch::Tensor& x, const torch::Tensor& mask_b, int64_t n) {
  if (n == 0) return 0.0;
  return masked(x, mask_b).sum().item<double>() / static_cast<double>(n);
}

// The per-token surrogate loss [B, T] of `ratio` (with grad) and advantages [B, 1];
// *dual_active gets where the dual clip replaced it (undefined when off).
torch::Tensor surrogate_loss(const torch::Tensor& adv, const torch::Tensor& ratio,
                             const PolicyLossOptions& opt, torch::Tensor* dual_active) {
  auto clipped = ratio.clamp(1.0 - opt.eps_low, 1.0 + opt.eps_high);
  if (opt.surrogate == Surrogate::kCispo) {
    // -sg(clip(r)) A log pi, as -sg(clip(r)) A r / sg(r): the same gradient.
    return -adv * clipped.detach() * (ratio / ratio.detach());
  }
  auto pg1 = -adv * ratio;
  auto pg2 = -adv * clipped;
  auto pg = torch::where(pg2 > pg1, pg2, pg1);  // max; ties take the unclipped branch
  if (opt.dual_clip_c > 0) {
    auto pg3 = (-adv * opt.dual_clip_c).expand_as(pg);
    *dual_active = (adv < 0).expand_as(pg) & (pg3 < pg);
    pg = torch::where(*dual_active, pg3, pg);
  }
  return pg;
}

}  // namespace

LossNormalizer make_normalizer(const std::vector<torch::Tensor>& micro_batch_masks,
                               double max_length) {
  LossNormalizer n;
  n.max_length = max_length;
  for (const auto& m : micro_batch_masks) {
    TORCH_CHECK(m.dim() == 2, "make_normalizer: masks must be [B, T], got ", m.sizes());
    auto mb = m > 0;
    n.tokens += static_cast<double>(mb.sum().item<int64_t>());
    n.sequences += static_cast<double>(mb.any(/*dim=*/1).sum().item<int64_t>());
  }
  return n;
}

torch::Tensor aggregate_loss(const torch::Tensor& values, const torch::Tensor& mask,
                             LossAggregation mode, const LossNormalizer& norm) {
  TORCH_CHECK(values.dim() == 2 && values.sizes() == mask.sizes(), "aggregate_loss: values ",
              values.sizes(), " and mask ", mask.sizes(), " must both be [B, T]");
  auto mb = mask > 0;
  auto v = masked(values, mb);  // [B, T]
  switch (mode) {
    case LossAggregation::kTokenMean:
      TORCH_CHECK(norm.tokens > 0, "aggregate_loss: token-mean needs norm.tokens > 0");
      return v.sum() / norm.tokens;
    case LossAggregation::kSeqMeanTokenMean: {
      TORCH_CHECK(norm.sequences > 0,
                  "aggregate_loss: seq-mean-token-mean needs norm.sequences > 0");
      auto len = mb.sum(/*dim=*/1).clamp_min(1).to(v.scalar_type());  // [B]
      return (v.sum(/*dim=*/1) / len).sum() / norm.sequences;
    }
    case LossAggregation::kSeqMeanTokenSumNorm:
      TORCH_CHECK(norm.sequences > 0 && norm.max_length > 0,
                  "aggregate_loss: seq-mean-token-sum-norm needs norm.sequences > 0 and "
                  "norm.max_length > 0 (the generation cap)");
      return v.sum() / (norm.sequences * norm.max_length);
    case LossAggregation::kSeqMeanTokenSum:
      TORCH_CHECK(norm.sequences > 0,
                  "aggregate_loss: seq-mean-token-sum needs norm.sequences > 0");
      return v.sum() / norm.sequences;
  }
  TORCH_CHECK(false, "aggregate_loss: unknown mode");
}

torch::Tensor truncated_is_weights(const torch::Tensor& old_logprobs,
                                   const torch::Tensor& behaviour_logprobs,
                                   const torch::Tensor& mask, TisLevel level, double cap) {
  TORCH_CHECK(old_logprobs.sizes() == mask.sizes() && behaviour_logprobs.sizes() == mask.sizes(),
              "truncated_is_weights: old ", old_logprobs.sizes(), ", behaviour ",
              behaviour_logprobs.sizes(), " and mask ", mask.sizes(), " must match");
  TORCH_CHECK(cap >= 1, "truncated_is_weights: cap must be >= 1, got ", cap);
  torch::NoGradGuard no_grad;
  auto mb = mask > 0;
  auto ones = torch::ones(mask.sizes(), old_logprobs.options().dtype(torch::kFloat32));
  if (level == TisLevel::kNone) return ones;
  auto d = masked(old_logprobs.to(torch::kFloat32) - behaviour_logprobs.to(torch::kFloat32), mb);
  torch::Tensor w;
  if (level == TisLevel::kToken) {
    w = d.clamp(-kMaxLogRatio, kMaxLogRatio).exp().clamp_max(cap);  // [B, T]
  } else {
    auto seq = d.sum(/*dim=*/1, /*keepdim=*/true).clamp(-kMaxLogRatio, kMaxLogRatio);  // [B, 1]
    w = seq.exp().clamp_max(cap).expand_as(d);                                         // [B, T]
  }
  return torch::where(mb, w, ones);
}

torch::Tensor mask_truncated(const torch::Tensor& mask, const torch::Tensor& truncated) {
  TORCH_CHECK(mask.dim() == 2 && truncated.dim() == 1 && truncated.size(0) == mask.size(0),
              "mask_truncated: mask [B, T] and truncated [B], got ", mask.sizes(), " and ",
              truncated.sizes());
  auto keep = truncated.to(torch::kBool).logical_not().unsqueeze(1);  // [B, 1]
  return mask * keep.to(mask.scalar_type());
}

void PolicyLossStats::merge(const PolicyLossStats& o) {
  const double n = static_cast<double>(tokens), m = static_cast<double>(o.tokens);
  auto mix = [&](double a, double b) { return n + m > 0 ? (a * n + b * m) / (n + m) : 0.0; };
  const bool mine = tokens > 0, theirs = o.tokens > 0;
  if (theirs) {
    ratio_min = mine ? std::min(ratio_min, o.ratio_min) : o.ratio_min;
    ratio_max = mine ? std::max(ratio_max, o.ratio_max) : o.ratio_max;
    tis_min = mine ? std::min(tis_min, o.tis_min) : o.tis_min;
    tis_max = mine ? std::max(tis_max, o.tis_max) : o.tis_max;
  }
  clip_ratio_low = mix(clip_ratio_low, o.clip_ratio_low);
  clip_ratio_high = mix(clip_ratio_high, o.clip_ratio_high);
  clip_ratio = mix(clip_ratio, o.clip_ratio);
  dual_clip_ratio = mix(dual_clip_ratio, o.dual_clip_ratio);
  ratio_mean = mix(ratio_mean, o.ratio_mean);
  approx_kl = mix(approx_kl, o.approx_kl);
  kl_mean = mix(kl_mean, o.kl_mean);
  entropy_mean = mix(entropy_mean, o.entropy_mean);
  tis_mean = n + m > 0 ? mix(tis_mean, o.tis_mean) : 1.0;
  tis_clip_ratio = mix(tis_clip_ratio, o.tis_clip_ratio);
  mismatch_kl = mix(mismatch_kl, o.mismatch_kl);
  loss += o.loss;
  pg_loss += o.pg_loss;
  kl += o.kl;
  entropy += o.entropy;
  tokens += o.tokens;
  sequences += o.sequences;
}

PolicyLoss policy_loss(const PolicyLossInputs& in, const PolicyLossOptions& opt,
                       const LossNormalizer& norm) {
  const auto& mask = in.mask;
  TORCH_CHECK(mask.defined() && mask.dim() == 2, "policy_loss: mask must be [B, T]");
  check_bt(in.logprobs, mask, "logprobs");
  check_bt(in.old_logprobs, mask, "old_logprobs");
  TORCH_CHECK(
      in.advantages.defined() && in.advantages.dim() == 1 && in.advantages.size(0) == mask.size(0),
      "policy_loss: advantages must be [B] with B=", mask.size(0));
  TORCH_CHECK(opt.eps_low >= 0 && opt.eps_low < 1 && opt.eps_high >= 0,
              "policy_loss: need 0 <= eps_low < 1 and eps_high >= 0");
  TORCH_CHECK(opt.dual_clip_c == 0 || opt.dual_clip_c > 1,
              "policy_loss: dual_clip_c must be 0 (off) or > 1, got ", opt.dual_clip_c);
  TORCH_CHECK(opt.dual_clip_c == 0 || opt.surrogate == Surrogate::kClip,
              "policy_loss: the dual clip applies to the clipped surrogate only, not CISPO");
  if (opt.tis != TisLevel::kNone) check_bt(in.behaviour_logprobs, mask, "behaviour_logprobs");
  if (opt.kl_coef > 0) check_bt(in.ref_logprobs, mask, "ref_logprobs");
  if (opt.entropy_coef > 0) check_bt(in.entropy, mask, "entropy");

  auto mb = mask > 0;  // [B, T] bool
  const int64_t n_tok = mb.sum().item<int64_t>();
  const int64_t n_seq = mb.any(/*dim=*/1).sum().item<int64_t>();
  // fp32 at least (bf16 log-probs are upcast); float64 stays float64 (tests).
  const auto ft = in.logprobs.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
  auto logp = masked(in.logprobs.to(ft), mb);  // [B, T]
  auto old = masked(in.old_logprobs.detach().to(ft), mb);
  auto adv = in.advantages.detach().to(ft).unsqueeze(1);  // [B, 1]

  // Importance ratio.
  torch::Tensor log_ratio;  // [B, T]
  if (opt.ratio_level == RatioLevel::kToken) {
    log_ratio = logp - old;
  } else {
    // GSPO: value mean_t(logp - old) of the sequence, gradient of logp_t per token.
    auto len = mb.sum(/*dim=*/1, /*keepdim=*/true).clamp_min(1).to(ft);         // [B, 1]
    auto seq = ((logp - old).detach().sum(/*dim=*/1, /*keepdim=*/true) / len);  // [B, 1]
    log_ratio = logp - logp.detach() + seq;
  }
  log_ratio = masked(log_ratio.clamp(-kMaxLogRatio, kMaxLogRatio), mb);
  auto ratio = log_ratio.exp();  // [B, T], 1 at masked positions

  torch::Tensor dual_active;
  auto pg = surrogate_loss(adv, ratio, opt, &dual_active);
  torch::Tensor w;
  if (opt.tis != TisLevel::kNone) {
    w = truncated_is_weights(in.old_logprobs, in.behaviour_logprobs, mask, opt.tis, opt.tis_cap);
    pg = pg * w.to(ft);
  }
  auto pg_term = aggregate_loss(pg, mask, opt.aggregation, norm);
  auto loss = pg_term;

  torch::Tensor kl_tok, kl_term;
  if (in.ref_logprobs.defined()) {
    check_bt(in.ref_logprobs, mask, "ref_logprobs");
    kl_tok = kl_per_token(logp, masked(in.ref_logprobs.to(ft), mb), opt.kl_estimator);
    kl_term = aggregate_loss(kl_tok, mask, opt.aggregation, norm);
    if (opt.kl_coef > 0) loss = loss + opt.kl_coef * kl_term;
  }
  torch::Tensor ent_tok, ent_term;
  if (in.entropy.defined()) {
    check_bt(in.entropy, mask, "entropy");
    ent_tok = masked(in.entropy.to(ft), mb);
    ent_term = aggregate_loss(ent_tok, mask, opt.aggregation, norm);
    if (opt.entropy_coef > 0) loss = loss - opt.entropy_coef * ent_term;
  }

  // Detached statistics.
  PolicyLoss out;
  out.loss = loss;
  PolicyLossStats& s = out.stats;
  torch::NoGradGuard no_grad;
  s.loss = loss.item<double>();
  s.pg_loss = pg_term.item<double>();
  s.kl = kl_term.defined() ? kl_term.item<double>() : 0.0;
  s.entropy = ent_term.defined() ? ent_term.item<double>() : 0.0;
  s.tokens = n_tok;
  s.sequences = n_seq;
  auto r = ratio.detach();
  auto neg = (adv < 0).expand_as(r), pos = (adv > 0).expand_as(r);
  auto low = r < 1.0 - opt.eps_low;
  auto high = r > 1.0 + opt.eps_high;
  if (opt.surrogate == Surrogate::kClip) {  // only the clips that zero the gradient
    low = low & neg;
    high = high & pos;
  }
  s.clip_ratio_low = masked_mean(low.to(ft), mb, n_tok);
  s.clip_ratio_high = masked_mean(high.to(ft), mb, n_tok);
  s.clip_ratio = masked_mean((low | high).to(ft), mb, n_tok);
  s.dual_clip_ratio = dual_active.defined() ? masked_mean(dual_active.to(ft), mb, n_tok) : 0.0;
  s.ratio_mean = masked_mean(r, mb, n_tok);
  s.approx_kl = masked_mean(old - logp.detach(), mb, n_tok);
  s.kl_mean = kl_tok.defined() ? masked_mean(kl_tok.detach(), mb, n_tok) : 0.0;
  s.entropy_mean = ent_tok.defined() ? masked_mean(ent_tok.detach(), mb, n_tok) : 0.0;
  if (in.behaviour_logprobs.defined()) {
    check_bt(in.behaviour_logprobs, mask, "behaviour_logprobs");
    // Samples from pi_behaviour: KL(beh || old) by k3 is kl_per_token(beh, old).
    auto beh = masked(in.behaviour_logprobs.to(ft), mb);
    s.mismatch_kl = masked_mean(kl_per_token(beh, old, KlEstimator::kK3), mb, n_tok);
  }
  if (n_tok > 0) {
    auto rs = r.masked_select(mb);
    s.ratio_min = rs.min().item<double>();
    s.ratio_max = rs.max().item<double>();
    if (w.defined()) {
      auto ws = w.masked_select(mb);
      s.tis_mean = ws.mean().item<double>();
      s.tis_min = ws.min().item<double>();
      s.tis_max = ws.max().item<double>();
      s.tis_clip_ratio = (ws >= opt.tis_cap).to(torch::kFloat32).mean().item<double>();
    }
  } else {
    s.ratio_min = s.ratio_max = std::numeric_limits<double>::quiet_NaN();
  }
  return out;
}

}  // namespace r1kit::grpo
