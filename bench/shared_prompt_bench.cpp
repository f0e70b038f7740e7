// GRPO's training forward/backward with each group's prompt computed once
// (policy::shared_prompt_logprobs) against once per completion (completion_logprobs), on
// the shape of a GRPO step: P prompts x G completions of up to T tokens, in micro-batches
// of M rows, f32 and bf16 autocast (train/compute.h). Each round times one step of every
// (mode, dtype) back to back, so a machine whose speed drifts affects them alike;
// reported: the median over rounds and the per-row/shared ratio.
//
// Usage: shared_prompt_bench [--preset tiny] [--prompts 16] [--group 8] [--prompt-len 14]
//                            [--new-tokens 64] [--micro 64] [--rounds 5] [--dtypes f32,bf16]
//                            [--lengths quarter] [--padding-ab 0] [--trace FILE]
//   --lengths quarter: every completion T - T/4 tokens (the last quarter padding);
//     uniform: lengths drawn uniformly from [1, T], one row of T (a long-tailed batch).
//   --padding-ab 1: a third arm per round, shared prompts with the padding computed (a
//     token mask of ones, the real mask applied to the log-probs after), against the
//     default that skips it (ForwardOptions::token_mask; docs/model.md).
//   --trace FILE: after the rounds, one more shared-prompt step of each dtype under
//     LibTorch's (legacy) profiler, written to FILE.DTYPE.json (scripts/op_profile.py sums
//     each op's own time).
#include <torch/torch.h>

#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#if __has_include(<torch/csrc/autograd/profiler_legacy.h>)
#include <torch/csrc/autograd/profiler_legacy.h>
#define R1KIT_HAS_RECORD_PROFILE 1
#endif
#include "core/torch_compat.h"
#include "policy/logprobs.h"
#include "policy/model.h"

using namespace r1kit;
using namespace r1kit::bench;

namespace {

struct Shape {
  std::string preset = "tiny";
  int64_t prompts = 16, group = 8, prompt_len = 14, new_tokens = 64, micro = 64, rounds = 5;
  int64_t padding_ab = 0;
  std::string dtypes = "f32,bf16", lengths = "quarter";
  std::string trace;
};

// One step's forward and backward over all P*G rows in micro-batches; seconds.
// `compute_padding`: the forward computes every position (a mask of ones), the real mask
// is applied to the log-probs after.
double step_seconds(policy::TransformerImpl& m, const Shape& s, bool shared, bool bf16,
                    const std::vector<std::vector<int64_t>>& prompts, const torch::Tensor& comp,
                    const torch::Tensor& mask, bool compute_padding = false) {
  const auto t0 = Clock::now();
  compat::CpuAutocastGuard ac(bf16);
  const int64_t B = comp.size(0);
  for (int64_t b0 = 0; b0 < B; b0 += s.micro) {
    const int64_t b1 = std::min(B, b0 + s.micro);
    std::vector<std::vector<int64_t>> p(prompts.begin() + b0, prompts.begin() + b1);
    auto c = comp.slice(0, b0, b1), mk = mask.slice(0, b0, b1);
    auto fwd_mask = compute_padding ? torch::ones_like(mk) : mk;
    auto out = shared ? policy::shared_prompt_logprobs(m, p, c, fwd_mask, 1.0, false)
                      : policy::completion_logprobs(m, p, c, fwd_mask, 1.0, false);
    ((out.logprobs * mk).sum() + out.aux_loss).backward();
  }
  return seconds_since(t0);
}

}  // namespace

int main(int argc, char** argv) {
  bench_init();
  Shape s;
  const std::map<std::string, int64_t*> numbers = {
      {"--prompts", &s.prompts},       {"--group", &s.group}, {"--prompt-len", &s.prompt_len},
      {"--new-tokens", &s.new_tokens}, {"--micro", &s.micro}, {"--rounds", &s.rounds},
      {"--padding-ab", &s.padding_ab}};
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (numbers.count(k)) *numbers.at(k) = std::stoll(v);
    if (k == "--preset") s.preset = v;
    if (k == "--dtypes") s.dtypes = v;
    if (k == "--trace") s.trace = v;
    if (k == "--lengths") s.lengths = v;
  }
  policy::ModelArgs a = *policy::preset(s.preset);
  a.vocab_size = 512;
  policy::Transformer m(a);
  m->init_weights(1);
  m->train();
  auto gen = at::detail::createCPUGenerator(3);
  std::vector<std::vector<int64_t>> prompts;
  for (int64_t p = 0; p < s.prompts; ++p) {
    auto ids = torch::randint(1, a.vocab_size, {s.prompt_len}, gen, torch::kLong);
    std::vector<int64_t> v(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + s.prompt_len);
    for (int64_t g = 0; g < s.group; ++g) prompts.push_back(v);
  }
  const int64_t B = s.prompts * s.group, T = s.new_tokens;
  auto comp = torch::randint(1, a.vocab_size, {B, T}, gen, torch::kLong);
  auto mask = torch::ones({B, T});
  if (s.lengths == "uniform") {
    auto len = torch::randint(1, T + 1, {B}, gen, torch::kLong);
    len[0] = T;
    mask = (torch::arange(T).unsqueeze(0) < len.unsqueeze(1)).to(torch::kFloat);
  } else if (s.lengths == "quarter") {
    mask.narrow(1, T - T / 4, T / 4).zero_();
  } else {
    std::fprintf(stderr, "shared_prompt_bench: --lengths must be quarter or uniform, got %s\n",
                 s.lengths.c_str());
    return 2;
  }
  std::printf(
      "preset %s, %lld prompts x %lld completions, prompt %lld tokens, %lld new tokens "
      "(%s lengths, %.0f%% padding), micro-batch %lld, %d threads\n",
      s.preset.c_str(), (long long)s.prompts, (long long)s.group, (long long)s.prompt_len,
      (long long)T, s.lengths.c_str(), 100.0 * (1.0 - mask.mean().item<double>()),
      (long long)s.micro, at::get_num_threads());
  for (const std::string& dt : split(s.dtypes)) {
    const bool bf16 = dt == "bf16";
    step_seconds(*m, s, false, bf16, prompts, comp, mask);  // warm-up
    step_seconds(*m, s, true, bf16, prompts, comp, mask);
  }
  for (const std::string& dt : split(s.dtypes)) {
    const bool bf16 = dt == "bf16";
    std::vector<double> per_row, shared, ratio, padded, pad_ratio;
    for (int64_t r = 0; r < s.rounds; ++r) {
      per_row.push_back(step_seconds(*m, s, false, bf16, prompts, comp, mask));
      shared.push_back(step_seconds(*m, s, true, bf16, prompts, comp, mask));
      ratio.push_back(per_row.back() / shared.back());
      if (s.padding_ab) {
        padded.push_back(step_seconds(*m, s, true, bf16, prompts, comp, mask, true));
        pad_ratio.push_back(padded.back() / shared.back());
      }
    }
    std::printf(
        "%-5s per-row %.3f s | shared prompt %.3f s | per-row / shared %.2fx (median of %lld "
        "rounds)\n",
        dt.c_str(), median(per_row), median(shared), median(ratio), (long long)s.rounds);
    if (s.padding_ab)
      std::printf("%-5s shared prompt, padding computed %.3f s | skipped %.3f s | %.2fx\n",
                  dt.c_str(), median(padded), median(shared), median(pad_ratio));
  }
  if (!s.trace.empty()) {
#ifdef R1KIT_HAS_RECORD_PROFILE
    for (const std::string& dt : split(s.dtypes)) {
      torch::autograd::profiler::RecordProfile rec(s.trace + "." + dt + ".json");
      step_seconds(*m, s, true, dt == "bf16", prompts, comp, mask);
    }
#else
    std::fprintf(stderr, "shared_prompt_bench: --trace needs LibTorch's legacy profiler\n");
    return 1;
#endif
  }
  return 0;
}
