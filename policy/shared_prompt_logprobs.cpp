// See logprobs.h, shared_prompt_logprobs.
#include <map>

#include "policy/logprobs.h"
#include "policy/model.h"

namespace r1kit::policy {
namespace {

// The distinct prompts of a batch and the prompt of every row.
struct DistinctPrompts {
  std::vector<const std::vector<int64_t>*> prompts;  // [P]
  std::vector<int64_t> of_row;                       // [B] index into prompts
};

DistinctPrompts distinct_prompts(const std::vector<std::vector<int64_t>>& row_prompts) {
  DistinctPrompts d;
  std::map<std::vector<int64_t>, int64_t> index;
  for (const auto& p : row_prompts) {
    TORCH_CHECK(!p.empty(), "shared_prompt_logprobs: empty prompt");
    auto [it, added] = index.emplace(p, static_cast<int64_t>(d.prompts.size()));
    if (added) d.prompts.push_back(&p);
    d.of_row.push_back(it->second);
  }
  return d;
}

// The prefixes (every prompt but its last token), right-padded to the longest, run once
// with causal attention; their keys/values are left in the returned cache. Padding comes
// after every real token, so it never reaches one.
KVCache run_prefixes(TransformerImpl& m, const DistinctPrompts& d, int64_t Lp,
                     torch::Tensor* aux_loss) {
  const int64_t P = static_cast<int64_t>(d.prompts.size());
  auto ids = torch::zeros({P, Lp}, torch::kLong);
  auto ids_a = ids.accessor<int64_t, 2>();
  for (int64_t g = 0; g < P; ++g)
    for (size_t t = 0; t + 1 < d.prompts[g]->size(); ++t) ids_a[g][t] = (*d.prompts[g])[t];
  KVCache cache = KVCache::allocate(m.args(), P, Lp, m.output_weight().scalar_type());
  auto real = torch::zeros({P, Lp}, torch::kFloat);  // prefix tokens, not padding
  for (int64_t g = 0; g < P; ++g)
    real.narrow(1, 0, static_cast<int64_t>(d.prompts[g]->size()) - 1).fill_(1);
  ForwardOptions fo;
  fo.cache = &cache;
  fo.compute_logits = false;
  fo.token_mask = real;  // padding: no feed-forward work, no expert load
  fo.execution.kernels.grouped_without_grad = true;  // no-grad passes: the gradient pass's kernels
  *aux_loss = m.forward(ids, fo).aux_loss;
  return cache;
}

// Row i's view of the prefix cache: its prompt's slots [0, Lp), then T empty slots for
// its own tail (written by the tail's forward).
KVCache tail_cache(const KVCache& prefixes, const torch::Tensor& of_row, int64_t T) {
  KVCache c;
  c.batch = of_row.size(0);
  c.max_len = prefixes.max_len + T;
  auto extend = [&](const torch::Tensor& t) {
    auto rows = t.index_select(0, of_row);
    auto shape = rows.sizes().vec();
    shape[1] = T;
    return torch::cat({rows, torch::zeros(shape, rows.options())}, 1);
  };
  for (size_t l = 0; l < prefixes.a.size(); ++l) {
    c.a.push_back(extend(prefixes.a[l]));
    c.b.push_back(extend(prefixes.b[l]));
  }
  return c;
}

}  // namespace

CompletionLogProbs shared_prompt_logprobs(TransformerImpl& m,
                                          const std::vector<std::vector<int64_t>>& prompt_ids,
                                          const torch::Tensor& completions,
                                          const torch::Tensor& mask, double temperature,
                                          bool with_entropy, const Truncation& truncation) {
  const int64_t B = completions.size(0), T = completions.size(1);
  TORCH_CHECK(static_cast<int64_t>(prompt_ids.size()) == B, "one prompt per completion row");
  const DistinctPrompts d = distinct_prompts(prompt_ids);
  int64_t Lp = 0;  // longest prefix
  for (const auto* p : d.prompts) Lp = std::max<int64_t>(Lp, static_cast<int64_t>(p->size()) - 1);

  // Tails: [last prompt token, completion[0, T-1)] at positions lp - 1 + t; query t sees
  // prefix slots [0, lp - 1) and tail slots [Lp, Lp + t].
  auto comp = completions.contiguous();
  auto ids = torch::cat({torch::zeros({B, 1}, torch::kLong), comp.narrow(1, 0, T - 1)}, 1);
  auto positions = torch::arange(T, torch::kLong).unsqueeze(0).repeat({B, 1});
  auto prefix_len = torch::zeros({B}, torch::kLong);
  for (int64_t i = 0; i < B; ++i) {
    const auto& p = prompt_ids[i];
    const int64_t lp = static_cast<int64_t>(p.size());
    ids[i][0] = p.back();
    positions[i] += lp - 1;
    prefix_len[i] = lp - 1;
  }
  auto t_idx = torch::arange(T, torch::kLong);
  auto own = (t_idx.unsqueeze(0) <= t_idx.unsqueeze(1)).unsqueeze(0).expand({B, T, T});
  auto mask_c = mask.contiguous();
  ForwardOptions fo;
  fo.positions = positions;
  fo.compute_logits = false;
  fo.execution.kernels.grouped_without_grad = true;
  // Tail tokens: the last prompt token, then the completion tokens up to the last one the
  // mask keeps (tail position t + 1 holds completion token t).
  auto real = torch::zeros({B, T}, torch::kFloat);
  auto mask_a = mask_c.accessor<float, 2>();
  for (int64_t i = 0; i < B; ++i)
    real[i].narrow(0, 0, std::min(T, completion_length(mask_a[i]) + 1)).fill_(1);
  fo.token_mask = real;
  torch::Tensor prefix_aux;
  KVCache cache;
  if (Lp > 0) {
    auto slots = torch::arange(Lp, torch::kLong);
    auto prefix = (slots.unsqueeze(0) < prefix_len.unsqueeze(1)).unsqueeze(1).expand({B, T, Lp});
    cache =
        tail_cache(run_prefixes(m, d, Lp, &prefix_aux), torch::tensor(d.of_row, torch::kLong), T);
    fo.cache = &cache;
    fo.start_pos = Lp;
    fo.attn_mask = torch::cat({prefix, own}, 2);
  } else {
    fo.attn_mask = own;
  }
  auto out = m.forward(ids, fo);
  auto lp = masked_token_logprobs(out.hidden, m.output_weight(), comp, mask_c,
                                  temperature > 0 ? temperature : 1.0, with_entropy, truncation);
  CompletionLogProbs r;
  r.logprobs = lp.logprobs;
  r.entropy = lp.entropy;
  r.aux_loss = out.aux_loss;
  if (prefix_aux.defined()) {
    const double np = static_cast<double>(d.prompts.size() * Lp), nt = static_cast<double>(B * T);
    r.aux_loss = (prefix_aux * np + out.aux_loss * nt) / (np + nt);
  }
  return r;
}

}  // namespace r1kit::policy
