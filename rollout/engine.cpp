// The generation engine: see engine.h.
#include "rollout/engine.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <optional>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/blas_threads.h"
#include "core/parallel.h"
#include "core/rng.h"
#include "core/timer.h"
#include "data/tokenizer.h"
#include "policy/decode_threads.h"
#include "rollout/sampling.h"
#include "rollout/stop_strings.h"

namespace r1kit::rollout {
namespace {

using Clock = std::chrono::steady_clock;

// Appends the routing of row `row` of `experts` [B, T, L, K] (int16, CPU, contiguous:
// ForwardOutput::experts) to `out`.
void append_routed(const torch::Tensor& experts, int64_t row, RoutedExperts& out) {
  out.layers = experts.size(2);
  out.k = experts.size(3);
  const int64_t n = experts.size(1) * out.layers * out.k;
  const int16_t* p = experts.data_ptr<int16_t>() + row * n;
  out.ids.insert(out.ids.end(), p, p + n);
}

// Pads a finished completion's routing ([tokens, L, K]) with -1 to one entry per token
// (its last token, which no forward took as input, or more after an abort).
void pad_routed(Completion& c, int64_t layers, int64_t k) {
  auto& r = c.routed_experts;
  r.layers = layers;
  r.k = k;
  r.ids.resize(c.token_ids.size() * layers * k, -1);
}

}  // namespace

policy::ExecutionContext EngineOptions::execution() const {
  policy::ExecutionContext exec;
  exec.decode_threads = decode_threads;
  exec.pool = pool;
  exec.kernels = kernels;
  return exec;
}

int EngineOptions::decode_threads_with(int intra_op) const {
  return std::clamp(std::max(decode_threads, intra_op), 1, policy::kMaxDecodeThreads);
}

int EngineOptions::blas_threads_during_generate(int threads) const {
  if (blas_threads == kBlasThreadsAuto) return threads > 1 ? 1 : 0;
  return blas_threads;
}

namespace {

// generate() runs its ops on one LibTorch intra-op thread of the calling thread, and
// splits a step's heavy parts over the decode threads instead (EngineOptions::
// decode_threads_with): a decode step is hundreds of small ops, and with two intra-op
// threads each large enough one starts an OpenMP team (tiny at batch 16: 1,745-1,959
// tokens/s on two intra-op threads, 3,650-4,002 on one, 4,423-5,322 when the two serve
// as decode threads instead; bench/RESULTS.md, "OpenBLAS on LibTorch's threads"). OpenMP's thread
// count is per thread, so a trainer on another thread keeps its own; the count comes
// back when the call ends. Without OpenMP (the clang builds) LibTorch's count is left.
class OneIntraOpThread {
 public:
  OneIntraOpThread() : old_(at::get_num_threads()) {  // after LibTorch's set-up of this thread
#ifdef _OPENMP
    omp_set_num_threads(1);
#endif
  }
  // The calling thread's intra-op count before.
  int previous() const {
    return old_;
  }
  ~OneIntraOpThread() {
#ifdef _OPENMP
    omp_set_num_threads(old_);
#endif
  }
  OneIntraOpThread(const OneIntraOpThread&) = delete;
  OneIntraOpThread& operator=(const OneIntraOpThread&) = delete;

 private:
  int old_;
};

}  // namespace

DecodeFn tokenizer_decoder(const data::Tokenizer& tokenizer) {
  return [tok = tokenizer](std::span<const int64_t> ids) {
    std::vector<int32_t> v(ids.begin(), ids.end());
    return tok.decode(v);
  };
}

// One sequence in a slot (or waiting for one).
struct Engine::Seq {
  int64_t group = 0;   // index into request.prompts (and the result)
  int64_t sample = 0;  // group * G + its index in the group
  uint64_t seed = 0;   // derive_seed(sampling.seed, {prompt.index, sample})
  int64_t pos = 0;     // tokens in the cache (prompt + fed completion tokens)
  int64_t last = 0;    // newest sampled token, not yet in the cache
  Completion* out = nullptr;
  bool done = false;
};

Engine::Engine(policy::Transformer model, EngineOptions options, DecodeFn decode)
    : model_(std::move(model)), options_(options), decode_(std::move(decode)) {
  TORCH_CHECK(options_.max_batch >= 1, "EngineOptions::max_batch must be >= 1");
  TORCH_CHECK(options_.decode_threads >= 1 && options_.decode_threads <= policy::kMaxDecodeThreads,
              "EngineOptions::decode_threads must be in [1, ", policy::kMaxDecodeThreads, "], got ",
              options_.decode_threads);
  TORCH_CHECK(options_.blas_threads >= EngineOptions::kBlasThreadsAuto,
              "EngineOptions::blas_threads must be -1 (auto), 0 (leave) or a thread count, got ",
              options_.blas_threads);
  model_->eval();
  const auto& args = model_->args();
  max_seq_len_ = options_.max_seq_len > 0 ? options_.max_seq_len : args.max_seq_len;
  reserve_cache(options_.max_seq_len > 0
                    ? max_seq_len_
                    : std::min(max_seq_len_, EngineOptions::kInitialCacheTokens));
}

void Engine::reserve_cache(int64_t len) {
  if (len <= cache_.max_len) return;
  const auto& args = model_->args();
  auto w = model_->embed_tokens->weight;
  torch::NoGradGuard no_grad;
  cache_ = {};  // the old slots go before the new ones are allocated
  scratch_ = {};
  cache_ = policy::KVCache::allocate(args, options_.max_batch, len, w.scalar_type(), w.device());
  scratch_ = policy::KVCache::allocate(args, 1, len, w.scalar_type(), w.device());
}

int64_t Engine::cache_bytes_per_slot() const {
  return cache_.bytes() / std::max<int64_t>(cache_.batch, 1);
}

EngineStats Engine::last_stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

Status Engine::validate(const GenerateRequest& r) const {
  const int64_t V = model_->args().vocab_size;
  if (r.prompts.empty()) return InvalidArgument("generate: no prompts");
  if (r.group_size < 1) return InvalidArgument("generate: n={}: must be >= 1", r.group_size);
  RETURN_IF_ERROR(validate_sampling(r.sampling, V));
  if (r.exact != ExactMode::kOff)
    if (const std::string why = policy::exact_unsupported(model_->args()); !why.empty())
      return InvalidArgument("exact mode: the exact forward does not support this model: {}", why);
  if (!r.sampling.stop_strings.empty() && !decode_)
    return InvalidArgument("sampling.stop_strings: this engine has no tokenizer to decode with");
  for (size_t i = 0; i < r.prompts.size(); ++i) {
    const auto& p = r.prompts[i];
    const int64_t P = static_cast<int64_t>(p.ids.size());
    if (P == 0) return InvalidArgument("prompt {} (index {}): empty", i, p.index);
    for (int64_t id : p.ids)
      if (id < 0 || id >= V)
        return InvalidArgument(
            "prompt {} (index {}): token id {} is outside the vocabulary [0, {})", i, p.index, id,
            V);
    if (P + r.sampling.max_new_tokens > max_seq_len_)
      return InvalidArgument(
          "prompt {} (index {}): {} prompt tokens + max_new_tokens {} exceed the engine's "
          "sequence length {}",
          i, p.index, P, r.sampling.max_new_tokens, max_seq_len_);
  }
  return OkStatus();
}

void Engine::move_slot(int64_t from, int64_t to, int64_t len, bool exact) {
  if (exact) return exact_cache_->copy_slot(*exact_cache_, from, to, len);
  cache_.copy_slot(cache_, from, to, len);
}

StatusOr<std::vector<Group>> Engine::generate(const GenerateRequest& request,
                                              int64_t policy_version,
                                              const std::function<void(const Group&)>& on_group,
                                              const TokenFn& on_token) {
  std::lock_guard<std::mutex> lock(mu_);
  abort_.store(false);
  RETURN_IF_ERROR(validate(request));
  // Slots as long as this request needs, rounded up to 256 tokens so that requests of
  // similar lengths do not reallocate (validate() checked the limit).
  int64_t longest = 0;
  for (const auto& p : request.prompts) longest = std::max<int64_t>(longest, p.ids.size());
  reserve_cache(
      std::min(max_seq_len_, (longest + request.sampling.max_new_tokens + 255) / 256 * 256));
  const auto t_start = Clock::now();
  torch::NoGradGuard no_grad;
  OneIntraOpThread one_intra_op_thread;
  policy::ExecutionContext exec = options_.execution();
  exec.decode_threads = options_.decode_threads_with(one_intra_op_thread.previous());
  // bf16 compute: the copies cast from the weights as they are now (they may have changed
  // since the last request).
  if (request.bf16_compute && request.exact == ExactMode::kOff) {
    bf16_weights_.assign(*model_->layers);
    exec.bf16 = &bf16_weights_;
  }
  // Lent cores join as decode threads mid-request, with every kernel chosen as on one
  // thread, so that the results do not depend on how many there were
  // (EngineOptions::use_lent_cores).
  const int own_threads = exec.decode_threads;
  if (options_.use_lent_cores) exec.same_bits_any_threads = true;
  std::optional<BlasThreadsGuard> blas_threads;
  if (const int n = options_.blas_threads_during_generate(exec.decode_threads); n > 0)
    blas_threads.emplace(n);
  const SamplingParams& sp = request.sampling;
  const int64_t G = request.group_size, n_prompts = static_cast<int64_t>(request.prompts.size());
  const int64_t N = options_.max_batch, V = model_->args().vocab_size;
  const auto dev = model_->embed_tokens->weight.device();
  // The output projection in fp32, as policy::token_logprobs computes the logits.
  const torch::Tensor w_out = model_->output_weight().to(torch::kFloat);
  auto logits_of = [&](const torch::Tensor& hidden) {  // [B, d] -> [B, V] fp32
    return policy::decode_linear(hidden.to(torch::kFloat), w_out, {}, exec);
  };

  // Exact mode: the exact forward over its own caches (the slots' shapes), and the
  // tempered logits it samples and scores from, row by row.
  const bool exact = request.exact != ExactMode::kOff;
  std::optional<policy::ExactModel> em;
  const bool greedy = sp.temperature == 0.0;
  const policy::Truncation trunc{sp.top_k, sp.top_p, sp.min_p};
  if (exact) {
    em.emplace(*model_, request.exact == ExactMode::kBF16 ? policy::ExactPrecision::kBF16
                                                          : policy::ExactPrecision::kF32);
    // Only the slots this request can fill: the exact cache holds expanded keys/values.
    const int64_t slots = std::min(N, n_prompts * G);
    if (!exact_cache_ || exact_cache_->max_len() < cache_.max_len ||
        exact_cache_->slots() < slots) {
      exact_cache_.reset();
      exact_scratch_.reset();
      exact_cache_ = std::make_unique<policy::ExactCache>(model_->args(), slots, cache_.max_len);
      exact_scratch_ = std::make_unique<policy::ExactCache>(model_->args(), 1, cache_.max_len);
    }
  }
  const double exact_t = greedy ? 1.0 : sp.temperature;
  // Draws and scores row b of tempered logits z [B, V] with `uniform`: {token, log-prob}.
  auto exact_pick = [&](const torch::Tensor& z, int64_t b, double uniform) {
    const float* row = z.data_ptr<float>() + b * V;
    const int64_t tok = policy::exact_sample(row, V, trunc, uniform, greedy);
    return std::pair<int64_t, float>(
        tok, policy::exact_token_logprob(row, V, tok, greedy ? policy::Truncation{} : trunc));
  };

  EngineStats st;
  st.prompts = n_prompts;
  st.sequences = n_prompts * G;
  std::vector<Group> result(n_prompts);
  std::vector<int64_t> remaining(n_prompts, G);
  for (int64_t g = 0; g < n_prompts; ++g) {
    result[g].prompt_index = request.prompts[g].index;
    result[g].completions.resize(G);
    for (auto& c : result[g].completions) {
      c.policy_version = policy_version;
      c.token_ids.reserve(sp.max_new_tokens);
      c.logprobs.reserve(sp.max_new_tokens);
    }
  }
  // One stop-string matcher per sample (g * G + j), when the request has stop strings.
  std::vector<StopStringMatcher> stop_matchers;
  if (!sp.stop_strings.empty()) {
    stop_matchers.reserve(static_cast<size_t>(n_prompts * G));
    for (int64_t i = 0; i < n_prompts * G; ++i)
      stop_matchers.emplace_back(decode_, sp.stop_strings);
  }

  // Routing replay: the layout of the recorded experts (0 layers: nothing recorded).
  const int64_t routed_layers = request.record_experts ? model_->n_moe_layers() : 0;
  const int64_t routed_k = model_->args().n_activated_experts;
  auto finish = [&](Seq& s, FinishReason reason) {
    s.done = true;
    s.out->finish_reason = reason;
    if (routed_layers > 0) pad_routed(*s.out, routed_layers, routed_k);
    if (--remaining[s.group] == 0 && on_group) on_group(result[s.group]);
  };
  // Appends a sampled token; finishes the sequence on a stop id, a stop string or the
  // length limit.
  auto append = [&](Seq& s, int64_t token, float logprob) {
    auto& out = *s.out;
    out.token_ids.push_back(token);
    out.logprobs.push_back(logprob);
    ++st.generated_tokens;
    if (on_token) on_token(s.group, s.sample % G, token);
    if (std::find(sp.stop_token_ids.begin(), sp.stop_token_ids.end(), token) !=
        sp.stop_token_ids.end())
      return finish(s, FinishReason::kStop);
    if (!stop_matchers.empty() && stop_matchers[s.sample].push(token))
      return finish(s, FinishReason::kStop);
    if (static_cast<int64_t>(out.token_ids.size()) >= sp.max_new_tokens)
      finish(s, FinishReason::kLength);
    else
      s.last = token;
  };

  std::vector<Seq> active;  // slot b holds active[b]
  active.reserve(N);
  // Frees the slots of finished sequences: the last active slot moves into each hole.
  auto compact = [&]() {
    size_t b = 0;
    while (b < active.size()) {
      if (!active[b].done) {
        ++b;
        continue;
      }
      // Drop finished sequences at the end, then move the last live one into slot b.
      while (active.size() - 1 > b && active.back().done) active.pop_back();
      const size_t last = active.size() - 1;
      if (last > b) {
        move_slot(static_cast<int64_t>(last), static_cast<int64_t>(b), active[last].pos, exact);
        active[b] = active[last];
        ++b;
      }
      active.pop_back();
    }
  };

  // A prompt's forward: naive attention (its prompt tokens at once), keys and values into
  // `cache`, the hidden states out (the caller takes the logits it needs).
  auto prefill_options = [&](policy::KVCache* cache) {
    policy::ForwardOptions o;
    o.cache = cache;
    o.attn_impl = policy::AttnImpl::kNaive;
    o.execution = exec;
    o.compute_logits = false;
    o.record_experts = request.record_experts;
    return o;
  };
  int64_t prefilled = -1;        // the group whose prompt is in scratch_
  torch::Tensor prefill_logits;  // [1, V] fp32, the next-token logits after its prompt
  std::vector<double> uniforms;
  // Prefix sharing, a group's first samples: the prompts of group g and of the groups after
  // it that get slots now, prefilled in one forward (right-padded to the longest: a causal
  // prompt token never sees the pads after it) straight into the first free slots, one a
  // prompt, then copied into the slots of each group's samples. Up to
  // EngineOptions::kPrefillBatchTokens padded tokens a forward. The last group may get
  // only some of its slots: its prompt then waits in scratch_ for the rest, as a single
  // prefill's does. Returns the samples admitted.
  auto admit_groups = [&](int64_t g) {
    const int64_t b0 = static_cast<int64_t>(active.size());
    std::vector<int64_t> groups, takes, first;
    int64_t left = N - b0, width = 0, samples = 0;
    for (int64_t h = g; h < n_prompts && left > 0; ++h) {
      const int64_t P = static_cast<int64_t>(request.prompts[h].ids.size());
      const int64_t w = std::max(width, P);
      const int64_t m = static_cast<int64_t>(groups.size()) + 1;
      if (m > 1 && m * w > EngineOptions::kPrefillBatchTokens) break;
      groups.push_back(h);
      takes.push_back(std::min(G, left));
      first.push_back(samples);
      samples += takes.back();
      left -= takes.back();
      width = w;
    }
    const int64_t m = static_cast<int64_t>(groups.size());
    std::vector<int64_t> ids(static_cast<size_t>(m * width), 0), last(static_cast<size_t>(m));
    for (int64_t i = 0; i < m; ++i) {
      const auto& p = request.prompts[groups[i]].ids;
      std::copy(p.begin(), p.end(), ids.begin() + i * width);
      last[i] = i * width + static_cast<int64_t>(p.size()) - 1;
      st.prefill_tokens += static_cast<int64_t>(p.size());
    }
    policy::KVCache rows = cache_.slots(b0, m);
    auto fwd = model_->forward(torch::tensor(ids, torch::kLong).view({m, width}).to(dev),
                               prefill_options(&rows));
    ++st.prefill_forwards;
    const auto h = fwd.hidden.reshape({m * width, -1});
    const auto logits = logits_of(h.index_select(0, torch::tensor(last, torch::kLong).to(dev)));
    if (fwd.experts.defined()) {
      const auto experts = fwd.experts.to(torch::kCPU);
      for (int64_t i = 0; i < m; ++i) {
        const int64_t P = static_cast<int64_t>(request.prompts[groups[i]].ids.size());
        result[groups[i]].prompt_experts = {};
        append_routed(experts.narrow(0, i, 1).narrow(1, 0, P).contiguous(), 0,
                      result[groups[i]].prompt_experts);
      }
    }
    // Prompt i is in slot b0 + i and goes to slots b0 + first[i] + [0, takes[i]), where
    // first[i] >= i: from the last prompt back, no copy overwrites a prompt not yet copied.
    for (int64_t i = m - 1; i >= 0; --i) {
      const int64_t P = static_cast<int64_t>(request.prompts[groups[i]].ids.size());
      const int64_t self = first[i] == i ? 1 : 0;  // its own slot is its first sample's
      if (takes[i] > self)
        cache_.copy_slot(cache_, b0 + i, b0 + first[i] + self, P, takes[i] - self);
      if (takes[i] < G) {  // the rest of this group's samples come later
        scratch_.copy_slot(cache_, b0 + i, 0, P);
        prefilled = groups[i];
        prefill_logits = logits.narrow(0, i, 1);
      }
    }
    // The samples, in slot order, and their first tokens from their prompt's logits.
    std::vector<int64_t> row_of(static_cast<size_t>(samples));
    uniforms.resize(samples);
    for (int64_t i = 0; i < m; ++i) {
      const auto& prompt = request.prompts[groups[i]];
      for (int64_t j = 0; j < takes[i]; ++j) {
        Seq s;
        s.group = groups[i];
        s.sample = groups[i] * G + j;
        s.seed =
            derive_seed(sp.seed, {static_cast<uint64_t>(prompt.index), static_cast<uint64_t>(j)});
        s.pos = static_cast<int64_t>(prompt.ids.size());
        s.out = &result[groups[i]].completions[j];
        uniforms[first[i] + j] = sample_uniform(s.seed, 0);
        row_of[first[i] + j] = i;
        active.push_back(s);
      }
    }
    auto tok0 = sample_tokens(logits.index_select(0, torch::tensor(row_of, torch::kLong).to(dev)),
                              sp, uniforms, exec);
    const auto tok = tok0.tokens.to(torch::kCPU).contiguous();
    const auto lp = tok0.logprobs.to(torch::kCPU).contiguous();
    for (int64_t q = 0; q < samples; ++q)
      append(active[b0 + q], tok.data_ptr<int64_t>()[q], lp.data_ptr<float>()[q]);
    return samples;
  };

  const int64_t total = n_prompts * G;
  int64_t next = 0;  // the next waiting sample, g * G + j

  while (next < total || !active.empty()) {
    if (abort_.load()) {
      for (auto& s : active) finish(s, FinishReason::kAbort);
      for (; next < total; ++next) {
        Seq s;
        s.group = next / G;
        s.sample = next;
        s.out = &result[s.group].completions[next % G];
        finish(s, FinishReason::kAbort);
      }
      active.clear();
      break;
    }

    if (options_.use_lent_cores)
      exec.decode_threads = std::min(own_threads + LendCores::lent(), policy::kMaxDecodeThreads);
    st.max_decode_threads = std::max(st.max_decode_threads, exec.decode_threads);

    // Admission: waiting samples take the free slots.
    const auto t_admit = Clock::now();
    while (next < total && static_cast<int64_t>(active.size()) < N) {
      const int64_t g = next / G, j0 = next % G;
      if (!exact && options_.share_prefix && prefilled != g) {  // a new group: j0 == 0
        next += admit_groups(g);
        compact();
        continue;
      }
      const auto& prompt = request.prompts[g];
      const int64_t P = static_cast<int64_t>(prompt.ids.size());
      if (exact && (prefilled != g || !options_.share_prefix)) {
        std::vector<policy::ExactRow> rows;
        for (int64_t t = 0; t < P; ++t) rows.push_back({0, t, prompt.ids[t]});
        torch::Tensor ex;
        auto h = em->forward(*exact_scratch_, rows, exec, request.record_experts ? &ex : nullptr);
        if (ex.defined()) {
          result[g].prompt_experts = {};
          append_routed(ex.unsqueeze(0).contiguous(), 0, result[g].prompt_experts);
        }
        prefill_logits = em->logits(h.narrow(0, P - 1, 1), exact_t, exec);  // tempered
        prefilled = g;
        st.prefill_tokens += P;
        ++st.prefill_forwards;
      } else if (prefilled != g || !options_.share_prefix) {
        auto ids = torch::tensor(prompt.ids, torch::kLong).view({1, P}).to(dev);
        auto fwd = model_->forward(ids, prefill_options(&scratch_));
        auto h = fwd.hidden;  // [1, P, d]
        if (fwd.experts.defined()) {
          result[g].prompt_experts = {};
          append_routed(fwd.experts.to(torch::kCPU).contiguous(), 0, result[g].prompt_experts);
        }
        prefill_logits = logits_of(h.select(1, P - 1));
        prefilled = g;
        st.prefill_tokens += P;
        ++st.prefill_forwards;
      }
      const int64_t free_slots = N - static_cast<int64_t>(active.size());
      const int64_t k = options_.share_prefix ? std::min(free_slots, G - j0) : 1;
      const int64_t b0 = static_cast<int64_t>(active.size());
      for (int64_t i = 0; exact && i < k; ++i)
        exact_cache_->copy_slot(*exact_scratch_, 0, b0 + i, P);
      if (!exact) cache_.copy_slot(scratch_, 0, b0, P, k);
      uniforms.resize(k);
      for (int64_t i = 0; i < k; ++i) {
        Seq s;
        s.group = g;
        s.sample = g * G + j0 + i;
        s.seed = derive_seed(sp.seed,
                             {static_cast<uint64_t>(prompt.index), static_cast<uint64_t>(j0 + i)});
        s.pos = P;
        s.out = &result[g].completions[j0 + i];
        uniforms[i] = sample_uniform(s.seed, 0);
        active.push_back(s);
      }
      if (exact) {
        for (int64_t i = 0; i < k; ++i) {
          const auto [tok, lp] = exact_pick(prefill_logits, 0, uniforms[i]);
          append(active[b0 + i], tok, lp);
        }
      } else {
        auto first = sample_tokens(prefill_logits.expand({k, V}), sp, uniforms, exec);
        auto tok = first.tokens.to(torch::kCPU), lp = first.logprobs.to(torch::kCPU);
        for (int64_t i = 0; i < k; ++i)
          append(active[b0 + i], tok[i].item<int64_t>(), lp[i].item<float>());
      }
      next += k;
      compact();
    }
    st.prefill_seconds += seconds_since(t_admit);
    if (active.empty()) continue;

    // One decode step for every active slot, each at its own position.
    const auto t_dec = Clock::now();
    const int64_t B = static_cast<int64_t>(active.size());
    std::vector<int64_t> ids(B), pos(B);
    uniforms.resize(B);
    int64_t max_pos = 0;
    for (int64_t b = 0; b < B; ++b) {
      const Seq& s = active[b];
      ids[b] = s.last;
      pos[b] = s.pos;
      max_pos = std::max(max_pos, s.pos);
      uniforms[b] = sample_uniform(s.seed, s.out->token_ids.size());
    }
    if (exact) {
      std::vector<policy::ExactRow> rows(B);
      for (int64_t b = 0; b < B; ++b) rows[b] = {b, pos[b], ids[b]};
      torch::Tensor ex;
      auto h = em->forward(*exact_cache_, rows, exec, request.record_experts ? &ex : nullptr);
      if (ex.defined()) {
        const auto experts = ex.unsqueeze(1).contiguous();  // [B, 1, L, K]
        for (int64_t b = 0; b < B; ++b) append_routed(experts, b, active[b].out->routed_experts);
      }
      const auto z = em->logits(h, exact_t, exec);
      for (int64_t b = 0; b < B; ++b) {
        const auto [tok, lp] = exact_pick(z, b, uniforms[b]);
        ++active[b].pos;
        append(active[b], tok, lp);
      }
      compact();
      ++st.decode_steps;
      st.mean_batch += static_cast<double>(B);
      st.decode_seconds += seconds_since(t_dec);
      continue;
    }
    policy::ForwardOptions o;
    o.cache = &cache_;
    o.start_pos = max_pos;
    o.row_positions = torch::tensor(pos, torch::kLong).to(dev);
    o.attn_impl = options_.decode_impl;
    o.execution = exec;
    o.compute_logits = false;
    o.record_experts = request.record_experts;
    auto fwd = model_->forward(torch::tensor(ids, torch::kLong).view({B, 1}).to(dev), o);
    auto h = fwd.hidden;
    // The experts of each row's input token: the completion's latest token.
    if (fwd.experts.defined()) {
      const auto experts = fwd.experts.to(torch::kCPU).contiguous();
      for (int64_t b = 0; b < B; ++b) append_routed(experts, b, active[b].out->routed_experts);
    }
    auto next_tok = sample_tokens(logits_of(h.select(1, 0)), sp, uniforms, exec);
    auto tok = next_tok.tokens.to(torch::kCPU).contiguous();
    auto lp = next_tok.logprobs.to(torch::kCPU).contiguous();
    const int64_t* tp = tok.data_ptr<int64_t>();
    const float* lpp = lp.data_ptr<float>();
    for (int64_t b = 0; b < B; ++b) {
      ++active[b].pos;  // its last token is now in the cache
      append(active[b], tp[b], lpp[b]);
    }
    compact();
    ++st.decode_steps;
    st.mean_batch += static_cast<double>(B);
    st.decode_seconds += seconds_since(t_dec);
  }
  if (st.decode_steps > 0) st.mean_batch /= static_cast<double>(st.decode_steps);
  st.total_seconds = seconds_since(t_start);
  stats_ = st;
  abort_.store(false);
  return result;
}

}  // namespace r1kit::rollout
