#include "train/sharded_adamw.h"

#include <algorithm>
#include <cmath>

namespace r1kit::train {

StatusOr<std::unique_ptr<ShardedAdamW>> ShardedAdamW::make(
    const torch::OrderedDict<std::string, torch::Tensor>& params, const OptimConfig& cfg,
    DataParallel& dp, double gather_mb) {
  std::vector<std::string> names;
  std::vector<torch::Tensor> tensors;
  std::vector<int64_t> offsets = {0};
  for (const auto& p : params) {
    const torch::Tensor& t = p.value();
    if (!t.requires_grad()) continue;
    if (!t.is_contiguous())
      return InvalidArgument("dist.shard_optimizer: parameter '{}' is not contiguous", p.key());
    if (!tensors.empty() && t.scalar_type() != tensors.front().scalar_type())
      return InvalidArgument(
          "dist.shard_optimizer: parameter '{}' is {} while '{}' is {}; sharding needs one dtype",
          p.key(), c10::toString(t.scalar_type()), names.front(),
          c10::toString(tensors.front().scalar_type()));
    names.push_back(p.key());
    tensors.push_back(t);
    offsets.push_back(offsets.back() + t.numel());
  }
  const int W = dp.world_size();
  const int64_t n = offsets.back();
  const int64_t chunk = (n + W - 1) / W;
  const int64_t begin = std::min(n, chunk * dp.rank());
  const int64_t end = std::min(n, begin + chunk);

  // This rank's pieces: the parameters' overlaps with [begin, end), as views that
  // AdamW updates in place (leaves: views of detached tensors carry no autograd history).
  std::vector<Piece> pieces;
  std::vector<torch::Tensor> decay, no_decay;
  {
    torch::NoGradGuard ng;
    for (size_t i = 0; i < tensors.size(); ++i) {
      const int64_t lo = std::max(begin, offsets[i]), hi = std::min(end, offsets[i + 1]);
      if (lo >= hi) continue;
      Piece piece;
      piece.param = i;
      piece.offset = lo - offsets[i];
      piece.numel = hi - lo;
      piece.view = tensors[i].detach().view({-1}).narrow(0, piece.offset, piece.numel);
      (tensors[i].dim() >= 2 ? decay : no_decay).push_back(piece.view);
      pieces.push_back(std::move(piece));
    }
  }
  const auto opts = adamw_options(cfg);
  auto nd = opts;
  nd.weight_decay(0.0);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(opts));
  groups.emplace_back(no_decay, std::make_unique<torch::optim::AdamWOptions>(nd));
  std::unique_ptr<ShardedAdamW> out(new ShardedAdamW(std::move(groups), opts));
  out->dp_ = &dp;
  out->names_ = std::move(names);
  out->params_ = std::move(tensors);
  out->offsets_ = std::move(offsets);
  out->pieces_ = std::move(pieces);
  out->begin_ = begin;
  out->end_ = end;
  out->chunk_ = chunk;
  // An all-gather round's buffers, this rank's slice and every rank's (W + 1 slices),
  // take about gather_mb: a transient that must stay well below the memory saved.
  const int64_t elem = out->params_.empty() ? 4 : out->params_.front().element_size();
  out->round_ = std::max<int64_t>(
      1, std::min<int64_t>(chunk, static_cast<int64_t>(gather_mb * 1024 * 1024 / elem / (W + 1))));
  return out;
}

double ShardedAdamW::clip_grad_norm(double max_norm) {
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> squares;
  for (const auto& piece : pieces_) {
    const torch::Tensor& g = params_[piece.param].grad();
    if (g.defined())
      squares.push_back(
          g.reshape({-1}).narrow(0, piece.offset, piece.numel).to(torch::kFloat).norm(2).pow(2));
  }
  auto total = torch::tensor({squares.empty() ? 0.0 : torch::stack(squares).sum().item<double>()},
                             torch::kDouble);
  dp_->all_reduce_sum(total);  // the pieces of all ranks cover every number once
  const double norm = std::sqrt(total.item<double>());
  if (max_norm > 0 && norm > max_norm) {
    const double scale = max_norm / (norm + 1e-6);
    // A parameter has one piece here at most; step reads only that slice of it.
    for (const auto& piece : pieces_)
      if (params_[piece.param].grad().defined()) params_[piece.param].grad().mul_(scale);
  }
  return norm;
}

torch::Tensor ShardedAdamW::step(LossClosure closure) {
  torch::NoGradGuard ng;
  // The summed gradients' slices (this rank's range is summed). A parameter without a
  // gradient (on any rank: they agree) leaves its pieces without one, and AdamW skips
  // them, as in one process.
  for (auto& piece : pieces_) {
    const torch::Tensor& g = params_[piece.param].grad();
    piece.view.mutable_grad() =
        g.defined() ? g.reshape({-1}).narrow(0, piece.offset, piece.numel) : torch::Tensor();
  }
  torch::Tensor loss = FusedAdamW::step(std::move(closure));
  // The slices alias the gradients, which zero_grad drops: do not keep them alive.
  for (auto& piece : pieces_) piece.view.mutable_grad() = torch::Tensor();
  gather_params();
  return loss;
}

void ShardedAdamW::copy_range(int64_t begin, int64_t end, torch::Tensor& buf, bool to_params) {
  // The first parameter that ends after `begin`.
  size_t i = std::upper_bound(offsets_.begin(), offsets_.end(), begin) - offsets_.begin() - 1;
  for (; i < params_.size() && offsets_[i] < end; ++i) {
    const int64_t lo = std::max(begin, offsets_[i]), hi = std::min(end, offsets_[i + 1]);
    if (lo >= hi) continue;
    auto p = params_[i].detach().view({-1}).narrow(0, lo - offsets_[i], hi - lo);
    auto b = buf.narrow(0, lo - begin, hi - lo);
    if (to_params)
      p.copy_(b);
    else
      b.copy_(p);
  }
}

void ShardedAdamW::gather_params() {
  const int W = dp_->world_size();
  if (W == 1 || params_.empty()) return;
  const auto opts = params_.front().options().requires_grad(false);
  auto mine = torch::zeros({round_}, opts);
  auto all = torch::empty({W * round_}, opts);
  const int64_t n = total_numel();
  for (int64_t start = 0; start < chunk_; start += round_) {
    // Rank r sends its elements [r * C + start, ... + round_), clipped to its range.
    auto range_of = [&](int r) {
      const int64_t lo = std::min(n, r * chunk_ + start);
      const int64_t hi = std::min({n, (r + 1) * chunk_, lo + round_});
      return std::make_pair(lo, std::max(lo, hi));
    };
    const auto [lo, hi] = range_of(dp_->rank());
    if (hi > lo) {
      auto head = mine.narrow(0, 0, hi - lo);
      copy_range(lo, hi, head, /*to_params=*/false);
    }
    dp_->all_gather(mine, all);
    for (int r = 0; r < W; ++r) {
      if (r == dp_->rank()) continue;  // already in place
      const auto [rlo, rhi] = range_of(r);
      if (rhi <= rlo) continue;
      auto part = all.narrow(0, r * round_, rhi - rlo);
      copy_range(rlo, rhi, part, /*to_params=*/true);
    }
  }
}

std::vector<std::pair<std::string, torch::Tensor>> ShardedAdamW::gather_state() {
  torch::NoGradGuard ng;
  const int64_t P = static_cast<int64_t>(params_.size());
  // Per parameter: how many of its pieces (over every rank) have a state, and the sum of
  // their step counts (the same on each: the pieces of a parameter step together).
  auto meta = torch::zeros({2 * P}, torch::kDouble);
  auto& st = state();
  for (const auto& piece : pieces_) {
    auto it = st.find(adamw_state_key(piece.view));
    if (it == st.end()) continue;
    const auto& s = static_cast<const torch::optim::AdamWParamState&>(*it->second);
    const auto i = static_cast<int64_t>(piece.param);
    meta[2 * i] += 1.0;
    meta[2 * i + 1] += static_cast<double>(s.step());
  }
  dp_->all_reduce_sum(meta);
  std::vector<std::pair<std::string, torch::Tensor>> out;
  const bool rank0 = dp_->rank() == 0;
  for (int64_t i = 0; i < P; ++i) {
    const double holders = meta[2 * i].item<double>();
    if (holders == 0) continue;  // never stepped
    const int64_t step = std::llround(meta[2 * i + 1].item<double>() / holders);
    const torch::Tensor& p = params_[i];
    // [2, numel]: the moments, each rank's slices at their places and zeros elsewhere;
    // the sum over the ranks is then every slice exactly (x + 0 = x).
    auto both = torch::zeros({2, p.numel()}, p.options().requires_grad(false));
    for (const auto& piece : pieces_) {
      if (piece.param != static_cast<size_t>(i)) continue;
      auto it = st.find(adamw_state_key(piece.view));
      if (it == st.end()) continue;
      const auto& s = static_cast<const torch::optim::AdamWParamState&>(*it->second);
      both[0].narrow(0, piece.offset, piece.numel).copy_(s.exp_avg());
      both[1].narrow(0, piece.offset, piece.numel).copy_(s.exp_avg_sq());
    }
    dp_->all_reduce_sum(both);
    if (!rank0) continue;
    out.emplace_back("exp_avg." + names_[i], both[0].view(p.sizes()).clone());
    out.emplace_back("exp_avg_sq." + names_[i], both[1].view(p.sizes()).clone());
    out.emplace_back("step." + names_[i], torch::tensor({step}, torch::kLong));
  }
  return out;
}

StatusOr<std::vector<std::pair<std::string, torch::Tensor>>> ShardedAdamW::take_gathered() {
  if (!have_gathered_)
    return FailedPrecondition(
        "the sharded optimizer state was not gathered before saving (every rank calls "
        "ShardedAdamW::gather_for_save first)");
  have_gathered_ = false;
  return std::move(gathered_);
}

void ShardedAdamW::set_state(const std::string& name, const torch::Tensor& exp_avg,
                             const torch::Tensor& exp_avg_sq, int64_t step) {
  for (const auto& piece : pieces_) {
    if (names_[piece.param] != name) continue;
    auto s = std::make_unique<torch::optim::AdamWParamState>();
    s->step(step);
    auto slice = [&](const torch::Tensor& t) {
      return t.reshape({-1}).narrow(0, piece.offset, piece.numel).to(piece.view.options()).clone();
    };
    s->exp_avg(slice(exp_avg));
    s->exp_avg_sq(slice(exp_avg_sq));
    state()[adamw_state_key(piece.view)] = std::move(s);
  }
}

int64_t optimizer_state_bytes(torch::optim::Optimizer& opt) {
  int64_t bytes = 0;
  for (const auto& [key, s] : opt.state()) {
    const auto* a = dynamic_cast<const torch::optim::AdamWParamState*>(s.get());
    if (!a) continue;
    for (const torch::Tensor& t : {a->exp_avg(), a->exp_avg_sq(), a->max_exp_avg_sq()})
      if (t.defined()) bytes += static_cast<int64_t>(t.nbytes());
  }
  return bytes;
}

}  // namespace r1kit::train
