// The exact forward: see exact_forward.h. Compiled with -ffp-contract=off and without
// fast-math (policy/CMakeLists.txt): every expression below is evaluated as written, so
// the same inputs give the same bits at every call site.
#include "policy/exact_forward.h"

#include <immintrin.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <numeric>

#include "core/parallel.h"
#include "core/torch_compat.h"
#include "policy/logprobs.h"
#include "policy/model.h"

namespace r1kit::policy {
namespace {

// ---------------------------------------------------------------------------------
// Fixed-order primitives

constexpr int kLanes = 16;

// sum_k a[k] * b[k] over 16 lane accumulators (lane k % 16), then the lanes summed
// pairwise (8, 4, 2, 1): the same order for every call with the same n.
inline float exact_dot(const float* a, const float* b, int64_t n) {
  float acc[kLanes] = {};
  int64_t k = 0;
  for (; k + kLanes <= n; k += kLanes)
    for (int l = 0; l < kLanes; ++l) acc[l] += a[k + l] * b[k + l];
  for (int l = 0; k + l < n; ++l) acc[l] += a[k + l] * b[k + l];
  for (int w = kLanes / 2; w >= 1; w /= 2)
    for (int l = 0; l < w; ++l) acc[l] += acc[l + w];
  return acc[0];
}

// exact_dot of x with four weight rows at once (x loaded once for the four): each result is
// bitwise exact_dot(x, w_i, n), the same lane of the same k in the same order.
inline void exact_dot4(const float* x, const float* w0, const float* w1, const float* w2,
                       const float* w3, int64_t n, float* out) {
  float a0[kLanes] = {}, a1[kLanes] = {}, a2[kLanes] = {}, a3[kLanes] = {};
  int64_t k = 0;
  for (; k + kLanes <= n; k += kLanes)
    for (int l = 0; l < kLanes; ++l) {
      const float xv = x[k + l];
      a0[l] += xv * w0[k + l];
      a1[l] += xv * w1[k + l];
      a2[l] += xv * w2[k + l];
      a3[l] += xv * w3[k + l];
    }
  for (int l = 0; k + l < n; ++l) {
    const float xv = x[k + l];
    a0[l] += xv * w0[k + l];
    a1[l] += xv * w1[k + l];
    a2[l] += xv * w2[k + l];
    a3[l] += xv * w3[k + l];
  }
  for (int w = kLanes / 2; w >= 1; w /= 2)
    for (int l = 0; l < w; ++l) {
      a0[l] += a0[l + w];
      a1[l] += a1[l + w];
      a2[l] += a2[l + w];
      a3[l] += a3[l + w];
    }
  out[0] = a0[0];
  out[1] = a1[0];
  out[2] = a2[0];
  out[3] = a3[0];
}

// exact_dot4 in AVX2 registers: lanes 0-7 and 8-15 of each accumulator in two ymm's, a
// multiply then an add (no FMA) per lane and k, exactly the portable loop's operations;
// the tail and the lane sum as there. Bitwise exact_dot4.
__attribute__((target("avx2"))) void exact_dot4_avx2(const float* x, const float* w0,
                                                     const float* w1, const float* w2,
                                                     const float* w3, int64_t n, float* out) {
  __m256 a0l = _mm256_setzero_ps(), a0h = a0l, a1l = a0l, a1h = a0l, a2l = a0l, a2h = a0l,
         a3l = a0l, a3h = a0l;
  int64_t k = 0;
  for (; k + kLanes <= n; k += kLanes) {
    const __m256 xl = _mm256_loadu_ps(x + k), xh = _mm256_loadu_ps(x + k + 8);
    a0l = _mm256_add_ps(a0l, _mm256_mul_ps(xl, _mm256_loadu_ps(w0 + k)));
    a0h = _mm256_add_ps(a0h, _mm256_mul_ps(xh, _mm256_loadu_ps(w0 + k + 8)));
    a1l = _mm256_add_ps(a1l, _mm256_mul_ps(xl, _mm256_loadu_ps(w1 + k)));
    a1h = _mm256_add_ps(a1h, _mm256_mul_ps(xh, _mm256_loadu_ps(w1 + k + 8)));
    a2l = _mm256_add_ps(a2l, _mm256_mul_ps(xl, _mm256_loadu_ps(w2 + k)));
    a2h = _mm256_add_ps(a2h, _mm256_mul_ps(xh, _mm256_loadu_ps(w2 + k + 8)));
    a3l = _mm256_add_ps(a3l, _mm256_mul_ps(xl, _mm256_loadu_ps(w3 + k)));
    a3h = _mm256_add_ps(a3h, _mm256_mul_ps(xh, _mm256_loadu_ps(w3 + k + 8)));
  }
  float a[4][kLanes];
  _mm256_storeu_ps(a[0], a0l);
  _mm256_storeu_ps(a[0] + 8, a0h);
  _mm256_storeu_ps(a[1], a1l);
  _mm256_storeu_ps(a[1] + 8, a1h);
  _mm256_storeu_ps(a[2], a2l);
  _mm256_storeu_ps(a[2] + 8, a2h);
  _mm256_storeu_ps(a[3], a3l);
  _mm256_storeu_ps(a[3] + 8, a3h);
  const float* w[4] = {w0, w1, w2, w3};
  for (int i = 0; i < 4; ++i) {
    float* acc = a[i];
    for (int l = 0; k + l < n; ++l) acc[l] += x[k + l] * w[i][k + l];
    for (int v = kLanes / 2; v >= 1; v /= 2)
      for (int l = 0; l < v; ++l) acc[l] += acc[l + v];
    out[i] = acc[0];
  }
}

bool have_avx2() {
  static const bool ok = __builtin_cpu_supports("avx2");
  return ok;
}

// Round to the nearest bf16 value, ties to even (c10::BFloat16's rounding), kept as fp32.
inline float round_bf16(float f) {
  if (std::isnan(f)) return f;
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u += 0x7fffu + ((u >> 16) & 1u);
  u &= 0xffff0000u;
  std::memcpy(&f, &u, 4);
  return f;
}

// Calls fn(begin, end) over [0, n) split into at most exec.decode_threads contiguous
// parts of at least `grain` items each; the parts are independent outputs.
// `cost`: multiply-adds (or the like) per item; a part gets at least kMinPartWork of them,
// so that a small call stays on the calling thread instead of waking the pool for less
// work than the hand-off costs.
void for_parts(const ExecutionContext& exec, int64_t n, int64_t grain,
               const std::function<void(int64_t, int64_t)>& fn, int64_t cost = 1) {
  constexpr int64_t kMinPartWork = int64_t{1} << 15;
  if (n <= 0) return;
  const int64_t max_parts = std::max<int64_t>(
      1, std::min(n / std::max<int64_t>(grain, 1), n * std::max<int64_t>(cost, 1) / kMinPartWork));
  const int parts = static_cast<int>(std::min<int64_t>(exec.decode_threads, max_parts));
  if (parts <= 1) return fn(0, n);
  exec.parallel_pool().run(parts, [&](int p) { fn(n * p / parts, n * (p + 1) / parts); });
}

// A linear layer y = x W^T (+ b), W [out, in] row-major fp32.
struct Lin {
  const float* w = nullptr;
  const float* b = nullptr;
  int64_t out = 0, in = 0;
  bool round_in = false;  // kBF16: inputs rounded to bf16
  explicit operator bool() const { return w != nullptr; }
};

// Rows [r0, r1) x outputs [o0, o1) of y = x W^T + b; each y[r][o] is exact_dot of row r
// and weight row o, whatever the block (the AVX2 form where the CPU has it: the same
// multiplications and additions, no FMA, in wider registers).
void linear_block(const float* x, int64_t r0, int64_t r1, const Lin& L, int64_t o0, int64_t o1,
                  float* y) {
  const bool avx2 = have_avx2();
  // Blocks of 8 input rows x 8 weight rows, both kept in L1 while the block runs.
  constexpr int64_t kTile = 8, kRows = 8;
  for (int64_t rt = r0; rt < r1; rt += kRows)
    for (int64_t ot = o0; ot < o1; ot += kTile) {
      const int64_t oe = std::min(o1, ot + kTile);
      for (int64_t r = rt; r < std::min(r1, rt + kRows); ++r) {
        const float* xr = x + r * L.in;
        float* yr = y + r * L.out;
        int64_t o = ot;
        for (; o + 4 <= oe; o += 4) {
          const float* w = L.w + o * L.in;
          if (avx2)
            exact_dot4_avx2(xr, w, w + L.in, w + 2 * L.in, w + 3 * L.in, L.in, yr + o);
          else
            exact_dot4(xr, w, w + L.in, w + 2 * L.in, w + 3 * L.in, L.in, yr + o);
        }
        for (; o < oe; ++o) yr[o] = exact_dot(xr, L.w + o * L.in, L.in);
        if (L.b)
          for (int64_t q = ot; q < oe; ++q) yr[q] = yr[q] + L.b[q];
      }
    }
}

// y [n, out] = x [n, in] W^T (+ b), split over output columns.
void linear(const Lin& L, const float* x, int64_t n, float* y, const ExecutionContext& exec) {
  std::vector<float> rounded;
  if (L.round_in) {
    rounded.resize(static_cast<size_t>(n * L.in));
    for (int64_t i = 0; i < n * L.in; ++i) rounded[i] = round_bf16(x[i]);
    x = rounded.data();
  }
  for_parts(
      exec, L.out, 16, [&](int64_t o0, int64_t o1) { linear_block(x, 0, n, L, o0, o1, y); },
      n * L.in);
}

// RMSNorm of one row in place: x * (1 / sqrt(mean(x^2) + eps)) * w.
void rms_norm_row(float* x, int64_t n, const float* w, float eps) {
  const float ms = exact_dot(x, x, n) / static_cast<float>(n);
  const float r = 1.0f / std::sqrt(ms + eps);
  for (int64_t i = 0; i < n; ++i) x[i] = (x[i] * r) * w[i];
}

// RoPE of one head's rot_dim values at position pos (policy::Rotary's arithmetic, fp32).
struct Rope {
  std::vector<float> inv_freq;  // [rot_dim / 2]
  float cos_scale = 1.0f;
  bool interleave = true;

  void apply(float* x, const float* cs, const float* sn) const {
    const int64_t half = static_cast<int64_t>(inv_freq.size());
    if (interleave) {
      for (int64_t i = 0; i < half; ++i) {
        const float x0 = x[2 * i], x1 = x[2 * i + 1];
        x[2 * i] = x0 * cs[i] - x1 * sn[i];
        x[2 * i + 1] = x0 * sn[i] + x1 * cs[i];
      }
    } else {
      for (int64_t i = 0; i < half; ++i) {
        const float x1 = x[i], x2 = x[i + half];
        x[i] = x1 * cs[i] - x2 * sn[i];
        x[i + half] = x2 * cs[i] + x1 * sn[i];
      }
    }
  }
  // cos/sin of the angles at `pos`, scaled.
  void angles(int64_t pos, float* cs, float* sn) const {
    for (size_t i = 0; i < inv_freq.size(); ++i) {
      const float a = static_cast<float>(pos) * inv_freq[i];
      cs[i] = std::cos(a) * cos_scale;
      sn[i] = std::sin(a) * cos_scale;
    }
  }
};

double yarn_m(double factor, double m) {
  return factor <= 1.0 ? 1.0 : 0.1 * m * std::log(factor) + 1.0;
}

Rope make_rope(const ModelArgs& a, int64_t rot_dim) {
  Rope r;
  const Rotary rotary(a, rot_dim);  // the frequencies exactly as the model computes them
  auto f = rotary.inv_freq().contiguous();
  r.inv_freq.assign(f.data_ptr<float>(), f.data_ptr<float>() + f.numel());
  r.interleave = a.rope_interleave;
  if (a.yarn())
    r.cos_scale = static_cast<float>(yarn_m(a.rope_factor, a.mscale) /
                                     yarn_m(a.rope_factor, a.mscale_all_dim));
  return r;
}

// Softmax-weighted sum over keys [0, n) for one query head: scores s[j] (already scaled),
// values v_j = vals + j * vstride (+ voff), out [dv]. Key order throughout.
void attend(float* s, int64_t n, const float* vals, int64_t vstride, int64_t dv, float* out) {
  float m = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j < n; ++j) m = std::max(m, s[j]);
  float sum = 0.0f;
  for (int64_t j = 0; j < n; ++j) {
    s[j] = std::exp(s[j] - m);
    sum += s[j];
  }
  std::fill(out, out + dv, 0.0f);
  for (int64_t j = 0; j < n; ++j) {
    const float p = s[j] / sum;
    const float* v = vals + j * vstride;
    for (int64_t i = 0; i < dv; ++i) out[i] += p * v[i];
  }
}

inline float silu(float g) {
  return g / (1.0f + std::exp(-g));
}

struct Mlp {
  Lin gate, up, down;
};

struct Layer {
  const float* in_norm = nullptr;
  const float* post_norm = nullptr;
  // MLA
  Lin q, q_a, q_b, kv_a, kv_b, o;
  const float* q_a_norm = nullptr;
  const float* kv_a_norm = nullptr;
  // GQA (q, o above; k, v here)
  Lin k, v;
  const float* q_norm = nullptr;
  const float* k_norm = nullptr;
  // FFN
  bool moe = false;
  Mlp dense;
  Lin router;                        // [E, d], no bias
  const float* corr_bias = nullptr;  // [E] or null
  std::vector<Mlp> experts;
  Mlp shared;
  bool has_shared = false;
};

}  // namespace

const char* exact_precision_name(ExactPrecision p) {
  return p == ExactPrecision::kBF16 ? "bf16" : "f32";
}

std::string exact_unsupported(const ModelArgs& a) {
  if (a.attention == AttentionKind::kMLA && a.qk_rope_head_dim % 2 != 0)
    return "MLA with an odd qk_rope_head_dim";
  if (a.attention == AttentionKind::kGQA && a.head_dim % 2 != 0) return "GQA with an odd head_dim";
  if (a.n_routed_experts > 0 && a.n_expert_groups > 1 && a.n_routed_experts % a.n_expert_groups)
    return "expert groups that do not divide the experts";
  return "";
}

// ---------------------------------------------------------------------------------
// ExactCache

namespace {
int64_t exact_key_dim(const ModelArgs& a) {
  return a.attention == AttentionKind::kMLA ? a.n_heads * a.qk_nope_head_dim + a.qk_rope_head_dim
                                            : a.n_kv_heads * a.head_dim;
}
int64_t exact_value_dim(const ModelArgs& a) {
  return a.attention == AttentionKind::kMLA ? a.n_heads * a.v_head_dim : a.n_kv_heads * a.head_dim;
}
}  // namespace

ExactCache::ExactCache(const ModelArgs& a, int64_t slots, int64_t max_len)
    : layers_(a.n_layers),
      slots_(slots),
      max_len_(max_len),
      kdim_(exact_key_dim(a)),
      vdim_(exact_value_dim(a)) {
  TORCH_CHECK(slots >= 1 && max_len >= 1, "ExactCache: slots and max_len must be >= 1");
  k_.assign(static_cast<size_t>(layers_ * slots_ * max_len_ * kdim_), 0.0f);
  v_.assign(static_cast<size_t>(layers_ * slots_ * max_len_ * vdim_), 0.0f);
}

float* ExactCache::key(int64_t layer, int64_t slot, int64_t pos) {
  return k_.data() + ((layer * slots_ + slot) * max_len_ + pos) * kdim_;
}
float* ExactCache::value(int64_t layer, int64_t slot, int64_t pos) {
  return v_.data() + ((layer * slots_ + slot) * max_len_ + pos) * vdim_;
}
const float* ExactCache::key_c(int64_t layer, int64_t slot, int64_t pos) const {
  return k_.data() + ((layer * slots_ + slot) * max_len_ + pos) * kdim_;
}
const float* ExactCache::value_c(int64_t layer, int64_t slot, int64_t pos) const {
  return v_.data() + ((layer * slots_ + slot) * max_len_ + pos) * vdim_;
}

void ExactCache::copy_slot(const ExactCache& src, int64_t from, int64_t to, int64_t len) {
  TORCH_CHECK(src.layers_ == layers_ && src.kdim_ == kdim_ && src.vdim_ == vdim_,
              "ExactCache::copy_slot: caches of different models");
  TORCH_CHECK(from >= 0 && from < src.slots_ && to >= 0 && to < slots_ && len >= 0 &&
                  len <= src.max_len_ && len <= max_len_,
              "ExactCache::copy_slot: slot or length out of range");
  if (&src == this && from == to) return;
  for (int64_t l = 0; l < layers_; ++l) {
    std::memmove(key(l, to, 0), src.key_c(l, from, 0), sizeof(float) * len * kdim_);
    std::memmove(value(l, to, 0), src.value_c(l, from, 0), sizeof(float) * len * vdim_);
  }
}

// ---------------------------------------------------------------------------------
// ExactModel

struct ExactModel::Impl {
  ModelArgs args;
  ExactPrecision precision = ExactPrecision::kF32;
  std::vector<torch::Tensor> keep;  // owners of every pointer below
  const float* embed = nullptr;     // [V, d]
  const float* out_w = nullptr;     // [V, d]
  const float* final_norm = nullptr;
  std::vector<Layer> layers;
  Rope rope;
  float scale = 1.0f;
  float eps = 1e-6f;
  int64_t n_moe = 0;

  // fp32 contiguous (no copy when it already is), or its bf16-rounded copy.
  const float* hold(const torch::Tensor& t, bool round) {
    auto f = t.detach().to(torch::kCPU).to(torch::kFloat).contiguous();
    if (round) f = f.to(torch::kBFloat16).to(torch::kFloat).contiguous();
    keep.push_back(f);
    return f.data_ptr<float>();
  }
  Lin lin(const torch::nn::Linear& l, bool bf16) {
    Lin L;
    L.w = hold(l->weight, bf16);
    if (l->bias.defined()) L.b = hold(l->bias, false);
    L.out = l->weight.size(0);
    L.in = l->weight.size(1);
    L.round_in = bf16;
    return L;
  }
  Mlp mlp(MLPImpl& m, bool bf16) {
    return {lin(m.gate_proj, bf16), lin(m.up_proj, bf16), lin(m.down_proj, bf16)};
  }

  void attention_mla(const Layer& L, ExactCache& cache, int64_t li,
                     const std::vector<ExactRow>& rows, const float* xn, float* out,
                     const ExecutionContext& exec) const;
  void attention_gqa(const Layer& L, ExactCache& cache, int64_t li,
                     const std::vector<ExactRow>& rows, const float* xn, float* out,
                     const ExecutionContext& exec) const;
  void moe_ffn(const Layer& L, const float* xn, int64_t n, float* out, int16_t* experts,
               int64_t moe_idx, const ExecutionContext& exec) const;
  void mlp_rows(const Mlp& m, const float* x, int64_t n, float* y,
                const ExecutionContext& exec) const;
};

ExactModel::ExactModel(TransformerImpl& m, ExactPrecision precision)
    : impl_(std::make_unique<Impl>()) {
  Impl& I = *impl_;
  const ModelArgs& a = m.args();
  const std::string why = exact_unsupported(a);
  TORCH_CHECK(why.empty(), "exact forward: unsupported model: ", why);
  I.args = a;
  I.precision = precision;
  const bool bf = precision == ExactPrecision::kBF16;
  I.embed = I.hold(m.embed_tokens->weight, false);
  I.out_w = I.hold(m.output_weight(), false);
  I.final_norm = I.hold(m.norm->weight, false);
  I.eps = static_cast<float>(a.norm_eps);
  I.scale = static_cast<float>(a.softmax_scale());
  I.rope = make_rope(a, a.attention == AttentionKind::kMLA ? a.qk_rope_head_dim : a.head_dim);
  for (int64_t l = 0; l < a.n_layers; ++l) {
    auto* dl = m.layers[l]->as<DecoderLayerImpl>();
    Layer L;
    L.in_norm = I.hold(dl->input_layernorm->weight, false);
    L.post_norm = I.hold(dl->post_attention_layernorm->weight, false);
    if (dl->mla) {
      auto& A = *dl->mla;
      if (A.q_proj) {
        L.q = I.lin(A.q_proj, bf);
      } else {
        L.q_a = I.lin(A.q_a_proj, bf);
        L.q_a_norm = I.hold(A.q_a_layernorm->weight, false);
        L.q_b = I.lin(A.q_b_proj, bf);
      }
      L.kv_a = I.lin(A.kv_a_proj_with_mqa, bf);
      L.kv_a_norm = I.hold(A.kv_a_layernorm->weight, false);
      L.kv_b = I.lin(A.kv_b_proj, bf);
      L.o = I.lin(A.o_proj, bf);
    } else {
      auto& A = *dl->gqa;
      L.q = I.lin(A.q_proj, bf);
      L.k = I.lin(A.k_proj, bf);
      L.v = I.lin(A.v_proj, bf);
      L.o = I.lin(A.o_proj, bf);
      if (A.q_norm) {
        L.q_norm = I.hold(A.q_norm->weight, false);
        L.k_norm = I.hold(A.k_norm->weight, false);
      }
    }
    if (dl->moe) {
      auto& M = *dl->moe;
      L.moe = true;
      L.router.w = I.hold(M.gate->weight, bf);
      L.router.out = M.gate->weight.size(0);
      L.router.in = M.gate->weight.size(1);
      L.router.round_in = bf;
      if (M.gate->e_score_correction_bias.defined())
        L.corr_bias = I.hold(M.gate->e_score_correction_bias, false);
      for (const auto& e : *M.experts) L.experts.push_back(I.mlp(*e->as<MLPImpl>(), bf));
      if (M.shared_experts) {
        L.shared = I.mlp(*M.shared_experts, bf);
        L.has_shared = true;
      }
      ++I.n_moe;
    } else {
      L.dense = I.mlp(*dl->dense, bf);
    }
    I.layers.push_back(std::move(L));
  }
}

ExactModel::~ExactModel() = default;
ExactModel::ExactModel(ExactModel&&) noexcept = default;
ExactModel& ExactModel::operator=(ExactModel&&) noexcept = default;
const ModelArgs& ExactModel::args() const {
  return impl_->args;
}
ExactPrecision ExactModel::precision() const {
  return impl_->precision;
}

void ExactModel::Impl::mlp_rows(const Mlp& m, const float* x, int64_t n, float* y,
                                const ExecutionContext& exec) const {
  const int64_t I = m.gate.out;
  std::vector<float> g(static_cast<size_t>(n * I)), u(static_cast<size_t>(n * I));
  linear(m.gate, x, n, g.data(), exec);
  linear(m.up, x, n, u.data(), exec);
  for (int64_t i = 0; i < n * I; ++i) g[i] = silu(g[i]) * u[i];
  linear(m.down, g.data(), n, y, exec);
}

void ExactModel::Impl::attention_mla(const Layer& L, ExactCache& cache, int64_t li,
                                     const std::vector<ExactRow>& rows, const float* xn, float* out,
                                     const ExecutionContext& exec) const {
  const ModelArgs& a = args;
  const int64_t n = static_cast<int64_t>(rows.size()), H = a.n_heads;
  const int64_t dn = a.qk_nope_head_dim, dr = a.qk_rope_head_dim, dv = a.v_head_dim;
  const int64_t dc = a.kv_lora_rank, dqk = dn + dr, half = dr / 2;
  // Queries [n, H * dqk].
  std::vector<float> q(static_cast<size_t>(n * H * dqk));
  if (L.q) {
    linear(L.q, xn, n, q.data(), exec);
  } else {
    const int64_t dq = a.q_lora_rank;
    std::vector<float> qa(static_cast<size_t>(n * dq));
    linear(L.q_a, xn, n, qa.data(), exec);
    for (int64_t r = 0; r < n; ++r) rms_norm_row(qa.data() + r * dq, dq, L.q_a_norm, eps);
    linear(L.q_b, qa.data(), n, q.data(), exec);
  }
  // Latent and RoPE key [n, dc + dr]; the latent normalised, then expanded [n, H*(dn+dv)].
  std::vector<float> kv(static_cast<size_t>(n * (dc + dr)));
  linear(L.kv_a, xn, n, kv.data(), exec);
  std::vector<float> c(static_cast<size_t>(n * dc));
  for (int64_t r = 0; r < n; ++r) {
    std::copy_n(kv.data() + r * (dc + dr), dc, c.data() + r * dc);
    rms_norm_row(c.data() + r * dc, dc, L.kv_a_norm, eps);
  }
  std::vector<float> kvb(static_cast<size_t>(n * H * (dn + dv)));
  linear(L.kv_b, c.data(), n, kvb.data(), exec);
  // RoPE, then the keys and values into the cache.
  std::vector<float> cs(half), sn(half);
  for (int64_t r = 0; r < n; ++r) {
    rope.angles(rows[r].pos, cs.data(), sn.data());
    for (int64_t h = 0; h < H; ++h)
      rope.apply(q.data() + (r * H + h) * dqk + dn, cs.data(), sn.data());
    float* kpe = kv.data() + r * (dc + dr) + dc;
    rope.apply(kpe, cs.data(), sn.data());
    float* key = cache.key(li, rows[r].slot, rows[r].pos);
    float* val = cache.value(li, rows[r].slot, rows[r].pos);
    const float* e = kvb.data() + r * H * (dn + dv);
    for (int64_t h = 0; h < H; ++h) {
      std::copy_n(e + h * (dn + dv), dn, key + h * dn);
      std::copy_n(e + h * (dn + dv) + dn, dv, val + h * dv);
    }
    std::copy_n(kpe, dr, key + H * dn);
  }
  // Attention per (row, head) over keys [0, pos] of the row's slot.
  const int64_t kdim = H * dn + dr, vdim = H * dv;
  int64_t longest = 1;
  for (const auto& row : rows) longest = std::max(longest, row.pos + 1);
  std::vector<float> o(static_cast<size_t>(n * H * dv));
  for_parts(
      exec, n * H, 1,
      [&](int64_t b, int64_t e) {
        std::vector<float> s;
        for (int64_t rh = b; rh < e; ++rh) {
          const int64_t r = rh / H, h = rh % H, len = rows[r].pos + 1;
          const float* qh = q.data() + (r * H + h) * dqk;
          const float* k0 = cache.key(li, rows[r].slot, 0);
          s.resize(static_cast<size_t>(len));
          for (int64_t j = 0; j < len; ++j) {
            const float* kj = k0 + j * kdim;
            s[j] = (exact_dot(qh, kj + h * dn, dn) + exact_dot(qh + dn, kj + H * dn, dr)) * scale;
          }
          attend(s.data(), len, cache.value(li, rows[r].slot, 0) + h * dv, vdim, dv,
                 o.data() + (r * H + h) * dv);
        }
      },
      longest * (dqk + dv));
  linear(L.o, o.data(), n, out, exec);
}

void ExactModel::Impl::attention_gqa(const Layer& L, ExactCache& cache, int64_t li,
                                     const std::vector<ExactRow>& rows, const float* xn, float* out,
                                     const ExecutionContext& exec) const {
  const ModelArgs& a = args;
  const int64_t n = static_cast<int64_t>(rows.size()), H = a.n_heads, Hk = a.n_kv_heads;
  const int64_t D = a.head_dim, rep = H / Hk, half = D / 2;
  std::vector<float> q(static_cast<size_t>(n * H * D)), k(static_cast<size_t>(n * Hk * D)),
      v(static_cast<size_t>(n * Hk * D));
  linear(L.q, xn, n, q.data(), exec);
  linear(L.k, xn, n, k.data(), exec);
  linear(L.v, xn, n, v.data(), exec);
  std::vector<float> cs(half), sn(half);
  for (int64_t r = 0; r < n; ++r) {
    rope.angles(rows[r].pos, cs.data(), sn.data());
    for (int64_t h = 0; h < H; ++h) {
      float* qh = q.data() + (r * H + h) * D;
      if (L.q_norm) rms_norm_row(qh, D, L.q_norm, eps);
      rope.apply(qh, cs.data(), sn.data());
    }
    for (int64_t h = 0; h < Hk; ++h) {
      float* kh = k.data() + (r * Hk + h) * D;
      if (L.k_norm) rms_norm_row(kh, D, L.k_norm, eps);
      rope.apply(kh, cs.data(), sn.data());
    }
    std::copy_n(k.data() + r * Hk * D, Hk * D, cache.key(li, rows[r].slot, rows[r].pos));
    std::copy_n(v.data() + r * Hk * D, Hk * D, cache.value(li, rows[r].slot, rows[r].pos));
  }
  const int64_t kvdim = Hk * D;
  int64_t longest = 1;
  for (const auto& row : rows) longest = std::max(longest, row.pos + 1);
  std::vector<float> o(static_cast<size_t>(n * H * D));
  for_parts(
      exec, n * H, 1,
      [&](int64_t b, int64_t e) {
        std::vector<float> s;
        for (int64_t rh = b; rh < e; ++rh) {
          const int64_t r = rh / H, h = rh % H, g = h / rep, len = rows[r].pos + 1;
          const float* qh = q.data() + (r * H + h) * D;
          const float* k0 = cache.key(li, rows[r].slot, 0) + g * D;
          s.resize(static_cast<size_t>(len));
          for (int64_t j = 0; j < len; ++j) s[j] = exact_dot(qh, k0 + j * kvdim, D) * scale;
          attend(s.data(), len, cache.value(li, rows[r].slot, 0) + g * D, kvdim, D,
                 o.data() + (r * H + h) * D);
        }
      },
      longest * 2 * D);
  linear(L.o, o.data(), n, out, exec);
}

void ExactModel::Impl::moe_ffn(const Layer& L, const float* xn, int64_t n, float* out,
                               int16_t* experts, int64_t moe_idx,
                               const ExecutionContext& exec) const {
  const ModelArgs& a = args;
  const int64_t d = a.dim, E = a.n_routed_experts, K = a.n_activated_experts;
  // The gate (policy::GateImpl): router logits, scores, the biased selection scores,
  // group-limited top-k, combine weights from the unbiased scores.
  std::vector<float> logits(static_cast<size_t>(n * E));
  linear(L.router, xn, n, logits.data(), exec);
  std::vector<int64_t> idx(static_cast<size_t>(n * K));
  std::vector<float> wts(static_cast<size_t>(n * K));
  std::vector<float> scores(E), sel(E);
  for (int64_t r = 0; r < n; ++r) {
    const float* lg = logits.data() + r * E;
    if (a.score_func == ScoreFunc::kSoftmax) {
      float m = -std::numeric_limits<float>::infinity();
      for (int64_t e = 0; e < E; ++e) m = std::max(m, lg[e]);
      float sum = 0.0f;
      for (int64_t e = 0; e < E; ++e) {
        scores[e] = std::exp(lg[e] - m);
        sum += scores[e];
      }
      for (int64_t e = 0; e < E; ++e) scores[e] = scores[e] / sum;
    } else {
      for (int64_t e = 0; e < E; ++e) scores[e] = 1.0f / (1.0f + std::exp(-lg[e]));
    }
    for (int64_t e = 0; e < E; ++e) sel[e] = L.corr_bias ? scores[e] + L.corr_bias[e] : scores[e];
    if (a.n_expert_groups > 1) {
      const int64_t G = a.n_expert_groups, per = E / G;
      std::vector<float> gs(G);
      for (int64_t g = 0; g < G; ++g) {
        const float* sg = sel.data() + g * per;
        if (L.corr_bias) {  // sum of the group's two best
          float b1 = -std::numeric_limits<float>::infinity(), b2 = b1;
          for (int64_t i = 0; i < per; ++i) {
            if (sg[i] > b1) {
              b2 = b1;
              b1 = sg[i];
            } else if (sg[i] > b2) {
              b2 = sg[i];
            }
          }
          gs[g] = per >= 2 ? b1 + b2 : b1;
        } else {
          float b1 = -std::numeric_limits<float>::infinity();
          for (int64_t i = 0; i < per; ++i) b1 = std::max(b1, sg[i]);
          gs[g] = b1;
        }
      }
      std::vector<char> kept(G, 0);
      for (int64_t t = 0; t < a.n_limited_groups; ++t) {
        int64_t best = -1;
        for (int64_t g = 0; g < G; ++g)
          if (!kept[g] && (best < 0 || gs[g] > gs[best])) best = g;
        kept[best] = 1;
      }
      for (int64_t g = 0; g < G; ++g)
        if (!kept[g])
          for (int64_t i = 0; i < per; ++i)
            sel[g * per + i] = -std::numeric_limits<float>::infinity();
    }
    // Top-k, descending, ties to the lower id.
    std::vector<char> taken(E, 0);
    for (int64_t t = 0; t < K; ++t) {
      int64_t best = -1;
      for (int64_t e = 0; e < E; ++e)
        if (!taken[e] && (best < 0 || sel[e] > sel[best])) best = e;
      taken[best] = 1;
      idx[r * K + t] = best;
      wts[r * K + t] = scores[best];
    }
    float* w = wts.data() + r * K;
    if (a.norm_topk_prob && K > 1) {
      float sum = 0.0f;
      for (int64_t t = 0; t < K; ++t) sum += w[t];
      const float den = sum + 1e-20f;
      for (int64_t t = 0; t < K; ++t) w[t] = w[t] / den;
      if (a.scale_after_norm)
        for (int64_t t = 0; t < K; ++t) w[t] = w[t] * static_cast<float>(a.route_scale);
    } else {
      for (int64_t t = 0; t < K; ++t) w[t] = w[t] * static_cast<float>(a.route_scale);
    }
    if (experts)
      for (int64_t t = 0; t < K; ++t)
        experts[(r * n_moe + moe_idx) * K + t] = static_cast<int16_t>(idx[r * K + t]);
  }
  // Every expert on its rows (a row's result does not depend on the others), into
  // routed [n, K, d]; then each row combined in slot order, the shared expert last.
  std::vector<float> routed(static_cast<size_t>(n * K * d));
  std::vector<int64_t> mine;
  std::vector<float> xin, yout;
  for (int64_t e = 0; e < E; ++e) {
    mine.clear();
    for (int64_t i = 0; i < n * K; ++i)
      if (idx[i] == e) mine.push_back(i);
    if (mine.empty()) continue;
    const int64_t m = static_cast<int64_t>(mine.size());
    xin.resize(static_cast<size_t>(m * d));
    yout.resize(static_cast<size_t>(m * d));
    for (int64_t j = 0; j < m; ++j) std::copy_n(xn + (mine[j] / K) * d, d, xin.data() + j * d);
    mlp_rows(L.experts[e], xin.data(), m, yout.data(), exec);
    for (int64_t j = 0; j < m; ++j)
      std::copy_n(yout.data() + j * d, d, routed.data() + mine[j] * d);
  }
  std::vector<float> shared;
  if (L.has_shared) {
    shared.resize(static_cast<size_t>(n * d));
    mlp_rows(L.shared, xn, n, shared.data(), exec);
  }
  for (int64_t r = 0; r < n; ++r) {
    float* y = out + r * d;
    std::fill(y, y + d, 0.0f);
    for (int64_t t = 0; t < K; ++t) {
      const float w = wts[r * K + t];
      const float* e = routed.data() + (r * K + t) * d;
      for (int64_t i = 0; i < d; ++i) y[i] += e[i] * w;
    }
    if (L.has_shared)
      for (int64_t i = 0; i < d; ++i) y[i] = y[i] + shared[r * d + i];
  }
}

torch::Tensor ExactModel::forward(ExactCache& cache, const std::vector<ExactRow>& rows,
                                  const ExecutionContext& exec, torch::Tensor* experts) const {
  const Impl& I = *impl_;
  const ModelArgs& a = I.args;
  const int64_t n = static_cast<int64_t>(rows.size()), d = a.dim, V = a.vocab_size;
  for (const auto& r : rows) {
    TORCH_CHECK(r.slot >= 0 && r.slot < cache.slots(), "exact forward: slot ", r.slot,
                " outside the cache's ", cache.slots());
    TORCH_CHECK(r.pos >= 0 && r.pos < cache.max_len(), "exact forward: position ", r.pos,
                " outside the cache's ", cache.max_len(), " tokens");
    TORCH_CHECK(r.token >= 0 && r.token < V, "exact forward: token id ", r.token,
                " outside the vocabulary [0, ", V, ")");
  }
  auto hidden = torch::empty({n, d}, torch::kFloat);
  float* h = hidden.data_ptr<float>();
  for (int64_t r = 0; r < n; ++r) std::copy_n(I.embed + rows[r].token * d, d, h + r * d);
  torch::Tensor rec;
  int16_t* rec_p = nullptr;
  if (experts && I.n_moe > 0) {
    rec = torch::full({n, I.n_moe, a.n_activated_experts}, -1, torch::kInt16);
    rec_p = rec.data_ptr<int16_t>();
  }
  std::vector<float> xn(static_cast<size_t>(n * d)), f(static_cast<size_t>(n * d));
  int64_t moe_idx = 0;
  for (int64_t li = 0; li < a.n_layers; ++li) {
    const Layer& L = I.layers[li];
    std::copy_n(h, n * d, xn.data());
    for (int64_t r = 0; r < n; ++r) rms_norm_row(xn.data() + r * d, d, L.in_norm, I.eps);
    if (a.attention == AttentionKind::kMLA)
      I.attention_mla(L, cache, li, rows, xn.data(), f.data(), exec);
    else
      I.attention_gqa(L, cache, li, rows, xn.data(), f.data(), exec);
    for (int64_t i = 0; i < n * d; ++i) h[i] = h[i] + f[i];
    std::copy_n(h, n * d, xn.data());
    for (int64_t r = 0; r < n; ++r) rms_norm_row(xn.data() + r * d, d, L.post_norm, I.eps);
    if (L.moe)
      I.moe_ffn(L, xn.data(), n, f.data(), rec_p, moe_idx++, exec);
    else
      I.mlp_rows(L.dense, xn.data(), n, f.data(), exec);
    for (int64_t i = 0; i < n * d; ++i) h[i] = h[i] + f[i];
  }
  for (int64_t r = 0; r < n; ++r) rms_norm_row(h + r * d, d, I.final_norm, I.eps);
  if (experts) *experts = rec;
  return hidden;
}

torch::Tensor ExactModel::logits(const torch::Tensor& hidden, double temperature,
                                 const ExecutionContext& exec) const {
  const Impl& I = *impl_;
  const int64_t d = I.args.dim, V = I.args.vocab_size;
  TORCH_CHECK(hidden.dim() == 2 && hidden.size(1) == d, "ExactModel::logits: hidden must be [n, ",
              d, "]");
  auto h = hidden.to(torch::kFloat).contiguous();
  const int64_t n = h.size(0);
  auto z = torch::empty({n, V}, torch::kFloat);
  Lin head;
  head.w = I.out_w;
  head.out = V;
  head.in = d;
  linear(head, h.data_ptr<float>(), n, z.data_ptr<float>(), exec);
  const float inv_t = static_cast<float>(1.0 / (temperature > 0 ? temperature : 1.0));
  if (inv_t != 1.0f) {
    float* p = z.data_ptr<float>();
    for (int64_t i = 0; i < n * V; ++i) p[i] = p[i] * inv_t;
  }
  return z;
}

// ---------------------------------------------------------------------------------
// Log-probs and sampling of one row

namespace {

// The kept set of tempered logits z (policy::truncation_mask's rules on p = softmax(z), in
// double, id order), the target added when >= 0. Empty when every filter is off.
std::vector<char> exact_kept(const float* z, int64_t V, const Truncation& t, int64_t target) {
  if (!t.active(V)) return {};
  double m = -std::numeric_limits<double>::infinity();
  for (int64_t v = 0; v < V; ++v) m = std::max(m, static_cast<double>(z[v]));
  double s = 0.0;
  for (int64_t v = 0; v < V; ++v) s += std::exp(static_cast<double>(z[v]) - m);
  const double lse = m + std::log(s);
  std::vector<double> p(V);
  for (int64_t v = 0; v < V; ++v) p[v] = std::exp(static_cast<double>(z[v]) - lse);
  std::vector<char> keep(V, 1);
  const bool use_k = t.top_k > 0 && t.top_k < V, use_p = t.top_p<1.0, use_min = t.min_p> 0.0;
  if (use_min) {
    double pmax = 0.0;
    for (int64_t v = 0; v < V; ++v) pmax = std::max(pmax, p[v]);
    for (int64_t v = 0; v < V; ++v) keep[v] = p[v] >= pmax * t.min_p;
  }
  if (use_k || use_p) {
    std::vector<int64_t> order(V);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int64_t x, int64_t y) { return p[x] > p[y]; });
    const int64_t k = use_k ? t.top_k : V;
    std::vector<char> ks(V, 0);
    for (int64_t i = 0; i < k; ++i) ks[i] = 1;
    if (use_p) {
      double mass = 0.0;
      for (int64_t i = 0; i < k; ++i) mass += p[order[i]];
      double cum = 0.0;
      for (int64_t i = 0; i < k; ++i) {
        const double before = cum;
        cum += p[order[i]];
        ks[i] = before < mass * t.top_p;
      }
    }
    for (int64_t i = 0; i < V; ++i) keep[order[i]] = keep[order[i]] && ks[i];
  }
  if (target >= 0) keep[target] = 1;
  return keep;
}

}  // namespace

float exact_token_logprob(const float* z, int64_t V, int64_t target, const Truncation& trunc) {
  TORCH_CHECK(target >= 0 && target < V, "exact_token_logprob: target ", target,
              " outside the vocabulary [0, ", V, ")");
  const std::vector<char> keep = exact_kept(z, V, trunc, target);
  double m = -std::numeric_limits<double>::infinity();
  for (int64_t v = 0; v < V; ++v)
    if (keep.empty() || keep[v]) m = std::max(m, static_cast<double>(z[v]));
  double s = 0.0;
  for (int64_t v = 0; v < V; ++v)
    if (keep.empty() || keep[v]) s += std::exp(static_cast<double>(z[v]) - m);
  return static_cast<float>(static_cast<double>(z[target]) - (m + std::log(s)));
}

int64_t exact_sample(const float* z, int64_t V, const Truncation& trunc, double u, bool greedy) {
  if (greedy) {
    int64_t best = 0;
    for (int64_t v = 1; v < V; ++v)
      if (z[v] > z[best]) best = v;
    return best;
  }
  const std::vector<char> keep = exact_kept(z, V, trunc, -1);
  double m = -std::numeric_limits<double>::infinity();
  for (int64_t v = 0; v < V; ++v) m = std::max(m, static_cast<double>(z[v]));
  std::vector<double> cdf(V);
  double acc = 0.0;
  int64_t last_kept = 0;
  for (int64_t v = 0; v < V; ++v) {
    if (keep.empty() || keep[v]) {
      acc += std::exp(static_cast<double>(z[v]) - m);
      last_kept = v;
    }
    cdf[v] = acc;
  }
  const double x = u * acc;
  const int64_t tok = std::upper_bound(cdf.begin(), cdf.end(), x) - cdf.begin();
  return tok >= V ? last_kept : tok;
}

// ---------------------------------------------------------------------------------
// Completion log-probs (the trainer's side)

torch::Tensor exact_completion_logprobs(const ExactModel& model,
                                        const std::vector<std::vector<int64_t>>& prompt_ids,
                                        const torch::Tensor& completions, const torch::Tensor& mask,
                                        double temperature, const Truncation& truncation,
                                        const ExecutionContext& exec) {
  TORCH_CHECK(completions.dim() == 2 && mask.sizes() == completions.sizes(),
              "exact_completion_logprobs: completions and mask must be [B, T]");
  const int64_t B = completions.size(0), T = completions.size(1);
  TORCH_CHECK(static_cast<int64_t>(prompt_ids.size()) == B,
              "exact_completion_logprobs: one prompt per completion row");
  auto comp = completions.to(torch::kLong).contiguous();
  auto msk = mask.to(torch::kFloat).contiguous();
  const int64_t* cp = comp.data_ptr<int64_t>();
  const float* mp = msk.data_ptr<float>();
  // Tokens needed per row: up to its last nonzero mask entry.
  std::vector<int64_t> need(B, 0);
  int64_t max_len = 1;
  for (int64_t i = 0; i < B; ++i) {
    TORCH_CHECK(!prompt_ids[i].empty(), "exact_completion_logprobs: empty prompt in row ", i);
    for (int64_t t = 0; t < T; ++t)
      if (mp[i * T + t] != 0.0f) need[i] = t + 1;
    max_len = std::max<int64_t>(max_len, static_cast<int64_t>(prompt_ids[i].size()) + need[i]);
  }
  auto out = torch::zeros({B, T}, torch::kFloat);
  float* op = out.data_ptr<float>();
  ExactCache cache(model.args(), B, max_len);
  // Each distinct prompt once (in the slot of its first row), then copied to the slots of
  // the rows that share it: the per-row arithmetic does not depend on where a key came from.
  std::vector<int64_t> first_of(B, -1);
  std::vector<ExactRow> rows;
  std::vector<int64_t> last_row_of(B, -1);  // index in `rows` of a prompt's last token
  for (int64_t i = 0; i < B; ++i) {
    for (int64_t j = 0; j < i && first_of[i] < 0; ++j)
      if (first_of[j] == j && prompt_ids[j] == prompt_ids[i]) first_of[i] = j;
    if (first_of[i] >= 0 || need[i] == 0) continue;
    first_of[i] = i;
    const auto& p = prompt_ids[i];
    for (size_t t = 0; t < p.size(); ++t) rows.push_back({i, static_cast<int64_t>(t), p[t]});
    last_row_of[i] = static_cast<int64_t>(rows.size()) - 1;
  }
  if (rows.empty()) return out;
  auto h_prompt = model.forward(cache, rows, exec);
  for (int64_t i = 0; i < B; ++i)
    if (first_of[i] >= 0 && first_of[i] != i && need[i] > 0)
      cache.copy_slot(cache, first_of[i], i, static_cast<int64_t>(prompt_ids[i].size()));
  // Completion tokens 0 .. need-2 as inputs (the last one predicts nothing needed).
  std::vector<ExactRow> tail;
  std::vector<int64_t> tail_start(B, 0);
  for (int64_t i = 0; i < B; ++i) {
    tail_start[i] = static_cast<int64_t>(tail.size());
    const int64_t lp = static_cast<int64_t>(prompt_ids[i].size());
    for (int64_t t = 0; t + 1 < need[i]; ++t) tail.push_back({i, lp + t, cp[i * T + t]});
  }
  torch::Tensor h_tail =
      tail.empty() ? torch::empty({0, model.args().dim}) : model.forward(cache, tail, exec);
  // Hidden state predicting completion token t of row i: the prompt's last for t = 0.
  std::vector<torch::Tensor> hs;
  std::vector<int64_t> ri, ti;
  for (int64_t i = 0; i < B; ++i) {
    if (need[i] == 0) continue;
    const int64_t src = first_of[i];
    hs.push_back(h_prompt[last_row_of[src]].unsqueeze(0));
    ri.push_back(i);
    ti.push_back(0);
    if (need[i] > 1) {
      hs.push_back(h_tail.narrow(0, tail_start[i], need[i] - 1));
      for (int64_t t = 1; t < need[i]; ++t) {
        ri.push_back(i);
        ti.push_back(t);
      }
    }
  }
  auto z = model.logits(torch::cat(hs, 0).contiguous(), temperature, exec);
  const int64_t V = model.args().vocab_size;
  const float* zp = z.data_ptr<float>();
  const int64_t N = static_cast<int64_t>(ri.size());
  for_parts(
      exec, N, 1,
      [&](int64_t b, int64_t e) {
        for (int64_t k = b; k < e; ++k) {
          const int64_t i = ri[k], t = ti[k];
          const float m = mp[i * T + t];
          if (m == 0.0f) continue;
          const float lp = exact_token_logprob(zp + k * V, V, cp[i * T + t], truncation);
          op[i * T + t] = m == 1.0f ? lp : lp * m;
        }
      },
      4 * V);
  return out;
}

ExactPrecision exact_precision_of_autocast() {
  return compat::cpu_autocast_enabled() ? ExactPrecision::kBF16 : ExactPrecision::kF32;
}

void make_logprobs_exact(CompletionLogProbs& out, TransformerImpl& model,
                         const std::vector<std::vector<int64_t>>& prompt_ids,
                         const torch::Tensor& completions, const torch::Tensor& mask,
                         double temperature, const Truncation& truncation) {
  torch::NoGradGuard no_grad;
  ExecutionContext exec;
  exec.decode_threads = std::clamp(at::get_num_threads(), 1, kMaxDecodeThreads);
  const ExactModel em(model, exact_precision_of_autocast());
  auto exact =
      exact_completion_logprobs(em, prompt_ids, completions, mask, temperature, truncation, exec)
          .to(out.logprobs.device());
  torch::AutoGradMode grad(out.logprobs.requires_grad());
  const auto& lp = out.logprobs;
  out.logprobs = lp.requires_grad() ? exact + (lp - lp.detach()) : exact;
}

}  // namespace r1kit::policy
