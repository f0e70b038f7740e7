// A deterministic RolloutSource for the gRPC tests: no model, outputs computed from the
// prompt, the seed, the sample index and the weights it holds, with controllable
// per-group delay, a stall switch, an abort hook, and a record of what it served and
// which weights it was given.
#pragma once

#include <torch/torch.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <numeric>
#include <thread>

#include "rollout/rollout_source.h"

namespace r1kit::rollout::testing {

class FakeSource final : public RolloutSource {
 public:
  static constexpr int64_t kVocab = 100;

  // Completion j of prompt (ids, index): max_new_tokens tokens,
  // (sum(ids) + 7 index + 13 j + seed + t + stamp) mod V, log-prob -(t + 1) / 10, where
  // `stamp` is the sum of the held weights' first elements (0 with no weights).
  static Group make_group(const PromptInput& p, const GenerateRequest& r, int64_t version,
                          int64_t stamp) {
    Group g;
    g.prompt_index = p.index;
    const int64_t base = std::accumulate(p.ids.begin(), p.ids.end(), int64_t{0});
    for (int64_t j = 0; j < r.group_size; ++j) {
      Completion c;
      for (int64_t t = 0; t < r.sampling.max_new_tokens; ++t) {
        c.token_ids.push_back(
            (base + 7 * p.index + 13 * j + static_cast<int64_t>(r.sampling.seed) + t + stamp) %
            kVocab);
        c.logprobs.push_back(-static_cast<float>(t + 1) / 10.0f);
      }
      c.finish_reason = j % 2 ? FinishReason::kStop : FinishReason::kLength;
      c.policy_version = version;
      g.completions.push_back(std::move(c));
    }
    return g;
  }

  StatusOr<std::vector<Group>> generate(
      const GenerateRequest& request,
      const std::function<void(const Group&)>& on_group = {}) override {
    std::lock_guard<std::mutex> gen_lock(gen_mu_);  // excludes update_weights
    abort_ = false;
    std::vector<Group> out;
    for (const PromptInput& p : request.prompts) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return !stalled_ || abort_; });
      }
      const auto until = std::chrono::steady_clock::now() + delay;
      while (std::chrono::steady_clock::now() < until && !abort_)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      if (abort_) return Cancelled("fake: aborted");
      Group g = make_group(p, request, version_, stamp_);
      served_ += 1;
      if (on_group) on_group(g);
      out.push_back(std::move(g));
    }
    return out;
  }

  Status update_weights(const NamedTensors& weights, int64_t version) override {
    {
      std::unique_lock<std::mutex> lock(mu_);
      update_entered_ = true;
      cv_.notify_all();
      cv_.wait(lock, [&] { return !hold_update_; });
    }
    if (!required_.empty()) {
      if (weights.size() != required_.size())
        return InvalidArgument("fake: {} tensors, need {}", weights.size(), required_.size());
      for (const auto& [name, t] : weights) {
        auto it = required_.find(name);
        if (it == required_.end()) return InvalidArgument("fake: unknown tensor '{}'", name);
        if (t.sizes().vec() != it->second)
          return InvalidArgument("fake: tensor '{}' has the wrong shape", name);
      }
    }
    std::lock_guard<std::mutex> gen_lock(gen_mu_);
    weights_.clear();
    int64_t stamp = 0;
    for (const auto& [name, t] : weights) {
      weights_[name] = t.clone();
      if (t.numel() > 0) stamp += t.flatten()[0].item<double>();
    }
    stamp_ = stamp;
    version_ = version;
    ++updates_;
    return OkStatus();
  }

  int64_t policy_version() const override { return version_.load(); }

  // Controls.
  std::chrono::milliseconds delay{0};  // per group; set before use
  void abort() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      abort_ = true;
    }
    cv_.notify_all();
  }
  void set_stalled(bool s) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stalled_ = s;
    }
    cv_.notify_all();
  }
  // While held, update_weights waits (after being entered) until released.
  void hold_updates(bool h) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      hold_update_ = h;
    }
    cv_.notify_all();
  }
  bool wait_update_entered(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return update_entered_; });
  }
  void require(std::map<std::string, std::vector<int64_t>> names) { required_ = std::move(names); }

  // Records.
  int64_t served() const { return served_.load(); }
  int64_t updates() const { return updates_.load(); }
  std::map<std::string, torch::Tensor> weights() {
    std::lock_guard<std::mutex> gen_lock(gen_mu_);
    return weights_;
  }

 private:
  std::mutex gen_mu_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stalled_ = false;
  bool hold_update_ = false;
  bool update_entered_ = false;
  std::atomic<bool> abort_{false};
  std::atomic<int64_t> version_{0};
  std::atomic<int64_t> served_{0};
  std::atomic<int64_t> updates_{0};
  int64_t stamp_ = 0;
  std::map<std::string, torch::Tensor> weights_;
  std::map<std::string, std::vector<int64_t>> required_;
};

}  // namespace r1kit::rollout::testing
