#include "train/optim.h"

#include <cmath>

#include "core/safetensors.h"
#include "train/fused_adamw.h"
#include "train/sharded_adamw.h"

namespace r1kit::train {

torch::optim::AdamWOptions adamw_options(const OptimConfig& cfg) {
  return torch::optim::AdamWOptions(cfg.lr)
      .betas({cfg.beta1, cfg.beta2})
      .eps(cfg.eps)
      .weight_decay(cfg.weight_decay);
}

std::unique_ptr<torch::optim::AdamW> make_adamw(
    const torch::OrderedDict<std::string, torch::Tensor>& params, const OptimConfig& cfg) {
  std::vector<torch::Tensor> decay, no_decay;
  for (const auto& p : params) {
    if (!p.value().requires_grad()) continue;
    (p.value().dim() >= 2 ? decay : no_decay).push_back(p.value());
  }
  const auto opts = adamw_options(cfg);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(opts));
  auto nd = opts;
  nd.weight_decay(0.0);
  groups.emplace_back(no_decay, std::make_unique<torch::optim::AdamWOptions>(nd));
  return std::make_unique<FusedAdamW>(groups, opts);
}

double lr_at(int64_t step, int64_t total_steps, const OptimConfig& cfg) {
  if (cfg.warmup_steps > 0 && step < cfg.warmup_steps)
    return cfg.lr * static_cast<double>(step + 1) / cfg.warmup_steps;
  const int64_t span = std::max<int64_t>(total_steps - cfg.warmup_steps, 1);
  const double progress = std::clamp(static_cast<double>(step - cfg.warmup_steps) / span, 0.0, 1.0);
  const double floor = cfg.lr * cfg.min_lr_ratio;
  return floor + (cfg.lr - floor) * 0.5 * (1.0 + std::cos(M_PI * progress));
}

void set_lr(torch::optim::Optimizer& opt, double lr) {
  for (auto& g : opt.param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
}

void zero_grad(const std::vector<torch::Tensor>& params) {
  for (const auto& p : params) {
    auto& g = const_cast<torch::Tensor&>(p).mutable_grad();
    if (g.defined()) g = torch::Tensor();
  }
}

double clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm) {
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> norms;
  for (const auto& p : params)
    if (p.grad().defined()) norms.push_back(p.grad().to(torch::kFloat).norm(2).pow(2));
  if (norms.empty()) return 0.0;
  const double total = std::sqrt(torch::stack(norms).sum().item<double>());
  if (max_norm > 0 && total > max_norm) {
    const double scale = max_norm / (total + 1e-6);
    for (const auto& p : params)
      if (p.grad().defined()) p.grad().mul_(scale);
  }
  return total;
}

GuardedStep guarded_step(torch::optim::Optimizer& opt, const std::vector<torch::Tensor>& params,
                         double max_norm, double loss) {
  GuardedStep out;
  // Sharded: each rank holds the summed gradients of its range only.
  auto* sharded = dynamic_cast<ShardedAdamW*>(&opt);
  out.grad_norm = sharded ? sharded->clip_grad_norm(max_norm) : clip_grad_norm(params, max_norm);
  out.skipped = !std::isfinite(loss) || !std::isfinite(out.grad_norm);
  if (out.skipped)
    zero_grad(params);
  else
    opt.step();
  return out;
}

Status save_adamw_state(torch::optim::AdamW& opt,
                        const torch::OrderedDict<std::string, torch::Tensor>& params,
                        const std::string& path) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  if (auto* sharded = dynamic_cast<ShardedAdamW*>(&opt)) {
    ASSIGN_OR_RETURN(out, sharded->take_gathered());
    return write_safetensors(path, out, {{"format", "r1kit-adamw"}});
  }
  auto& state = opt.state();
  for (const auto& p : params) {
    auto it = state.find(adamw_state_key(p.value()));
    if (it == state.end()) continue;
    auto& s = static_cast<torch::optim::AdamWParamState&>(*it->second);
    out.emplace_back("exp_avg." + p.key(), s.exp_avg().contiguous());
    out.emplace_back("exp_avg_sq." + p.key(), s.exp_avg_sq().contiguous());
    out.emplace_back("step." + p.key(), torch::tensor({s.step()}, torch::kLong));
  }
  return write_safetensors(path, out, {{"format", "r1kit-adamw"}});
}

Status load_adamw_state(torch::optim::AdamW& opt,
                        const torch::OrderedDict<std::string, torch::Tensor>& params,
                        const std::string& path) {
  ASSIGN_OR_RETURN(auto file, SafetensorsFile::open(path));
  auto* sharded = dynamic_cast<ShardedAdamW*>(&opt);
  auto& state = opt.state();
  state.clear();
  for (const auto& p : params) {
    const std::string& name = p.key();
    if (!file->find("exp_avg." + name)) continue;  // never stepped (e.g. no gradient yet)
    // Shapes from the header, before any tensor is read.
    const TensorInfo* mi = file->find("exp_avg." + name);
    const TensorInfo* vi = file->find("exp_avg_sq." + name);
    const TensorInfo* si = file->find("step." + name);
    if (!vi || !si || !p.value().sizes().equals(mi->shape) ||
        !p.value().sizes().equals(vi->shape) || si->numel() != 1)
      return DataLoss("{}: optimizer state for '{}' does not match the parameter's shape", path,
                      name);
    ASSIGN_OR_RETURN(torch::Tensor m, file->load("exp_avg." + name));
    ASSIGN_OR_RETURN(torch::Tensor v, file->load("exp_avg_sq." + name));
    ASSIGN_OR_RETURN(torch::Tensor step, file->load("step." + name));
    if (sharded) {  // this rank's slices
      sharded->set_state(name, m, v, step.item<int64_t>());
      continue;
    }
    auto s = std::make_unique<torch::optim::AdamWParamState>();
    s->step(step.item<int64_t>());
    s->exp_avg(m.to(p.value().options()));
    s->exp_avg_sq(v.to(p.value().options()));
    state[adamw_state_key(p.value())] = std::move(s);
  }
  return OkStatus();
}

}  // namespace r1kit::train
