// The grouped MoE training path (policy/grouped_experts.h): outputs and every gradient
// against plain LibTorch ops, token by token, and against the per-expert path of the
// model (ExecutionContext::kernels.grouped_experts off) with shared experts, routing
// replay, a load mask, top-k > 1 and experts that get no token.
#include "policy/grouped_experts.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

#include "core/torch_compat.h"
#include "policy/model.h"

namespace r1kit::policy {
namespace {

// max |a - b| / max |b| (the relative error of a against the reference b).
double rel_err(const torch::Tensor& a, const torch::Tensor& b) {
  auto ad = a.to(torch::kDouble), bd = b.to(torch::kDouble);
  const double scale = std::max(bd.abs().max().item<double>(), 1e-30);
  return (ad - bd).abs().max().item<double>() / scale;
}

struct Experts {
  ExpertWeights w;
  std::vector<torch::Tensor> all() const {
    std::vector<torch::Tensor> v;
    for (const auto* l : {&w.gate, &w.up, &w.down}) v.insert(v.end(), l->begin(), l->end());
    return v;
  }
};

Experts random_experts(int64_t E, int64_t d, int64_t I, torch::Generator& gen) {
  Experts ex;
  for (int64_t e = 0; e < E; ++e) {
    ex.w.gate.push_back((torch::randn({I, d}, gen) * 0.3).requires_grad_());
    ex.w.up.push_back((torch::randn({I, d}, gen) * 0.3).requires_grad_());
    ex.w.down.push_back((torch::randn({d, I}, gen) * 0.3).requires_grad_());
  }
  return ex;
}

// Σ_k w[n,k] down(silu(gate x_n) * up x_n), one token and one slot at a time.
torch::Tensor plain_reference(const torch::Tensor& x, const torch::Tensor& idx,
                              const torch::Tensor& w, const ExpertWeights& ex) {
  std::vector<torch::Tensor> rows;
  for (int64_t n = 0; n < x.size(0); ++n) {
    auto xn = x[n].unsqueeze(0);
    torch::Tensor acc = torch::zeros({1, x.size(1)});
    for (int64_t k = 0; k < idx.size(1); ++k) {
      const int64_t e = idx[n][k].item<int64_t>();
      auto h = torch::silu(torch::matmul(xn, ex.gate[e].t())) * torch::matmul(xn, ex.up[e].t());
      acc = acc + w[n][k] * torch::matmul(h, ex.down[e].t());
    }
    rows.push_back(acc);
  }
  return torch::cat(rows, 0);
}

TEST(GroupedExpertsTest, MatchesPlainOpsWithEveryGradient) {
  auto gen = at::detail::createCPUGenerator(21);
  const int64_t N = 24, d = 40, I = 24, E = 7, K = 3;
  auto x = torch::randn({N, d}, gen).requires_grad_();
  // Experts 2 and 5 get no token; expert 0 gets many.
  auto idx = torch::randint(0, 5, {N, K}, gen, torch::kLong);
  idx = torch::where(idx == 2, torch::full_like(idx, 6), idx);
  idx.select(1, 0).fill_(0);
  auto w = torch::rand({N, K}, gen).requires_grad_();
  auto ex = random_experts(E, d, I, gen);
  auto probe = torch::randn({N, d}, gen);  // loss = <y, probe>

  auto y = grouped_experts(x, idx, w, ex.w);
  (y * probe).sum().backward();
  std::vector<torch::Tensor> got{x.grad().clone(), w.grad().clone()};
  for (auto& p : ex.all()) {
    got.push_back(p.grad().defined() ? p.grad().clone() : torch::Tensor());
    p.mutable_grad() = torch::Tensor();
  }
  x.mutable_grad() = torch::Tensor();
  w.mutable_grad() = torch::Tensor();

  auto y_ref = plain_reference(x, idx, w, ex.w);
  (y_ref * probe).sum().backward();
  EXPECT_LT(rel_err(y, y_ref), 1e-5);
  EXPECT_LT(rel_err(got[0], x.grad()), 1e-5) << "dx";
  EXPECT_LT(rel_err(got[1], w.grad()), 1e-5) << "dw";
  const auto params = ex.all();
  for (size_t i = 0; i < params.size(); ++i) {
    const int64_t e = static_cast<int64_t>(i) % E;
    SCOPED_TRACE("parameter " + std::to_string(i) + " (expert " + std::to_string(e) + ")");
    if (e == 2 || e == 5) {
      // No token: no gradient at all, not a zero-filled one (as for the reference,
      // where the expert is outside the graph).
      EXPECT_FALSE(got[2 + i].defined());
      EXPECT_FALSE(params[i].grad().defined());
    } else {
      ASSERT_TRUE(got[2 + i].defined());
      EXPECT_LT(rel_err(got[2 + i], params[i].grad()), 1e-5);
    }
  }
}

TEST(GroupedExpertsTest, Bf16AutocastComputesInBf16AndReturnsFp32Gradients) {
  auto gen = at::detail::createCPUGenerator(22);
  // 45 tokens x 2 slots over experts 0, 1 and 3 (expert 2 gets none): each block is padded
  // with zero rows to a multiple of 32 for the bf16 GEMMs, which must change nothing.
  const int64_t N = 45, d = 48, I = 32, E = 4, K = 2;
  auto x = torch::randn({N, d}, gen).requires_grad_();
  auto idx = torch::randint(0, E - 1, {N, K}, gen, torch::kLong);
  idx = torch::where(idx == 2, torch::full_like(idx, 3), idx);
  auto w = torch::rand({N, K}, gen).requires_grad_();
  auto ex = random_experts(E, d, I, gen);
  auto probe = torch::randn({N, d}, gen);
  torch::Tensor y;
  {
    compat::CpuAutocastGuard ac(true);
    y = grouped_experts(x, idx, w, ex.w);
  }
  EXPECT_EQ(y.scalar_type(), torch::kFloat);  // x's dtype
  (y * probe).sum().backward();
  std::vector<torch::Tensor> got{x.grad().clone(), w.grad().clone()};
  for (auto& p : ex.all()) {
    got.push_back(p.grad().defined() ? p.grad().clone() : torch::Tensor());
    p.mutable_grad() = torch::Tensor();
  }
  x.mutable_grad() = torch::Tensor();
  w.mutable_grad() = torch::Tensor();
  auto y32 = plain_reference(x, idx, w, ex.w);
  (y32 * probe).sum().backward();
  // bf16 has 8 bits of mantissa: about 1% relative, not 1e-5.
  EXPECT_LT(rel_err(y, y32), 3e-2);
  EXPECT_GT(rel_err(y, y32), 1e-6);  // it really computed in bf16
  EXPECT_LT(rel_err(got[0], x.grad()), 3e-2) << "dx";
  EXPECT_LT(rel_err(got[1], w.grad()), 3e-2) << "dw";
  const auto params = ex.all();
  for (size_t i = 0; i < params.size(); ++i) {
    SCOPED_TRACE("parameter " + std::to_string(i));
    if (static_cast<int64_t>(i) % E == 2) {
      EXPECT_FALSE(got[2 + i].defined());  // no token, no gradient
      continue;
    }
    ASSERT_TRUE(got[2 + i].defined());
    EXPECT_EQ(got[2 + i].scalar_type(), torch::kFloat);
    EXPECT_LT(rel_err(got[2 + i], params[i].grad()), 3e-2);
  }
}

TEST(GroupedExpertsTest, Bf16WeightsWithoutAutocast) {
  auto gen = at::detail::createCPUGenerator(23);
  const int64_t N = 16, d = 32, I = 16, E = 3, K = 2;
  auto x = torch::randn({N, d}, gen);
  auto idx = torch::randint(0, E, {N, K}, gen, torch::kLong);
  auto w = torch::rand({N, K}, gen);
  auto ex = random_experts(E, d, I, gen);
  ExpertWeights bf;
  for (int64_t e = 0; e < E; ++e) {
    bf.gate.push_back(ex.w.gate[e].detach().to(torch::kBFloat16).requires_grad_());
    bf.up.push_back(ex.w.up[e].detach().to(torch::kBFloat16).requires_grad_());
    bf.down.push_back(ex.w.down[e].detach().to(torch::kBFloat16).requires_grad_());
  }
  auto xb = x.to(torch::kBFloat16).requires_grad_();
  auto y = grouped_experts(xb, idx, w, bf);
  EXPECT_EQ(y.scalar_type(), torch::kBFloat16);
  y.to(torch::kFloat).sum().backward();
  EXPECT_EQ(xb.grad().scalar_type(), torch::kBFloat16);
  EXPECT_EQ(bf.down[0].grad().scalar_type(), torch::kBFloat16);
  torch::NoGradGuard ng;
  EXPECT_LT(rel_err(y, plain_reference(x, idx, w, ex.w)), 3e-2);
}

// The experts are shared among the intra-op threads, each expert's GEMMs on one thread:
// the output and every gradient are the same bits at one thread and at two, in fp32 and
// under bf16 autocast, whichever thread takes which expert.
TEST(GroupedExpertsTest, ResultsDoNotDependOnTheThreadCount) {
  const int previous = at::get_num_threads();
  auto gen = at::detail::createCPUGenerator(27);
  const int64_t N = 200, d = 48, I = 32, E = 9, K = 2;
  auto x0 = torch::randn({N, d}, gen);
  auto idx = torch::randint(0, E, {N, K}, gen, torch::kLong);
  auto w0 = torch::rand({N, K}, gen);
  auto probe = torch::randn({N, d}, gen);
  auto ex = random_experts(E, d, I, gen);
  for (bool bf16 : {false, true}) {
    SCOPED_TRACE(bf16 ? "bf16 autocast" : "fp32");
    std::vector<std::vector<torch::Tensor>> runs;
    for (int threads : {1, 2, 1, 2}) {
      at::set_num_threads(threads);
      auto x = x0.clone().requires_grad_(), w = w0.clone().requires_grad_();
      for (auto& p : ex.all()) p.mutable_grad() = torch::Tensor();
      torch::Tensor y;
      {
        compat::CpuAutocastGuard ac(bf16);
        y = grouped_experts(x, idx, w, ex.w);
      }
      (y.to(torch::kFloat) * probe).sum().backward();
      std::vector<torch::Tensor> r{y.detach(), x.grad(), w.grad()};
      for (auto& p : ex.all()) r.push_back(p.grad());
      runs.push_back(r);
    }
    for (size_t run = 1; run < runs.size(); ++run)
      for (size_t i = 0; i < runs[0].size(); ++i) {
        SCOPED_TRACE("run " + std::to_string(run) + ", tensor " + std::to_string(i));
        ASSERT_EQ(runs[run][i].defined(), runs[0][i].defined());
        if (runs[0][i].defined()) {
          EXPECT_TRUE(torch::equal(runs[run][i], runs[0][i]));
        }
      }
  }
  at::set_num_threads(previous);
}

TEST(GroupedExpertsTest, BadShapesNameWhatIsWrong) {
  auto gen = at::detail::createCPUGenerator(24);
  auto ex = random_experts(3, 8, 4, gen);
  auto x = torch::randn({5, 8});
  auto idx = torch::zeros({5, 2}, torch::kLong);
  auto w = torch::ones({5, 2});
  try {
    grouped_experts(x, idx.narrow(0, 0, 4), w, ex.w);
    FAIL() << "no error";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("indices and weights must be [N, K]"), std::string::npos)
        << e.what();
  }
  try {
    grouped_experts(x, torch::full({5, 2}, 3, torch::kLong), w, ex.w);
    FAIL() << "no error";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("expert id"), std::string::npos) << e.what();
  }
  ex.w.down[1] = torch::randn({8, 5});
  try {
    grouped_experts(x, idx, w, ex.w);
    FAIL() << "no error";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("expert 1 must have"), std::string::npos) << e.what();
  }
}

TEST(SwigluTest, MatchesSiluTimesUpWithGradientsIncludingLargeInputs) {
  auto gen = at::detail::createCPUGenerator(25);
  for (auto dtype : {torch::kFloat, torch::kBFloat16}) {
    SCOPED_TRACE(dtype == torch::kFloat ? "fp32" : "bf16");
    // An odd count (tails of the vector loops) and inputs out to +-100 (saturated sigmoid).
    auto g0 = torch::cat({torch::randn({1001}, gen) * 3, torch::tensor({-100.f, 100.f, 0.f})});
    auto u0 = torch::randn({1004}, gen);
    auto g = g0.to(dtype).requires_grad_(), u = u0.to(dtype).requires_grad_();
    auto probe = torch::randn({1004}, gen);
    auto a = swiglu(g, u);
    (a.to(torch::kFloat) * probe).sum().backward();
    // Reference in fp64 from the same (rounded) inputs.
    auto gd = g.detach().to(torch::kDouble).requires_grad_();
    auto ud = u.detach().to(torch::kDouble).requires_grad_();
    auto ad = torch::silu(gd) * ud;
    (ad * probe.to(torch::kDouble)).sum().backward();
    const double tol = dtype == torch::kFloat ? 1e-6 : 1e-2;
    EXPECT_LT(rel_err(a, ad), tol);
    EXPECT_LT(rel_err(g.grad(), gd.grad()), tol);
    EXPECT_LT(rel_err(u.grad(), ud.grad()), tol);
    EXPECT_FALSE(torch::isnan(g.grad()).any().item<bool>());
  }
}

// ---------------------------------------------------------------------------------
// The model's MoE layers: grouped against the per-expert path

ModelArgs moe_args() {
  ModelArgs a = *preset("nano");
  a.n_routed_experts = 8;
  a.n_expert_groups = 4;
  a.n_limited_groups = 2;
  a.n_activated_experts = 3;
  a.n_shared_experts = 1;
  a.n_mtp_layers = 1;
  a.aux_loss_alpha = 0.01;
  return a;
}

struct StepResult {
  double loss = 0;
  torch::Tensor load;
  std::map<std::string, torch::Tensor> grads;
};

// One training loss (next token, balance loss, MTP) and its backward.
StepResult train_step(Transformer& m, const torch::Tensor& ids, const ForwardOptions& fo) {
  const int64_t T = ids.size(1);
  const auto& a = m->args();
  m->zero_grad(/*set_to_none=*/true);
  auto out = m->forward(ids, fo);
  auto logits = out.logits.narrow(1, 0, T - 1).reshape({-1, a.vocab_size});
  auto loss = torch::nn::functional::cross_entropy(logits, ids.narrow(1, 1, T - 1).reshape({-1})) +
              out.aux_loss + m->mtp_loss(ids, out.last_hidden);
  loss.backward();
  StepResult r;
  r.loss = loss.item<double>();
  r.load = out.expert_load;
  for (const auto& p : m->named_parameters())
    r.grads[p.key()] = p.value().grad().defined() ? p.value().grad().clone() : torch::Tensor();
  return r;
}

TEST(GroupedExpertsTest, ModelGradientsMatchThePerExpertPath) {
  const ModelArgs a = moe_args();
  Transformer m(a);
  m->init_weights(31);
  m->train();
  const int64_t B = 3, T = 10, K = a.n_activated_experts;
  auto gen = at::detail::createCPUGenerator(32);
  auto ids = torch::randint(a.vocab_size, {B, T}, gen, torch::kLong);
  // Routing replay: most tokens replay experts 0, 1 and 2 (so the other experts get few
  // or no tokens); the tokens of row 1 from t = 5 on are routed by the gate.
  auto replay = torch::tensor({0, 1, 2}, torch::kLong).view({1, 1, 1, K}).repeat({B, T, 1, 1});
  replay.select(0, 1).narrow(0, 5, T - 5).fill_(-1);
  // Padding at the end of row 2 does not count in the loads.
  auto token_mask = torch::ones({B, T});
  token_mask.select(0, 2).narrow(0, 7, 3).zero_();

  for (bool use_replay : {false, true}) {
    SCOPED_TRACE(use_replay ? "with replay" : "gate routing");
    ForwardOptions fo;
    fo.token_mask = token_mask;
    if (use_replay) fo.replay_experts = replay;
    ForwardOptions ref = fo;
    ref.execution.kernels.grouped_experts = false;
    auto got = train_step(m, ids, fo);
    auto want = train_step(m, ids, ref);
    EXPECT_NEAR(got.loss, want.loss, 1e-5 * std::abs(want.loss));
    EXPECT_TRUE(torch::equal(got.load, want.load));
    for (const auto& [name, g] : want.grads) {
      SCOPED_TRACE(name);
      const auto& h = got.grads.at(name);
      ASSERT_EQ(h.defined(), g.defined());
      if (g.defined()) {
        EXPECT_LT(rel_err(h, g), 1e-5);
      }
    }
  }
}

TEST(GroupedExpertsTest, ExpertsWithoutTokensGetNoGradient) {
  const ModelArgs a = moe_args();
  Transformer m(a);
  m->init_weights(33);
  m->train();
  const int64_t B = 2, T = 6, K = a.n_activated_experts;
  auto ids = torch::randint(a.vocab_size, {B, T}, torch::kLong);
  ForwardOptions fo;
  fo.replay_experts =
      torch::tensor({4, 0, 6}, torch::kLong).view({1, 1, 1, K}).repeat({B, T, 1, 1});
  auto out = m->forward(ids, fo);
  out.logits.sum().backward();
  for (const auto& p : m->named_parameters()) {
    const auto& name = p.key();
    if (name.find("layers.1.mlp.experts.") != 0) continue;
    const int e = std::stoi(name.substr(std::string("layers.1.mlp.experts.").size()));
    SCOPED_TRACE(name);
    const bool used = e == 0 || e == 4 || e == 6;
    EXPECT_EQ(p.value().grad().defined(), used);
    if (used) {
      EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0);
    }
  }
}

}  // namespace
}  // namespace r1kit::policy
