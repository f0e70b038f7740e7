#include "policy/logprobs.h"

#include "core/torch_compat.h"
#include "policy/model.h"

namespace r1kit::policy {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

// Rows [begin, begin+n) of hidden -> tempered fp32 logits [n, V].
torch::Tensor chunk_logits(const torch::Tensor& h, const torch::Tensor& w, double inv_t) {
  return torch::matmul(h.to(torch::kFloat), w.to(torch::kFloat).t()) * inv_t;
}

Truncation saved_truncation(AutogradContext* ctx) {
  return {ctx->saved_data["top_k"].toInt(), ctx->saved_data["top_p"].toDouble(),
          ctx->saved_data["min_p"].toDouble()};
}

class ChunkedLogProb : public torch::autograd::Function<ChunkedLogProb> {
 public:
  // Returns {logprobs [N], entropy [N]}.
  static tensor_list forward(AutogradContext* ctx, torch::Tensor hidden, torch::Tensor weight,
                             torch::Tensor targets, double temperature, int64_t chunk,
                             int64_t top_k, double top_p, double min_p) {
    compat::CpuAutocastOff fp32;  // the head and log-softmax stay fp32 under bf16 autocast
    const int64_t N = hidden.size(0);
    const double inv_t = 1.0 / temperature;
    const Truncation trunc{top_k, top_p, min_p};
    auto logp = torch::empty({N}, hidden.options().dtype(torch::kFloat));
    auto ent = torch::empty({N}, hidden.options().dtype(torch::kFloat));
    for (int64_t b = 0; b < N; b += chunk) {
      const int64_t n = std::min(chunk, N - b);
      auto z = chunk_logits(hidden.narrow(0, b, n), weight, inv_t);  // [n, V]
      auto lse = torch::logsumexp(z, -1);                            // [n]
      auto tgt = targets.narrow(0, b, n);
      auto keep = kept_tokens(z, trunc, tgt);
      logp.narrow(0, b, n).copy_(keep.defined() ? processed_logprobs(z, keep, tgt)
                                                : z.gather(1, tgt.unsqueeze(1)).squeeze(1) - lse);
      auto p = torch::softmax(z, -1);
      ent.narrow(0, b, n).copy_(lse - (p * z).sum(-1));  // H = lse - E_p[z]
    }
    ctx->save_for_backward({hidden, weight, targets});
    ctx->saved_data["temperature"] = temperature;
    ctx->saved_data["chunk"] = chunk;
    ctx->saved_data["top_k"] = top_k;
    ctx->saved_data["top_p"] = top_p;
    ctx->saved_data["min_p"] = min_p;
    return {logp, ent};
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    compat::CpuAutocastOff fp32;
    auto saved = ctx->get_saved_variables();
    auto hidden = saved[0], weight = saved[1], targets = saved[2];
    const double inv_t = 1.0 / ctx->saved_data["temperature"].toDouble();
    const int64_t chunk = ctx->saved_data["chunk"].toInt();
    const Truncation trunc = saved_truncation(ctx);
    const int64_t N = hidden.size(0);
    auto g_logp = grads[0].defined() ? grads[0].to(torch::kFloat) : torch::Tensor();
    auto g_ent = grads[1].defined() ? grads[1].to(torch::kFloat) : torch::Tensor();
    auto wf = weight.to(torch::kFloat);
    auto grad_h = torch::zeros({N, hidden.size(1)}, hidden.options().dtype(torch::kFloat));
    auto grad_w = torch::zeros_like(wf);
    for (int64_t b = 0; b < N; b += chunk) {
      const int64_t n = std::min(chunk, N - b);
      auto h = hidden.narrow(0, b, n).to(torch::kFloat);
      auto z = torch::matmul(h, wf.t()) * inv_t;  // [n, V]
      auto p = torch::softmax(z, -1);
      auto dz = torch::zeros_like(z);
      if (g_logp.defined()) {
        // d log q_y / dz = onehot(y) - q, q the processed distribution (p when untruncated)
        auto tgt = targets.narrow(0, b, n);
        auto keep = kept_tokens(z, trunc, tgt);
        auto q =
            keep.defined() ? torch::softmax(z.masked_fill(keep.logical_not(), -INFINITY), -1) : p;
        auto g = g_logp.narrow(0, b, n).unsqueeze(1);
        dz = dz - q * g;
        dz.scatter_add_(1, tgt.unsqueeze(1), g);
      }
      if (g_ent.defined()) {
        // dH/dz_j = -p_j (z_j - E_p[z])  (with H = lse - E_p[z])
        auto ez = (p * z).sum(-1, true);
        dz = dz - g_ent.narrow(0, b, n).unsqueeze(1) * p * (z - ez);
      }
      dz = dz * inv_t;
      grad_h.narrow(0, b, n).copy_(torch::matmul(dz, wf));
      grad_w.add_(torch::matmul(dz.t(), h));
    }
    return {grad_h.to(hidden.scalar_type()),
            grad_w.to(weight.scalar_type()),
            torch::Tensor(),
            torch::Tensor(),
            torch::Tensor(),
            torch::Tensor(),
            torch::Tensor(),
            torch::Tensor()};
  }
};

}  // namespace

TokenLogProbs token_logprobs(const torch::Tensor& hidden, const torch::Tensor& weight,
                             const torch::Tensor& targets, double temperature, bool with_entropy,
                             int64_t chunk_rows, const Truncation& truncation) {
  TORCH_CHECK(hidden.dim() == 2 && weight.dim() == 2 && targets.dim() == 1,
              "token_logprobs: hidden [N, d], weight [V, d], targets [N]");
  TORCH_CHECK(hidden.size(0) == targets.size(0), "token_logprobs: N mismatch");
  TORCH_CHECK(temperature > 0, "token_logprobs: temperature must be > 0");
  auto out = ChunkedLogProb::apply(hidden, weight, targets.to(torch::kLong), temperature,
                                   std::max<int64_t>(chunk_rows, 1), truncation.top_k,
                                   truncation.top_p, truncation.min_p);
  TokenLogProbs r;
  r.logprobs = out[0];
  if (with_entropy) r.entropy = out[1];
  return r;
}

TokenLogProbs masked_token_logprobs(const torch::Tensor& hidden, const torch::Tensor& weight,
                                    const torch::Tensor& targets, const torch::Tensor& mask,
                                    double temperature, bool with_entropy,
                                    const Truncation& truncation) {
  const int64_t B = targets.size(0), T = targets.size(1), d = hidden.size(-1);
  auto m = mask.reshape({B * T});
  auto rows = (m != 0).nonzero().squeeze(1);
  auto lp = token_logprobs(hidden.reshape({B * T, d}).index_select(0, rows), weight,
                           targets.reshape({B * T}).index_select(0, rows), temperature,
                           with_entropy, 1024, truncation);
  auto spread = [&](const torch::Tensor& v) {
    return (torch::zeros({B * T}, v.options()).index_copy(0, rows, v) * m).view({B, T});
  };
  TokenLogProbs r;
  r.logprobs = spread(lp.logprobs);
  if (with_entropy) r.entropy = spread(lp.entropy);
  return r;
}

int64_t completion_length(const torch::TensorAccessor<float, 1>& mask_row) {
  for (int64_t t = mask_row.size(0); t > 0; --t)
    if (mask_row[t - 1] != 0) return t;
  return 0;
}

CompletionLogProbs completion_logprobs(TransformerImpl& m,
                                       const std::vector<std::vector<int64_t>>& prompt_ids,
                                       const torch::Tensor& completions, const torch::Tensor& mask,
                                       double temperature, bool with_entropy, bool with_mtp,
                                       const Truncation& truncation,
                                       const torch::Tensor& replay_experts, bool record_experts) {
  const int64_t B = completions.size(0), T = completions.size(1);
  TORCH_CHECK(static_cast<int64_t>(prompt_ids.size()) == B, "one prompt per completion row");
  int64_t L = 0;
  for (const auto& p : prompt_ids) L = std::max<int64_t>(L, static_cast<int64_t>(p.size()) + T);
  // Row i: prompt_i, completion_i, then padding (token 0) on the right. Causal attention
  // means padding never reaches a real position.
  auto ids = torch::zeros({B, L}, torch::kLong);
  auto pos = torch::zeros({B, T}, torch::kLong);  // hidden state predicting completion[t]
  auto comp_in_seq = torch::zeros({B, L}, torch::kFloat);
  auto real = torch::zeros({B, L}, torch::kFloat);  // prompt and completion tokens, not padding
  auto ids_a = ids.accessor<int64_t, 2>();
  auto pos_a = pos.accessor<int64_t, 2>();
  auto cis_a = comp_in_seq.accessor<float, 2>();
  auto real_a = real.accessor<float, 2>();
  auto comp = completions.contiguous();
  auto comp_a = comp.accessor<int64_t, 2>();
  auto mask_c = mask.contiguous();
  auto mask_a = mask_c.accessor<float, 2>();
  for (int64_t i = 0; i < B; ++i) {
    const int64_t lp = static_cast<int64_t>(prompt_ids[i].size());
    TORCH_CHECK(lp >= 1, "empty prompt in row ", i);
    for (int64_t t = 0; t < lp; ++t) {
      ids_a[i][t] = prompt_ids[i][t];
      real_a[i][t] = 1.f;
    }
    const int64_t n = completion_length(mask_a[i]);  // real up to its last kept token
    for (int64_t t = 0; t < T; ++t) {
      ids_a[i][lp + t] = comp_a[i][t];
      pos_a[i][t] = lp - 1 + t;
      cis_a[i][lp + t] = mask_a[i][t];
      real_a[i][lp + t] = t < n ? 1.f : 0.f;
    }
  }
  ForwardOptions fo;
  fo.compute_logits = false;
  fo.token_mask = real;  // padding: no feed-forward work, no expert load
  fo.record_experts = record_experts;
  fo.execution.kernels.grouped_without_grad = true;  // no-grad passes: the gradient pass's kernels
  if (replay_experts.defined()) {
    // Rows laid out as `ids`; positions past L (another micro-batch's longer rows) are
    // padding (-1) and dropped.
    TORCH_CHECK(replay_experts.dim() == 4 && replay_experts.size(0) == B,
                "completion_logprobs: replay_experts must be [B, S, layers, K], got ",
                replay_experts.sizes());
    const int64_t S = std::min(L, replay_experts.size(1));
    TORCH_CHECK((replay_experts.narrow(1, S, replay_experts.size(1) - S) < 0).all().item<bool>(),
                "completion_logprobs: replay_experts has ids past the ", L, " positions");
    auto sizes = replay_experts.sizes().vec();
    sizes[1] = L;
    fo.replay_experts = torch::full(sizes, -1, replay_experts.options());
    fo.replay_experts.narrow(1, 0, S).copy_(replay_experts.narrow(1, 0, S));
  }
  auto out = m.forward(ids, fo);
  const int64_t d = out.hidden.size(-1);
  auto h = out.hidden.gather(1, pos.unsqueeze(-1).expand({B, T, d}));
  auto lp = masked_token_logprobs(h, m.output_weight(), comp, mask_c,
                                  temperature > 0 ? temperature : 1.0, with_entropy, truncation);
  CompletionLogProbs r;
  r.logprobs = lp.logprobs;
  r.entropy = lp.entropy;
  r.aux_loss = out.aux_loss;
  r.experts = out.experts;
  r.hidden = h;
  if (with_mtp) r.mtp_loss = m.mtp_loss(ids, out.last_hidden, comp_in_seq);
  return r;
}

}  // namespace r1kit::policy
