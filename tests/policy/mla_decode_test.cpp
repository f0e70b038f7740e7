// The fused absorbed-MLA decode kernel against the same attention written out in LibTorch
// ops, row by row: head counts and latent sizes that are and are not multiples of the
// kernel's blocks (4 heads, 16 lanes), rows of different lengths down to 1, logits far
// apart (the softmax's exp), caches read through views with a row stride, 1-3 threads; and
// a whole model's per-row decode with the kernel on and off.
#include "policy/mla_decode.h"

#include <gtest/gtest.h>

#include "policy/execution.h"
#include "policy/expert_kernels.h"
#include "policy/model.h"
#include "policy/model_args.h"

namespace r1kit::policy {
namespace {

class MLADecodeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!small_rows_avx512_available()) GTEST_SKIP() << "this CPU has no AVX-512";
    torch::manual_seed(5);
  }
};

// A default context with `threads` decode threads.
ExecutionContext on_threads(int threads) {
  ExecutionContext exec;
  exec.decode_threads = threads;
  return exec;
}

// The attention of mla_decode.h, one row at a time, in double precision.
torch::Tensor reference(const torch::Tensor& q_lat, const torch::Tensor& q_pe,
                        const torch::Tensor& c, const torch::Tensor& pe,
                        const std::vector<int64_t>& len, double scale) {
  std::vector<torch::Tensor> rows;
  for (int64_t b = 0; b < q_lat.size(0); ++b) {
    auto cb = c[b].narrow(0, 0, len[b]).to(torch::kDouble);
    auto pb = pe[b].narrow(0, 0, len[b]).to(torch::kDouble);
    auto s =
        (q_lat[b].to(torch::kDouble).matmul(cb.t()) + q_pe[b].to(torch::kDouble).matmul(pb.t())) *
        scale;  // [H, L]
    rows.push_back(torch::softmax(s, -1).matmul(cb));
  }
  return torch::stack(rows).to(torch::kFloat);
}

TEST_F(MLADecodeTest, MatchesLibTorchOverShapesLengthsAndThreads) {
  torch::NoGradGuard ng;
  struct Shape {
    int64_t B, H, dc, dr, S;
  };
  for (const Shape& sh : std::vector<Shape>{{5, 8, 128, 16, 37},  // `small`'s heads and latent
                                            {3, 3, 40, 8, 20},    // partial blocks everywhere
                                            {1, 1, 16, 2, 1},     // one position
                                            {7, 5, 64, 24, 70}}) {
    // The caches are views into larger tensors, as the KV cache's rows are.
    auto c_full = torch::randn({sh.B + 2, sh.S + 9, sh.dc});
    auto pe_full = torch::randn({sh.B + 2, sh.S + 9, sh.dr});
    auto c = c_full.narrow(0, 0, sh.B).narrow(1, 0, sh.S);
    auto pe = pe_full.narrow(0, 0, sh.B).narrow(1, 0, sh.S);
    auto q_lat = torch::randn({sh.B, sh.H, sh.dc});
    auto q_pe = torch::randn({sh.B, sh.H, sh.dr});
    std::vector<int64_t> len(sh.B);
    for (int64_t b = 0; b < sh.B; ++b) len[b] = 1 + (b * 7 + 3) % sh.S;
    len[0] = sh.S;
    const double scale = 0.3;
    auto want = reference(q_lat, q_pe, c, pe, len, scale);
    for (int threads : {1, 2, 3}) {
      auto got =
          mla_decode_attention(q_lat, q_pe, c, pe, torch::tensor(len), scale, on_threads(threads));
      ASSERT_EQ(got.sizes(), want.sizes());
      EXPECT_LT((got - want).abs().max().item<double>(), 1e-5)
          << "B=" << sh.B << " H=" << sh.H << " dc=" << sh.dc << " dr=" << sh.dr << " S=" << sh.S
          << " threads=" << threads;
    }
  }
}

TEST_F(MLADecodeTest, SoftmaxHoldsForLogitsFarApart) {
  torch::NoGradGuard ng;
  // Scores spread over about +-150: most weights underflow, one or two dominate.
  auto c = torch::randn({2, 50, 32}), pe = torch::randn({2, 50, 16});
  auto q_lat = torch::randn({2, 4, 32}) * 4, q_pe = torch::randn({2, 4, 16}) * 4;
  std::vector<int64_t> len{50, 33};
  auto want = reference(q_lat, q_pe, c, pe, len, 1.0);
  auto got = mla_decode_attention(q_lat, q_pe, c, pe, torch::tensor(len), 1.0, on_threads(2));
  EXPECT_LT((got - want).abs().max().item<double>(), 1e-5);
  EXPECT_FALSE(torch::isnan(got).any().item<bool>());
}

TEST_F(MLADecodeTest, RejectsBadLengthsAndAutograd) {
  auto c = torch::randn({2, 8, 16}), pe = torch::randn({2, 8, 4});
  auto q_lat = torch::randn({2, 2, 16}), q_pe = torch::randn({2, 2, 4});
  {
    torch::NoGradGuard ng;
    for (auto bad : {std::vector<int64_t>{0, 3}, std::vector<int64_t>{3, 9}}) {
      try {
        mla_decode_attention(q_lat, q_pe, c, pe, torch::tensor(bad), 1.0, on_threads(1));
        ADD_FAILURE() << "no error for lengths " << bad[0] << ", " << bad[1];
      } catch (const c10::Error& e) {
        EXPECT_NE(std::string(e.what()).find("is outside [1, 8]"), std::string::npos) << e.what();
      }
    }
    // An empty batch gives an empty result.
    auto none = mla_decode_attention(q_lat.narrow(0, 0, 0), q_pe.narrow(0, 0, 0), c, pe,
                                     torch::empty({0}, torch::kLong), 1.0, on_threads(2));
    EXPECT_EQ(none.sizes(), (std::vector<int64_t>{0, 2, 16}));
    const KernelChoices on, off{.mla_decode = false};
    EXPECT_FALSE(mla_decode_kernel_applies(q_lat, q_pe, c, pe, off));
    EXPECT_TRUE(mla_decode_kernel_applies(q_lat, q_pe, c, pe, on));
    // A context that does not choose the kernel cannot call it.
    ExecutionContext without;
    without.kernels = off;
    EXPECT_THROW(mla_decode_attention(q_lat, q_pe, c, pe, torch::tensor({3, 3}), 1.0, without),
                 c10::Error);
    // A cache whose positions are not contiguous is not taken.
    EXPECT_FALSE(mla_decode_kernel_applies(q_lat, q_pe, c.transpose(1, 2), pe, on));
  }
  EXPECT_FALSE(mla_decode_kernel_applies(q_lat, q_pe, c, pe, KernelChoices{}));  // autograd on
}

// A model's decode step with each row at its own position (as the rollout engine runs
// it): the kernel, on 1-3 threads, against the LibTorch path.
TEST_F(MLADecodeTest, PerRowDecodeEqualsTheLibTorchPath) {
  ModelArgs a = *preset("nano");
  Transformer m(a);
  m->init_weights(9);
  m->eval();
  torch::NoGradGuard ng;
  const int64_t B = 4, P = 6;
  auto ids = torch::randint(3, a.vocab_size, {B, P}, torch::kLong);
  KVCache cache = KVCache::allocate(a, B, 16, torch::kFloat);
  ForwardOptions pre;
  pre.cache = &cache;
  m->forward(ids, pre);
  // Rows at positions 2..5: each sees its own prefix of the prefilled cache.
  auto pos = torch::tensor({5, 2, 4, 3}, torch::kLong);
  auto next = torch::randint(3, a.vocab_size, {B, 1}, torch::kLong);
  auto step = [&](const ExecutionContext& exec) {
    KVCache c = cache;  // a deep copy: the step writes its token into the cache
    for (auto& t : c.a) t = t.clone();
    for (auto& t : c.b) t = t.clone();
    ForwardOptions o;
    o.cache = &c;
    o.start_pos = 5;
    o.row_positions = pos;
    o.execution = exec;
    return m->forward(next, o).logits;
  };
  ExecutionContext libtorch;
  libtorch.kernels.mla_decode = false;
  auto want = step(libtorch);
  for (int threads : {1, 2, 3}) {
    auto got = step(on_threads(threads));
    EXPECT_LT((got - want).abs().max().item<double>(), 1e-5) << "threads=" << threads;
  }
  EXPECT_GT(want.abs().max().item<double>(), 1e-3);  // not trivially zero
}

}  // namespace
}  // namespace r1kit::policy
