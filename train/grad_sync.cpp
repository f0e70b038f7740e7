#include "train/grad_sync.h"

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/utils/lambda_post_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <algorithm>
#include <functional>
#include <tuple>

#include "core/metric_names.h"

namespace r1kit::train {

void DataParallel::sum_gradients(const std::vector<torch::Tensor>& params) {
  if (world_size() == 1) return;
  // Which parameters got a gradient on some rank: the others keep none, as in one
  // process (AdamW leaves a parameter without a gradient alone).
  auto has = torch::zeros({static_cast<int64_t>(params.size())}, torch::kFloat);
  for (size_t i = 0; i < params.size(); ++i)
    if (params[i].grad().defined()) has[i] = 1.0f;
  all_reduce_sum(has);
  for (size_t i = 0; i < params.size(); ++i) {
    auto p = params[i];
    if (!p.requires_grad() || has[i].item<float>() == 0) continue;
    if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
    auto g = p.grad();
    all_reduce_sum(g);
  }
}

std::unique_ptr<DataParallel> DataParallel::new_group() {
  TORCH_CHECK(world_size() == 1, "DataParallel::new_group: a group of ", world_size(),
              " ranks must create its own");
  return std::make_unique<DataParallel>();
}

namespace {

template <class T>
void sum_values(std::initializer_list<T*> values, DataParallel& dp, torch::ScalarType type) {
  if (dp.world_size() == 1) return;
  std::vector<T> v;
  for (T* x : values) v.push_back(*x);
  auto t = torch::tensor(v, type);
  dp.all_reduce_sum(t);
  int64_t i = 0;
  for (T* x : values) *x = t[i++].template item<T>();
}

}  // namespace

void sum_over_ranks(std::initializer_list<double*> values, DataParallel& dp) {
  sum_values(values, dp, torch::kDouble);
}

void sum_over_ranks(std::initializer_list<int64_t*> values, DataParallel& dp) {
  sum_values(values, dp, torch::kLong);
}

bool any_rank(bool flag, DataParallel& dp) {
  if (dp.world_size() == 1) return flag;
  auto t = torch::tensor({flag ? 1.0 : 0.0}, torch::kDouble);
  dp.all_reduce_sum(t);
  return t.item<double>() > 0;
}

void broadcast_model(policy::TransformerImpl& model, DataParallel& dp) {
  if (dp.world_size() == 1) return;
  torch::NoGradGuard ng;
  for (auto& p : model.parameters()) dp.broadcast(p);
  for (auto& b : model.buffers()) dp.broadcast(b);
}

torch::Tensor update_expert_bias(policy::TransformerImpl& model, DataParallel& dp) {
  const double gamma = model.args().bias_update_gamma;
  if (dp.world_size() == 1) {
    auto load = model.accumulated_expert_load().to(torch::kFloat);  // before the reset
    model.update_expert_bias(gamma);
    return load;
  }
  std::vector<policy::MoEImpl*> moes;
  std::vector<torch::Tensor> loads;
  for (const auto& m : model.modules(/*include_self=*/false))
    if (auto* moe = dynamic_cast<policy::MoEImpl*>(m.get())) {
      moes.push_back(moe);
      loads.push_back(moe->accumulated_load().to(torch::kFloat));
    }
  if (moes.empty()) return torch::zeros({0, 0});
  auto all = torch::stack(loads);  // one reduction for every layer
  dp.all_reduce_sum(all);
  std::vector<torch::Tensor> main_layers;
  for (const auto& l : *model.layers)
    if (const auto& moe = l->as<policy::DecoderLayerImpl>()->moe) {
      const auto at = std::find(moes.begin(), moes.end(), moe.get()) - moes.begin();
      main_layers.push_back(all[at].clone());
    }
  for (size_t i = 0; i < moes.size(); ++i) moes[i]->update_bias(gamma, all[i]);
  return main_layers.empty() ? torch::zeros({0, 0}) : torch::stack(main_layers);
}

void add_moe_load_metrics(const torch::Tensor& load, std::map<std::string, double>* m) {
  if (!load.defined() || load.numel() == 0) return;
  auto frac = (load / load.sum(1, true).clamp_min(1)).to(torch::kDouble);
  (*m)[metric::kMoeMaxLoadOverMean] =
      (std::get<0>(frac.max(1)) * frac.size(1)).mean().item<double>();
  auto f = frac.accessor<double, 2>();
  for (int64_t l = 0; l < frac.size(0); ++l)
    for (int64_t e = 0; e < frac.size(1); ++e) (*m)[metric::moe_load_key(l, e)] = f[l][e];
}

// ---------------------------------------------------------------------------------

struct GradientSync::State {
  struct Bucket {
    std::vector<size_t> params;  // indices into `params`, in launch order
    int64_t numel = 0;
    int64_t first = 0;    // the flat index (parameter order) of its first number
    int64_t pending = 0;  // parameters not yet ready in the armed backward
    // The gradients in parameter order, then one flag per parameter (launch order): 1 when
    // this rank has a gradient for it.
    torch::Tensor flat;
    // scatter_to_shards: each rank's part of the numbers, and this rank's part summed.
    std::vector<int64_t> counts;
    torch::Tensor mine;
    std::function<void()> wait;  // set once launched
  };
  std::vector<torch::Tensor> params;  // the trainable parameters, in reverse order
  std::vector<size_t> bucket_of;      // per parameter
  std::vector<int64_t> at;            // per parameter: its offset in its bucket's flat
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators;  // keep the hooks alive
  std::vector<Bucket> buckets;
  size_t next_launch = 0;
  bool armed = false;
  int64_t sent_by_hooks = 0;
  int64_t total = 0;  // trainable numbers
  // scatter_to_shards: reduce-scatter, and this rank's range [lo, hi) of the flat numbers.
  bool scatter = false;
  int64_t lo = 0, hi = 0;
  DataParallel* group = nullptr;

  void reset() {
    for (auto& b : buckets) {
      b.pending = static_cast<int64_t>(b.params.size());
      b.wait = nullptr;
    }
    next_launch = 0;
    armed = false;
  }

  void launch(Bucket& b) {
    int64_t k = 0;
    for (size_t i : b.params) {
      const auto& p = params[i];
      auto dst = b.flat.narrow(0, at[i], p.numel());
      const bool has = p.grad().defined();
      if (has)
        dst.copy_(p.grad().reshape({-1}));
      else
        dst.zero_();
      b.flat[b.numel + k++] = has ? 1.0f : 0.0f;
    }
    if (!scatter) {
      b.wait = group->all_reduce_sum_async(b.flat);
      return;
    }
    // The numbers reduce-scattered, the flags (a few bytes) all-reduced.
    auto numbers = group->reduce_scatter_sum_async(b.flat.narrow(0, 0, b.numel), b.mine, b.counts);
    auto flags = group->all_reduce_sum_async(b.flat.narrow(0, b.numel, b.flat.numel() - b.numel));
    b.wait = [numbers, flags] {
      numbers();
      flags();
    };
  }

  // Launches the ready buckets at the front of the queue, in order.
  void launch_ready() {
    while (next_launch < buckets.size() && buckets[next_launch].pending == 0)
      launch(buckets[next_launch++]);
  }

  void on_ready(size_t param) {
    if (!armed) return;
    if (--buckets[bucket_of[param]].pending > 0) return;
    const size_t before = next_launch;
    launch_ready();
    sent_by_hooks += static_cast<int64_t>(next_launch - before);
  }

  // Parameter i's gradient from its bucket's sums: the whole of it, or with
  // scatter_to_shards this rank's range of it and zeros elsewhere.
  void write_sum(const Bucket& b, size_t i) {
    auto& p = params[i];
    if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
    if (!scatter) {
      p.mutable_grad().copy_(b.flat.narrow(0, at[i], p.numel()).view_as(p));
      return;
    }
    if (!p.grad().is_contiguous()) p.mutable_grad() = p.grad().contiguous();
    auto g = p.mutable_grad().view({-1});
    const int64_t begin = b.first + at[i];  // the parameter's flat range
    const int64_t from = std::max(begin, lo), to = std::min(begin + p.numel(), hi);
    g.zero_();
    if (from >= to) return;
    // b.mine starts at the bucket's first number in this rank's range.
    const int64_t mine_first = std::max(b.first, lo);
    g.narrow(0, from - begin, to - from).copy_(b.mine.narrow(0, from - mine_first, to - from));
  }
};

GradientSync::GradientSync(const std::vector<torch::Tensor>& params, DataParallel& group,
                           double bucket_mb)
    : group_(group), state_(std::make_shared<State>()) {
  State& s = *state_;
  s.group = &group;
  const auto cap = static_cast<int64_t>(bucket_mb * 1024 * 1024 / sizeof(float));
  for (auto it = params.rbegin(); it != params.rend(); ++it) {
    if (!it->requires_grad()) continue;
    if (s.buckets.empty() ||
        (s.buckets.back().numel > 0 && s.buckets.back().numel + it->numel() > cap))
      s.buckets.emplace_back();
    s.buckets.back().params.push_back(s.params.size());
    s.buckets.back().numel += it->numel();
    s.bucket_of.push_back(s.buckets.size() - 1);
    s.params.push_back(*it);
    s.total += it->numel();
  }
  // Flat indices in parameter order: the last parameter (launched first) ends at total.
  s.at.resize(s.params.size());
  int64_t end = s.total;
  for (auto& b : s.buckets) {
    b.first = end - b.numel;
    for (size_t i : b.params) {
      end -= s.params[i].numel();
      s.at[i] = end - b.first;
    }
    b.flat = torch::zeros({b.numel + static_cast<int64_t>(b.params.size())}, torch::kFloat);
  }
  s.reset();
  // A hook after each parameter's gradient accumulator: its gradient is final for this
  // backward pass.
  for (size_t i = 0; i < s.params.size(); ++i) {
    auto acc = torch::autograd::impl::grad_accumulator(s.params[i]);
    std::weak_ptr<State> weak = state_;
    acc->add_post_hook(std::make_unique<torch::autograd::utils::LambdaPostHook>(
        [weak, i](const torch::autograd::variable_list& outputs,
                  const torch::autograd::variable_list&) {
          // The hook stays on the accumulator when the GradientSync is gone.
          if (auto st = weak.lock()) st->on_ready(i);
          return outputs;
        }));
    s.accumulators.push_back(std::move(acc));
  }
}

GradientSync::~GradientSync() = default;

int64_t GradientSync::n_buckets() const {
  return static_cast<int64_t>(state_->buckets.size());
}

int64_t GradientSync::sent_during_backward() const {
  return state_->sent_by_hooks;
}

void GradientSync::scatter_to_shards(int64_t total, int64_t chunk) {
  State& s = *state_;
  TORCH_CHECK(total == s.total && chunk > 0, "scatter_to_shards: ", total,
              " numbers sharded, but the gradients hold ", s.total);
  if (world_size() == 1) return;
  auto range_of = [&](int r) {
    const int64_t lo = std::min(total, r * chunk);
    return std::make_pair(lo, std::min(total, lo + chunk));
  };
  s.scatter = true;
  std::tie(s.lo, s.hi) = range_of(rank());
  for (auto& b : s.buckets) {
    // Rank r's part: the bucket's overlap with its range; they follow each other in rank
    // order, as a reduce-scatter's parts.
    b.counts.clear();
    for (int r = 0; r < world_size(); ++r) {
      const auto [lo, hi] = range_of(r);
      b.counts.push_back(
          std::max<int64_t>(0, std::min(hi, b.first + b.numel) - std::max(lo, b.first)));
    }
    b.mine = torch::zeros({b.counts[rank()]}, torch::kFloat);
  }
}

void GradientSync::before_last_backward() {
  if (world_size() > 1) state_->armed = true;
}

void GradientSync::sum_gradients(const std::vector<torch::Tensor>& /*params*/) {
  if (world_size() == 1) return;
  State& s = *state_;
  // Buckets no hook completed (unused parameters, or no armed backward on this rank).
  while (s.next_launch < s.buckets.size()) s.launch(s.buckets[s.next_launch++]);
  torch::NoGradGuard ng;
  for (auto& b : s.buckets) {
    b.wait();
    const float* has = b.flat.data_ptr<float>() + b.numel;
    int64_t k = 0;
    for (size_t i : b.params)
      // No rank has a gradient for it (an expert no token reached): it keeps none, so
      // AdamW leaves it alone as in one process.
      if (has[k++] > 0) s.write_sum(b, i);
  }
  s.reset();
}

}  // namespace r1kit::train
