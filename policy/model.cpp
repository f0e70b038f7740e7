#include "policy/model.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <optional>

#include "policy/attention.h"
#include "policy/bf16_weights.h"
#include "policy/decode_threads.h"
#include "policy/expert_kernels.h"
#include "policy/grouped_experts.h"
#include "policy/mla_decode.h"
#include "policy/rms_norm.h"
#include "policy/rope.h"

namespace r1kit::policy {
namespace F = torch::nn::functional;
using torch::indexing::Slice;

namespace {

torch::nn::Linear linear(int64_t in, int64_t out, bool bias = false) {
  return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(bias));
}

// An nn::Linear through decode_linear: split over the pool at decode (decode_threads.h).
torch::Tensor run_linear(torch::nn::Linear& l, const torch::Tensor& x,
                         const ExecutionContext& exec) {
  return decode_linear(x, l->weight, l->bias, exec);
}

// YaRN mscale: 0.1 * m * ln(s) + 1 (YaRN, Peng et al. 2023; docs/model.md, "RoPE and YaRN").
double yarn_m(double factor, double m) {
  return factor <= 1.0 ? 1.0 : 0.1 * m * std::log(factor) + 1.0;
}

// Llama 3 rescaling of one RoPE frequency (HF rope_type "llama3"; docs/model.md, "Llama 3
// RoPE scaling"): wavelengths below L0/high_freq_factor keep their frequency, those above
// L0/low_freq_factor are divided by the factor, and those between blend the two with
// smooth = (L0/wavelength - low_freq_factor) / (high_freq_factor - low_freq_factor).
double llama3_freq(double f, const ModelArgs& a) {
  const double wavelen = 2 * M_PI / f, L0 = static_cast<double>(a.rope_original_max_pos);
  if (wavelen < L0 / a.rope_high_freq_factor) return f;
  if (wavelen > L0 / a.rope_low_freq_factor) return f / a.rope_factor;
  const double smooth =
      (L0 / wavelen - a.rope_low_freq_factor) / (a.rope_high_freq_factor - a.rope_low_freq_factor);
  return (1.0 - smooth) * f / a.rope_factor + smooth * f;
}

// LibTorch's default dtype set to `dtype` for the scope's lifetime (process-wide).
class DefaultDtypeScope {
 public:
  explicit DefaultDtypeScope(torch::Dtype dtype) : saved_(torch::get_default_dtype()) {
    torch::set_default_dtype(c10::scalarTypeToTypeMeta(dtype));
  }
  ~DefaultDtypeScope() { torch::set_default_dtype(saved_); }
  DefaultDtypeScope(const DefaultDtypeScope&) = delete;
  DefaultDtypeScope& operator=(const DefaultDtypeScope&) = delete;

 private:
  caffe2::TypeMeta saved_;
};

// Writes this call's keys/values into cache tensor `t` [B_cache, S, ...] and returns the
// rows [0, B) x positions [0, start_pos + T) to attend over. With per-row positions
// (row_pos [B], T == 1) row b writes at row_pos[b]; otherwise every row writes at
// [start_pos, start_pos + T).
torch::Tensor cache_write_read(const torch::Tensor& t, const torch::Tensor& x, int64_t start_pos,
                               const torch::Tensor& row_pos) {
  const int64_t B = x.size(0), T = x.size(1);
  TORCH_CHECK(start_pos + T <= t.size(1), "KV cache overflow: ", start_pos + T, " > ", t.size(1));
  TORCH_CHECK(B <= t.size(0), "KV cache has ", t.size(0), " rows, the batch ", B);
  auto rows = t.narrow(0, 0, B);
  if (row_pos.defined()) {
    TORCH_CHECK(T == 1 && row_pos.numel() == B, "row_positions needs T == 1 and one per row");
    auto b = torch::arange(B, row_pos.options());
    rows.index_put_({b, row_pos}, x.select(1, 0));
  } else {
    rows.narrow(1, start_pos, T).copy_(x);
  }
  return rows.narrow(1, 0, start_pos + T);
}

}  // namespace

torch::Tensor causal_mask(int64_t T, int64_t start_pos, torch::Device device) {
  auto q = torch::arange(start_pos, start_pos + T, torch::dtype(torch::kLong).device(device));
  auto k = torch::arange(0, start_pos + T, torch::dtype(torch::kLong).device(device));
  return (k.unsqueeze(0) <= q.unsqueeze(1)).view({1, 1, T, start_pos + T});
}

// ---------------------------------------------------------------------------------
// KVCache

KVCache KVCache::allocate(const ModelArgs& args, int64_t batch, int64_t max_len, torch::Dtype dtype,
                          torch::Device device) {
  KVCache c;
  c.batch = batch;
  c.max_len = max_len;
  auto o = torch::dtype(dtype).device(device);
  for (int64_t l = 0; l < args.n_layers; ++l) {
    if (args.attention == AttentionKind::kMLA) {
      c.a.push_back(torch::zeros({batch, max_len, args.kv_lora_rank}, o));
      c.b.push_back(torch::zeros({batch, max_len, args.qk_rope_head_dim}, o));
    } else {
      c.a.push_back(torch::zeros({batch, max_len, args.n_kv_heads, args.head_dim}, o));
      c.b.push_back(torch::zeros({batch, max_len, args.n_kv_heads, args.head_dim}, o));
    }
  }
  return c;
}

int64_t KVCache::bytes() const {
  int64_t n = 0;
  for (const auto& t : a) n += t.numel() * t.element_size();
  for (const auto& t : b) n += t.numel() * t.element_size();
  return n;
}

KVCache KVCache::slots(int64_t first, int64_t n) const {
  TORCH_CHECK(first >= 0 && n >= 0 && first + n <= batch, "KVCache::slots: [", first, ", ",
              first + n, ") is outside the cache's ", batch, " slots");
  KVCache c;
  c.batch = n;
  c.max_len = max_len;
  for (const auto& t : a) c.a.push_back(t.narrow(0, first, n));
  for (const auto& t : b) c.b.push_back(t.narrow(0, first, n));
  return c;
}

void KVCache::copy_slot(const KVCache& src, int64_t from, int64_t to, int64_t len, int64_t n) {
  TORCH_CHECK(src.a.size() == a.size(), "KVCache::copy_slot: caches of different models");
  TORCH_CHECK(from >= 0 && from < src.batch && to >= 0 && n >= 1 && to + n <= batch && len >= 0 &&
                  len <= src.max_len && len <= max_len,
              "KVCache::copy_slot: slot or length out of range");
  const bool self = &src == this && from >= to && from < to + n;
  TORCH_CHECK(!self || n == 1, "KVCache::copy_slot: the source slot is among ", n, " targets");
  if (self) return;
  for (size_t l = 0; l < a.size(); ++l) {
    for (auto [dst, s] : {std::pair{&a[l], &src.a[l]}, std::pair{&b[l], &src.b[l]}}) {
      auto row = s->narrow(0, from, 1).narrow(1, 0, len);  // [1, len, ...]
      auto sizes = row.sizes().vec();
      sizes[0] = n;
      dst->narrow(0, to, n).narrow(1, 0, len).copy_(row.expand(sizes));
    }
  }
}

// ---------------------------------------------------------------------------------
// RMSNorm

RMSNormImpl::RMSNormImpl(int64_t dim, double eps) : eps_(eps) {
  weight = register_parameter("weight", torch::ones({dim}));
}

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) {
  return rms_norm(x, weight, eps_);
}

// ---------------------------------------------------------------------------------
// Rotary / YaRN

Rotary::Rotary(const ModelArgs& a, int64_t rot_dim) : interleave_(a.rope_interleave) {
  const int64_t half = rot_dim / 2;
  std::vector<float> freq(half);
  const double base = a.rope_theta;
  // Correction range (YaRN's "NTK-by-parts" ramp, as DeepSeek-V3 inference/model.py computes
  // it; docs/model.md, "RoPE and YaRN"): dims whose wavelength fits the original context
  // keep their frequency; the rest are divided by the factor, with a linear ramp.
  double low = 0, high = 0;
  const bool yarn = a.yarn();
  if (yarn) {
    auto corr = [&](double n_rot) {
      return rot_dim * std::log(a.rope_original_max_pos / (n_rot * 2 * M_PI)) /
             (2 * std::log(base));
    };
    low = std::max(std::floor(corr(a.beta_fast)), 0.0);
    high = std::min(std::ceil(corr(a.beta_slow)), static_cast<double>(rot_dim - 1));
    if (low == high) high += 0.001;  // avoid a zero-width ramp
  }
  for (int64_t i = 0; i < half; ++i) {
    double f = 1.0 / std::pow(base, 2.0 * i / rot_dim);
    if (yarn) {
      double ramp = std::clamp((i - low) / (high - low), 0.0, 1.0);
      double smooth = 1.0 - ramp;
      f = f / a.rope_factor * (1.0 - smooth) + f * smooth;
    } else if (a.rope_llama3) {
      f = llama3_freq(f, a);
    }
    freq[i] = static_cast<float>(f);
  }
  inv_freq_ = torch::tensor(freq, torch::kFloat);
  // HF scales cos/sin by m(mscale)/m(mscale_all_dim): 1 for every DeepSeek config.
  if (yarn) cos_scale_ = yarn_m(a.rope_factor, a.mscale) / yarn_m(a.rope_factor, a.mscale_all_dim);
}

std::pair<torch::Tensor, torch::Tensor> Rotary::cos_sin(const torch::Tensor& positions) const {
  auto ang = positions.to(torch::kFloat).unsqueeze(-1) * inv_freq_.to(positions.device());
  return {torch::cos(ang) * cos_scale_, torch::sin(ang) * cos_scale_};
}

torch::Tensor Rotary::apply(const torch::Tensor& x, const torch::Tensor& positions) const {
  auto [cos_t, sin_t] = cos_sin(positions);  // [B, T, half]
  auto cos = cos_t.unsqueeze(2), sin = sin_t.unsqueeze(2);
  auto xf = x.to(torch::kFloat);
  torch::Tensor out;
  if (interleave_) {
    auto xp = xf.unflatten(/*dim=*/-1, {-1, 2});  // [B, T, h, half, 2]
    auto x0 = xp.select(-1, 0), x1 = xp.select(-1, 1);
    out = torch::stack({x0 * cos - x1 * sin, x0 * sin + x1 * cos}, /*dim=*/-1).flatten(-2);
  } else {
    auto halves = xf.chunk(2, /*dim=*/-1);
    const auto &x1 = halves[0], &x2 = halves[1];
    out = torch::cat({x1 * cos - x2 * sin, x2 * cos + x1 * sin}, /*dim=*/-1);
  }
  return out.to(x.scalar_type());
}

torch::Tensor Rotary::apply_tail(const torch::Tensor& x, const torch::Tensor& positions,
                                 double scale) const {
  auto [cos, sin] = cos_sin(positions);
  // Positions that broadcast over the batch ([1, T]), as Rotary::apply allows.
  const std::vector<int64_t> shape{x.size(0), x.size(1), cos.size(-1)};
  return rope_tail(x, cos.expand(shape), sin.expand(shape), interleave_, scale);
}

// ---------------------------------------------------------------------------------
// MLA

MLAImpl::MLAImpl(const ModelArgs& a)
    : args_(a), rope_(a, a.qk_rope_head_dim), scale_(a.softmax_scale()) {
  const int64_t H = a.n_heads;
  if (a.q_lora_rank == 0) {
    q_proj = register_module("q_proj", linear(a.dim, H * a.qk_head_dim()));
  } else {
    q_a_proj = register_module("q_a_proj", linear(a.dim, a.q_lora_rank));
    q_a_layernorm = register_module("q_a_layernorm", RMSNorm(a.q_lora_rank, a.norm_eps));
    q_b_proj = register_module("q_b_proj", linear(a.q_lora_rank, H * a.qk_head_dim()));
  }
  kv_a_proj_with_mqa =
      register_module("kv_a_proj_with_mqa", linear(a.dim, a.kv_lora_rank + a.qk_rope_head_dim));
  kv_a_layernorm = register_module("kv_a_layernorm", RMSNorm(a.kv_lora_rank, a.norm_eps));
  kv_b_proj =
      register_module("kv_b_proj", linear(a.kv_lora_rank, H * (a.qk_nope_head_dim + a.v_head_dim)));
  o_proj = register_module("o_proj", linear(H * a.v_head_dim, a.dim));
}

torch::Tensor MLAImpl::forward(const torch::Tensor& x, const torch::Tensor& positions,
                               const torch::Tensor& mask, KVCache* cache, int64_t layer,
                               int64_t start_pos, AttnImpl impl, const ExecutionContext& exec,
                               const torch::Tensor& row_pos) {
  const int64_t B = x.size(0), T = x.size(1), H = args_.n_heads;
  const int64_t dn = args_.qk_nope_head_dim, dr = args_.qk_rope_head_dim, dv = args_.v_head_dim;
  const int64_t dc = args_.kv_lora_rank;

  auto q = q_proj ? run_linear(q_proj, x, exec)
                  : run_linear(q_b_proj, q_a_layernorm(run_linear(q_a_proj, x, exec)), exec);
  q = q.view({B, T, H, dn + dr});

  auto kv = run_linear(kv_a_proj_with_mqa, x, exec);  // [B, T, dc + dr]
  auto c_kv = kv_a_layernorm(kv.narrow(-1, 0, dc));   // [B, T, dc]
  auto k_pe = rope_.apply_tail(kv.narrow(-1, dc, dr).unsqueeze(2), positions, 1.0)
                  .squeeze(2);  // [B, T, dr]

  torch::Tensor c_all = c_kv, pe_all = k_pe;  // [B, S, dc], [B, S, dr]
  if (cache) {
    c_all = cache_write_read(cache->a[layer], c_kv, start_pos, row_pos);
    pe_all = cache_write_read(cache->b[layer], k_pe, start_pos, row_pos);
  }
  const int64_t S = c_all.size(1);
  if (impl == AttnImpl::kAuto) impl = (cache && T == 1) ? AttnImpl::kAbsorb : AttnImpl::kNaive;

  torch::Tensor o;  // [B, T, H, dv]
  if (impl == AttnImpl::kNaive) {
    auto kvb = run_linear(kv_b_proj, c_all, exec).view({B, S, H, dn + dv});
    auto k_nope = kvb.narrow(-1, 0, dn);
    auto v = kvb.narrow(-1, dn, dv);
    auto k = torch::cat({k_nope, pe_all.unsqueeze(2).expand({B, S, H, dr})}, -1);  // [B, S, H, dqk]
    // [q_nope, rope(q_pe)] times the softmax scale (on q, not on the larger scores), one
    // pass (policy/rope.h).
    auto qh = rope_.apply_tail(q, positions, scale_).transpose(1, 2);  // [B, H, T, dqk]
    o = masked_attention(qh, k.permute({0, 2, 3, 1}), v.transpose(1, 2), mask)
            .transpose(1, 2);  // [B, T, H, dv]
  } else {
    // Absorbed (DeepSeek-V2 §2.1.2): q_lat = q_nope W_UK, scores against the latent itself.
    // Written as plain bmm's so that neither the per-head weights (over B) nor the
    // latent cache (over H) is ever expanded and copied.
    auto q_nope = q.narrow(-1, 0, dn);                         // [B, T, H, dn]
    auto q_pe = rope_.apply(q.narrow(-1, dn, dr), positions);  // [B, T, H, dr]
    auto w = kv_b_proj->weight.view({H, dn + dv, dc});
    auto w_uk = w.narrow(1, 0, dn);   // [H, dn, dc]
    auto w_uv = w.narrow(1, dn, dv);  // [H, dv, dc]
    auto q_lat = torch::bmm(q_nope.permute({2, 0, 1, 3}).reshape({H, B * T, dn}), w_uk)
                     .view({H, B, T, dc})
                     .permute({1, 0, 2, 3})
                     .reshape({B, H * T, dc});  // [B, H*T, dc]
    auto qp = q_pe.transpose(1, 2).reshape({B, H * T, dr});
    torch::Tensor o_lat;  // [B, H*T, dc]
    if (T == 1 && cache && (row_pos.defined() || !mask.defined()) &&
        mla_decode_kernel_applies(q_lat, qp, c_all, pe_all, exec.kernels)) {
      // One token a row (decode): the fused kernel, row b over keys [0, row_pos[b]].
      auto len = row_pos.defined() ? row_pos.to(torch::kCPU) + 1
                                   : torch::full({B}, S, torch::dtype(torch::kLong));
      o_lat = mla_decode_attention(q_lat, qp, c_all, pe_all, len, scale_, exec);
    } else {
      auto scores = torch::baddbmm(torch::bmm(qp, pe_all.transpose(1, 2)), q_lat,
                                   c_all.transpose(1, 2));  // [B, H*T, S]
      scores = (scores * scale_).view({B, H, T, S});
      auto p = masked_softmax_f32(scores, mask, c_all).view({B, H * T, S});
      o_lat = torch::bmm(p, c_all);
    }
    o = torch::bmm(o_lat.view({B, H, T, dc}).permute({1, 0, 2, 3}).reshape({H, B * T, dc}),
                   w_uv.transpose(1, 2))  // [H, B*T, dv]
            .view({H, B, T, dv})
            .permute({1, 2, 0, 3});  // [B, T, H, dv]
  }
  return run_linear(o_proj, o.reshape({B, T, H * dv}), exec);
}

// ---------------------------------------------------------------------------------
// GQA

GQAImpl::GQAImpl(const ModelArgs& a) : args_(a), rope_(a, a.head_dim), scale_(a.softmax_scale()) {
  q_proj = register_module("q_proj", linear(a.dim, a.n_heads * a.head_dim, a.qkv_bias));
  k_proj = register_module("k_proj", linear(a.dim, a.n_kv_heads * a.head_dim, a.qkv_bias));
  v_proj = register_module("v_proj", linear(a.dim, a.n_kv_heads * a.head_dim, a.qkv_bias));
  o_proj = register_module("o_proj", linear(a.n_heads * a.head_dim, a.dim, a.o_bias));
  if (a.qk_norm) {
    q_norm = register_module("q_norm", RMSNorm(a.head_dim, a.norm_eps));
    k_norm = register_module("k_norm", RMSNorm(a.head_dim, a.norm_eps));
  }
}

torch::Tensor GQAImpl::forward(const torch::Tensor& x, const torch::Tensor& positions,
                               const torch::Tensor& mask, KVCache* cache, int64_t layer,
                               int64_t start_pos, const ExecutionContext& exec,
                               const torch::Tensor& row_pos) {
  const int64_t B = x.size(0), T = x.size(1), H = args_.n_heads, Hk = args_.n_kv_heads;
  const int64_t D = args_.head_dim;
  auto q = run_linear(q_proj, x, exec).view({B, T, H, D});
  auto k = run_linear(k_proj, x, exec).view({B, T, Hk, D});
  if (q_norm) {  // Qwen3: per-head RMSNorm before RoPE
    q = q_norm(q);
    k = k_norm(k);
  }
  // RoPE, and on q the softmax scale (on q, not on the larger scores), one pass each
  // (policy/rope.h).
  q = rope_.apply_tail(q, positions, scale_);
  k = rope_.apply_tail(k, positions, 1.0);
  auto v = run_linear(v_proj, x, exec).view({B, T, Hk, D});
  if (cache) {
    k = cache_write_read(cache->a[layer], k, start_pos, row_pos);
    v = cache_write_read(cache->b[layer], v, start_pos, row_pos);
  }
  const int64_t rep = H / Hk;
  // Group the query heads of each KV head, position-major (row t * rep + j):
  // [B, Hk, T*rep, D] against the S cached keys [B, Hk, S, D], so that a block of
  // positions is a block of rows for masked_attention.
  auto qg = q.view({B, T, Hk, rep, D}).transpose(1, 2).reshape({B, Hk, T * rep, D});
  auto o = masked_attention(qg, k.permute({0, 2, 3, 1}), v.transpose(1, 2), mask, rep);
  o = o.view({B, Hk, T, rep, D}).transpose(1, 2).reshape({B, T, H * D});  // [B, T, H*D]
  return run_linear(o_proj, o, exec);
}

// ---------------------------------------------------------------------------------
// MLP

MLPImpl::MLPImpl(int64_t dim, int64_t inter_dim) {
  gate_proj = register_module("gate_proj", linear(dim, inter_dim));
  up_proj = register_module("up_proj", linear(dim, inter_dim));
  down_proj = register_module("down_proj", linear(inter_dim, dim));
}

namespace {
// The bf16 copies of an MLP's three weights in `bf16`, all or none.
std::array<const torch::Tensor*, 3> bf16_copies(const MLPImpl& m, const Bf16Weights* bf16) {
  if (!bf16) return {};
  std::array<const torch::Tensor*, 3> c{bf16->find(m.gate_proj->weight),
                                        bf16->find(m.up_proj->weight),
                                        bf16->find(m.down_proj->weight)};
  return c[0] && c[1] && c[2] ? c : std::array<const torch::Tensor*, 3>{};
}
}  // namespace

bool MLPImpl::takes_small_rows(const torch::Tensor& x, const KernelChoices& kernels,
                               int64_t max_rows, const Bf16Weights* bf16) const {
  const int64_t rows = x.numel() / std::max<int64_t>(x.size(-1), 1);
  if (rows > max_rows ||
      !small_rows_kernels_apply(x, gate_proj->weight, up_proj->weight, down_proj->weight, kernels))
    return false;
  // In bf16 compute, only where the bf16 kernels apply (else decode_linear's bf16 path).
  return !bf16_copies(*this, bf16)[0] || (bf16_kernels_apply(kernels, x.size(-1)) &&
                                          bf16_kernels_apply(kernels, gate_proj->weight.size(0)));
}

ExpertJob MLPImpl::small_rows_job(const torch::Tensor& x, torch::Tensor& y,
                                  const Bf16Weights* bf16) const {
  ExpertJob j{x.data_ptr<float>(),
              x.numel() / x.size(-1),
              gate_proj->weight.size(0),
              gate_proj->weight.data_ptr<float>(),
              up_proj->weight.data_ptr<float>(),
              down_proj->weight.data_ptr<float>(),
              y.data_ptr<float>()};
  if (const auto c = bf16_copies(*this, bf16); c[0]) {
    j.w_gate16 = c[0]->data_ptr<at::BFloat16>();
    j.w_up16 = c[1]->data_ptr<at::BFloat16>();
    j.w_down16 = c[2]->data_ptr<at::BFloat16>();
  }
  return j;
}

torch::Tensor MLPImpl::forward(const torch::Tensor& x, const ExecutionContext& exec) {
  // Few rows without autograd (a routed expert, the shared one or a dense layer at
  // decode): the fused small-row kernel. Not in the trainer's no-grad passes
  // (small_rows_kernels_apply).
  if (takes_small_rows(x, exec.kernels, small_rows_max_rows(exec.kernels, 1), exec.bf16)) {
    const int64_t dim = x.size(-1), rows = x.numel() / dim;
    const auto x2 = x.reshape({rows, dim}).contiguous();
    auto out = torch::empty_like(x2);
    // In the column form, with several threads, the rows are cut into contiguous pieces
    // of at least kColumnRowsMin rows, one a thread: each piece takes the column form as
    // the whole would, and a row's result does not depend on the rows beside it, so the
    // bits are the same at any thread count (what lets the engine take lent cores,
    // rollout/engine.h). In bf16 where exec.bf16 holds this MLP's weights.
    const int pieces =
        takes_columns(exec.kernels, rows)
            ? static_cast<int>(std::clamp<int64_t>(rows / kColumnRowsMin, 1, exec.expert_threads()))
            : 1;
    std::vector<ExpertJob> jobs;
    for (int p = 0; p < pieces; ++p) {
      const int64_t r0 = rows * p / pieces, r1 = rows * (p + 1) / pieces;
      auto xp = x2.narrow(0, r0, r1 - r0), yp = out.narrow(0, r0, r1 - r0);
      jobs.push_back(small_rows_job(xp, yp, exec.bf16));
    }
    swiglu_experts_small_rows(jobs, dim, pieces, exec);
    auto shape = x.sizes().vec();
    shape.back() = out.size(1);
    return out.view(shape);
  }
  auto g = run_linear(gate_proj, x, exec), u = run_linear(up_proj, x, exec);
  // With autograd, SwiGLU as one node with a fused backward (grouped_experts.h).
  const bool fused = (torch::GradMode::is_enabled() || exec.kernels.grouped_without_grad) &&
                     exec.kernels.grouped_experts;
  return run_linear(down_proj, fused ? swiglu(g, u) : F::silu(g) * u, exec);
}

// ---------------------------------------------------------------------------------
// Gate

GateImpl::GateImpl(const ModelArgs& a) : args_(a) {
  weight = register_parameter("weight", torch::empty({a.n_routed_experts, a.dim}));
  if (a.expert_bias)
    e_score_correction_bias = register_buffer("e_score_correction_bias",
                                              torch::zeros({a.n_routed_experts}, torch::kFloat));
}

Routing GateImpl::forward(const torch::Tensor& x, const torch::Tensor& forced) {
  const int64_t N = x.size(0), E = args_.n_routed_experts, K = args_.n_activated_experts;
  // Router logits in fp32, as the HF code computes them.
  auto logits = torch::matmul(x.to(torch::kFloat), weight.to(torch::kFloat).t());  // [N, E]
  auto scores =
      args_.score_func == ScoreFunc::kSoftmax ? torch::softmax(logits, -1) : torch::sigmoid(logits);
  auto s = scores.detach();  // selection is not differentiable
  if (e_score_correction_bias.defined()) s = s + e_score_correction_bias.to(torch::kFloat);
  if (args_.n_expert_groups > 1) {
    const int64_t G = args_.n_expert_groups;
    auto sg = s.view({N, G, E / G});
    auto group_score = e_score_correction_bias.defined()
                           ? std::get<0>(sg.topk(2, /*dim=*/-1)).sum(-1)
                           : std::get<0>(sg.max(-1));                       // [N, G]
    auto keep = std::get<1>(group_score.topk(args_.n_limited_groups, -1));  // [N, topk_group]
    auto group_mask = torch::ones({N, G}, s.options().dtype(torch::kBool)).scatter_(1, keep, false);
    s = sg.masked_fill(group_mask.unsqueeze(-1), -INFINITY).view({N, E});
  }
  Routing r;
  r.indices = std::get<1>(s.topk(K, -1));
  if (forced.defined()) {
    auto f = forced.to(r.indices.device(), torch::kLong);  // [N, K]
    r.indices = torch::where((f.select(1, 0) >= 0).unsqueeze(1), f, r.indices);
  }
  r.scores = scores;
  // Combine weights: gathered from the unbiased scores (the bias only selects), then
  // normalised and scaled (docs/model.md, "The gate"). Differentiable through the scores.
  auto w = scores.gather(1, r.indices);  // [N, K]
  if (args_.norm_topk_prob && K > 1) {
    w = w / (w.sum(-1, /*keepdim=*/true) + 1e-20);
    if (args_.scale_after_norm) w = w * args_.route_scale;
  } else {
    w = w * args_.route_scale;
  }
  r.weights = w;
  return r;
}

// ---------------------------------------------------------------------------------
// MoE

MoEImpl::MoEImpl(const ModelArgs& a) : args_(a) {
  gate = register_module("gate", Gate(a));
  experts = register_module("experts", torch::nn::ModuleList());
  for (int64_t e = 0; e < a.n_routed_experts; ++e) experts->push_back(MLP(a.dim, a.moe_inter_dim));
  if (a.n_shared_experts > 0)
    shared_experts =
        register_module("shared_experts", MLP(a.dim, a.n_shared_experts * a.moe_inter_dim));
  load_accum_ = torch::zeros({a.n_routed_experts}, torch::kFloat);
}

// Without autograd (unless exec.kernels.grouped_without_grad), or with it when
// exec.kernels.grouped_experts is off (the reference).
torch::Tensor MoEImpl::routed_per_expert(const torch::Tensor& xf, const Routing& r,
                                         const torch::Tensor& counts, const ExecutionContext& exec,
                                         torch::Tensor* y_shared_out) {
  const int64_t d = xf.size(1);
  const int64_t E = args_.n_routed_experts, K = args_.n_activated_experts;
  const auto& w = r.weights;
  auto& y_shared = *y_shared_out;
  // Dispatch: sort the (token, slot) pairs by expert, one matmul chain per active expert.
  auto flat_idx = r.indices.reshape({-1});                  // [N*K]
  auto order = flat_idx.argsort();                          // [N*K]
  auto token_of = order.div(K, /*rounding_mode=*/"floor");  // [N*K]
  auto w_sorted = w.reshape({-1}).index_select(0, order).to(xf.scalar_type());
  auto x_sorted = xf.index_select(0, token_of);  // [N*K, d]
  auto counts_cpu = counts.to(torch::kCPU);
  const int64_t* cnt = counts_cpu.data_ptr<int64_t>();
  // One split, not a narrow per expert: a narrow's backward writes a zero-filled
  // [N*K, d] gradient per expert, a split's concatenates the pieces once.
  auto pieces = x_sorted.split_with_sizes(c10::IntArrayRef(cnt, E));
  torch::Tensor y_sorted;  // [N*K, d]
  if (!torch::GradMode::is_enabled()) {
    // Inference: every expert writes its rows into one buffer; those with few rows (as at
    // decode) go to the small-row kernel together, spread over exec.expert_threads().
    y_sorted = torch::empty({x_sorted.size(0), d}, xf.options());
    std::vector<ExpertJob> jobs;
    const int threads = exec.expert_threads();
    // Which experts take the kernel: by the rule for these threads, or for one where the
    // bits must not depend on them (ExecutionContext::same_bits_any_threads).
    const int64_t max_rows =
        small_rows_max_rows(exec.kernels, exec.same_bits_any_threads ? 1 : threads);
    // With several threads, the shared expert of a decode step joins the routed ones, so
    // that it runs beside them instead of before or after.
    if (shared_experts && threads > 1 &&
        shared_experts->takes_small_rows(xf, exec.kernels, max_rows, exec.bf16)) {
      y_shared = torch::empty_like(xf);
      jobs.push_back(shared_experts->small_rows_job(xf, y_shared, exec.bf16));
    }
    int64_t off = 0;
    for (int64_t e = 0; e < E; ++e) {
      if (cnt[e] == 0) continue;
      auto* mlp = experts[e]->as<MLPImpl>();
      auto out = y_sorted.narrow(0, off, cnt[e]);
      if (mlp->takes_small_rows(pieces[e], exec.kernels, max_rows, exec.bf16)) {
        jobs.push_back(mlp->small_rows_job(pieces[e], out, exec.bf16));
      } else {
        out.copy_(mlp->forward(pieces[e], exec));
      }
      off += cnt[e];
    }
    if (!jobs.empty()) swiglu_experts_small_rows(jobs, d, threads, exec);
    y_sorted.mul_(w_sorted.unsqueeze(-1));
  } else {
    std::vector<torch::Tensor> outs;
    outs.reserve(E);
    for (int64_t e = 0; e < E; ++e) {
      if (cnt[e] > 0) outs.push_back(experts[e]->as<MLPImpl>()->forward(pieces[e], exec));
    }
    if (outs.empty()) outs.push_back(torch::zeros({0, d}, xf.options()));
    y_sorted = torch::cat(outs, 0) * w_sorted.unsqueeze(-1);
  }
  return torch::zeros_like(xf).index_add(0, token_of, y_sorted);
}

torch::Tensor MoEImpl::forward(const torch::Tensor& x, torch::Tensor* load, torch::Tensor* aux_loss,
                               const ExecutionContext& exec, const torch::Tensor& forced,
                               torch::Tensor* chosen, const torch::Tensor& keep) {
  const int64_t B = x.size(0), T = x.size(1), d = x.size(2);
  const int64_t E = args_.n_routed_experts, K = args_.n_activated_experts;
  auto xf = x.reshape({B * T, d});
  auto forced_f = forced.defined() ? forced.reshape({B * T, K}) : torch::Tensor();
  if (keep.defined()) {
    xf = xf.index_select(0, keep);
    if (forced_f.defined()) forced_f = forced_f.index_select(0, keep);
  }
  Routing r = gate(xf, forced_f);  // over the N tokens that run
  if (chosen) {
    auto ids = r.indices;
    if (keep.defined())  // tokens that did not run used no expert (-1: not replayed)
      ids = torch::full({B * T, K}, -1, ids.options()).index_copy_(0, keep, ids);
    *chosen = ids.view({B, T, K}).to(torch::kInt16);
  }
  const auto& w = r.weights;

  auto flat_idx = r.indices.reshape({-1});                     // [N*K]
  auto counts = torch::bincount(flat_idx, /*weights=*/{}, E);  // [E] int64
  torch::Tensor y;                                             // [N, d]
  torch::Tensor y_shared;  // [N, d] when the shared expert ran with the routed ones
  if ((torch::GradMode::is_enabled() || exec.kernels.grouped_without_grad) &&
      exec.kernels.grouped_experts) {
    // Training: the routed experts as one grouped autograd node (grouped_experts.h).
    ExpertWeights ew;
    for (const auto& m : *experts) {
      const auto* mlp = m->as<MLPImpl>();
      ew.gate.push_back(mlp->gate_proj->weight);
      ew.up.push_back(mlp->up_proj->weight);
      ew.down.push_back(mlp->down_proj->weight);
    }
    y = grouped_experts(xf, r.indices, w, ew);
  } else {
    y = routed_per_expert(xf, r, counts, exec, &y_shared);
  }
  if (shared_experts) y = y + (y_shared.defined() ? y_shared : shared_experts(xf, exec));

  auto load_f = counts.to(torch::kFloat);
  if (load) *load = load_f;
  if (is_training() && torch::GradMode::is_enabled())
    load_accum_ = load_accum_.to(load_f.device()) + load_f;

  if (aux_loss && is_training() && args_.aux_loss_alpha > 0) {
    // Sequence-wise balance loss (V3 eq. 17-20) over each row's T_b tokens that ran:
    // f_i = E/(K T_b) * #selections of i in the row, P_i = mean over the row of the
    // normalised scores; alpha * sum_i f_i P_i, mean over the rows that have tokens.
    auto idx_opts = torch::dtype(torch::kLong).device(xf.device());
    auto row = (keep.defined() ? keep : torch::arange(B * T, idx_opts)).div(T, "floor");  // [N]
    auto n_tok = torch::bincount(row, {}, B).to(torch::kFloat);                           // [B]
    auto sel = torch::bincount((row.unsqueeze(1) * E + r.indices).reshape({-1}), {}, B * E)
                   .to(torch::kFloat)
                   .view({B, E});
    auto inv_t = 1.0 / n_tok.clamp_min(1).unsqueeze(1);                         // [B, 1]
    auto f = sel * inv_t * (static_cast<double>(E) / K);                        // [B, E]
    auto sn = r.scores / (r.scores.sum(-1, true) + 1e-20);                      // s'
    auto P = torch::zeros({B, E}, sn.options()).index_add(0, row, sn) * inv_t;  // [B, E]
    auto rows_with_tokens = (n_tok > 0).sum().clamp_min(1).to(torch::kFloat);
    *aux_loss = args_.aux_loss_alpha * (f.detach() * P).sum() / rows_with_tokens;
  }
  if (keep.defined()) y = torch::zeros({B * T, d}, y.options()).index_copy(0, keep, y);
  return y.view({B, T, d});
}

void MoEImpl::update_bias(double gamma, const torch::Tensor& load) {
  torch::NoGradGuard no_grad;
  auto l = load.defined() ? load.to(torch::kFloat) : load_accum_;
  if (gamma > 0 && gate->e_score_correction_bias.defined() && l.sum().item<double>() > 0) {
    auto err = l.mean() - l;  // > 0: under-loaded, raise its bias
    gate->e_score_correction_bias.add_(torch::sign(err) * gamma);
  }
  load_accum_ = torch::zeros_like(load_accum_);
}

// ---------------------------------------------------------------------------------
// DecoderLayer and MTPLayer

DecoderLayerImpl::DecoderLayerImpl(const ModelArgs& a, bool moe_layer) {
  input_layernorm = register_module("input_layernorm", RMSNorm(a.dim, a.norm_eps));
  if (a.attention == AttentionKind::kMLA)
    mla = register_module("self_attn", MLA(a));
  else
    gqa = register_module("self_attn", GQA(a));
  post_attention_layernorm =
      register_module("post_attention_layernorm", RMSNorm(a.dim, a.norm_eps));
  if (moe_layer)
    moe = register_module("mlp", MoE(a));
  else
    dense = register_module("mlp", MLP(a.dim, a.inter_dim));
}

torch::Tensor DecoderLayerImpl::forward(const torch::Tensor& h, const torch::Tensor& positions,
                                        const torch::Tensor& mask, KVCache* cache, int64_t layer,
                                        int64_t start_pos, AttnImpl impl,
                                        const ExecutionContext& exec, torch::Tensor* load,
                                        torch::Tensor* aux_loss, const torch::Tensor& row_pos,
                                        const torch::Tensor& forced_experts,
                                        torch::Tensor* chosen_experts, const torch::Tensor& keep) {
  auto x = input_layernorm(h);
  auto a = mla ? mla(x, positions, mask, cache, layer, start_pos, impl, exec, row_pos)
               : gqa(x, positions, mask, cache, layer, start_pos, exec, row_pos);
  auto h2 = h + a;
  if (moe) {
    return h2 + moe(post_attention_layernorm(h2), load, aux_loss, exec, forced_experts,
                    chosen_experts, keep);
  }
  if (!keep.defined()) return h2 + dense(post_attention_layernorm(h2), exec);
  // Only the tokens in `keep` (ForwardOptions::token_mask).
  const int64_t d = h2.size(-1);
  auto hk = h2.reshape({-1, d}).index_select(0, keep);
  auto y = dense(post_attention_layernorm(hk), exec).to(h2.scalar_type());
  return h2.reshape({-1, d}).index_add(0, keep, y).view(h2.sizes());
}

MTPLayerImpl::MTPLayerImpl(const ModelArgs& a, bool moe) {
  enorm = register_module("enorm", RMSNorm(a.dim, a.norm_eps));
  hnorm = register_module("hnorm", RMSNorm(a.dim, a.norm_eps));
  eh_proj = register_module("eh_proj", linear(2 * a.dim, a.dim));
  block = register_module("block", DecoderLayer(a, moe));
  auto head = register_module("shared_head", std::make_shared<torch::nn::Module>("shared_head"));
  shared_head_norm = head->register_module("norm", RMSNorm(a.dim, a.norm_eps));
}

// ---------------------------------------------------------------------------------
// Transformer

TransformerImpl::TransformerImpl(const ModelArgs& a) : TransformerImpl(a, torch::kFloat, true) {}

TransformerImpl::TransformerImpl(const ModelArgs& a, torch::Dtype dtype, bool init) : args_(a) {
  // Every parameter is created in `dtype` (tensors the modules create with an explicit
  // dtype, such as the router correction biases, keep theirs): no fp32 copy is made and
  // freed, which would leave the heap fragmented by as much again.
  std::optional<DefaultDtypeScope> scope;
  if (dtype != torch::kFloat) scope.emplace(dtype);
  embed_tokens = register_module("embed_tokens", torch::nn::Embedding(a.vocab_size, a.dim));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t l = 0; l < a.n_layers; ++l) layers->push_back(DecoderLayer(a, a.is_moe_layer(l)));
  norm = register_module("norm", RMSNorm(a.dim, a.norm_eps));
  if (!a.tie_embeddings) lm_head = register_module("lm_head", linear(a.dim, a.vocab_size));
  if (a.n_mtp_layers > 0) {
    mtp = register_module("mtp", torch::nn::ModuleList());
    for (int64_t k = 0; k < a.n_mtp_layers; ++k)
      mtp->push_back(MTPLayer(a, a.is_moe_layer(a.n_layers + k)));
  }
  scope.reset();
  if (init) init_weights(0);
}

int64_t TransformerImpl::n_moe_layers() const {
  int64_t n = 0;
  for (int64_t l = 0; l < args_.n_layers; ++l) n += args_.is_moe_layer(l);
  return n;
}

void TransformerImpl::init_weights(uint64_t seed) {
  torch::NoGradGuard no_grad;
  auto gen = at::detail::createCPUGenerator(seed);
  const double std = 0.02, out_std = 0.02 / std::sqrt(2.0 * args_.n_layers);
  for (auto& item : named_parameters()) {
    const std::string& name = item.key();
    auto& p = item.value();
    const bool is_norm = name.find("norm") != std::string::npos;
    const bool is_bias = name.size() >= 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
    if (is_norm) {
      p.fill_(1.0);
    } else if (is_bias) {
      p.zero_();
    } else {
      const bool out_proj =
          name.find("o_proj") != std::string::npos || name.find("down_proj") != std::string::npos;
      auto w = torch::empty(p.sizes(), torch::kFloat);
      w.normal_(0.0, out_proj ? out_std : std, gen);
      p.copy_(w);
    }
  }
  for (auto& b : named_buffers()) b.value().zero_();
}

torch::Tensor TransformerImpl::output_weight() const {
  return args_.tie_embeddings ? embed_tokens->weight : lm_head->weight;
}

torch::Tensor TransformerImpl::run_layers(torch::Tensor h, const torch::Tensor& positions,
                                          const torch::Tensor& mask, const ForwardOptions& opts,
                                          ForwardOutput* out) {
  std::vector<torch::Tensor> loads, used;
  torch::Tensor aux = torch::zeros({}, torch::dtype(torch::kFloat).device(h.device()));
  int64_t moe_layer = 0;
  // The flat indices of the real tokens, when some positions are padding.
  torch::Tensor keep;
  if (opts.token_mask.defined()) {
    const int64_t N = h.size(0) * h.size(1);
    TORCH_CHECK(opts.token_mask.numel() == N, "ForwardOptions::token_mask must be [B, T] = [",
                h.size(0), ", ", h.size(1), "], got ", opts.token_mask.sizes());
    auto real = opts.token_mask.reshape({N}).to(h.device()) != 0;
    if (!real.all().item<bool>()) keep = real.nonzero().squeeze(1);
  }
  for (int64_t l = 0; l < args_.n_layers; ++l) {
    auto* layer = layers[l]->as<DecoderLayerImpl>();
    torch::Tensor load, layer_aux, forced, chosen;
    const bool is_moe = static_cast<bool>(layer->moe);
    if (is_moe && opts.replay_experts.defined())
      forced = opts.replay_experts.select(2, moe_layer);  // [B, T, K]
    h = layer->forward(h, positions, mask, opts.cache, l, opts.start_pos, opts.attn_impl,
                       opts.execution, &load, &layer_aux, opts.row_positions, forced,
                       is_moe && opts.record_experts ? &chosen : nullptr, keep);
    if (load.defined()) loads.push_back(load);
    if (layer_aux.defined()) aux = aux + layer_aux;
    if (chosen.defined()) used.push_back(chosen);
    moe_layer += is_moe;
  }
  if (out && !used.empty()) out->experts = torch::stack(used, 2);  // [B, T, L, K]
  if (out) {
    out->aux_loss = aux;
    out->expert_load = loads.empty()
                           ? torch::zeros({0, std::max<int64_t>(args_.n_routed_experts, 0)})
                           : torch::stack(loads);
  }
  return h;
}

ForwardOutput TransformerImpl::forward(const torch::Tensor& ids, const ForwardOptions& opts) {
  TORCH_CHECK(ids.dim() == 2, "ids must be [B, T], got ", ids.sizes());
  TORCH_CHECK(
      opts.execution.decode_threads >= 1 && opts.execution.decode_threads <= kMaxDecodeThreads,
      "ForwardOptions::execution.decode_threads must be in [1, ", kMaxDecodeThreads, "], got ",
      opts.execution.decode_threads);
  const int64_t B = ids.size(0), T = ids.size(1);
  if (opts.replay_experts.defined())
    TORCH_CHECK(
        opts.replay_experts.dim() == 4 && opts.replay_experts.size(0) == B &&
            opts.replay_experts.size(1) == T && opts.replay_experts.size(2) == n_moe_layers() &&
            opts.replay_experts.size(3) == args_.n_activated_experts,
        "ForwardOptions::replay_experts must be [B, T, n_moe_layers, K] = [", B, ", ", T, ", ",
        n_moe_layers(), ", ", args_.n_activated_experts, "], got ", opts.replay_experts.sizes());
  if (opts.replay_experts.defined() && opts.replay_experts.numel() > 0)
    TORCH_CHECK(opts.replay_experts.max().item<int64_t>() < args_.n_routed_experts,
                "ForwardOptions::replay_experts: an expert id >= n_routed_experts (",
                args_.n_routed_experts, ")");
  auto dev = ids.device();
  torch::Tensor positions = opts.positions;
  torch::Tensor mask;
  if (opts.row_positions.defined()) {
    // Per-row decode: row b is at row_positions[b] and sees keys [0, row_positions[b]].
    TORCH_CHECK(T == 1 && opts.cache, "row_positions needs a cache and T == 1");
    auto rp = opts.row_positions.to(dev, torch::kLong);
    auto keys = torch::arange(opts.start_pos + 1, rp.options());
    positions = rp.view({B, 1});
    mask = (keys.unsqueeze(0) <= rp.unsqueeze(1)).view({B, 1, 1, opts.start_pos + 1});
    ForwardOptions o = opts;
    o.row_positions = rp;
    return forward_impl(ids, positions, mask, o);
  }
  if (!positions.defined())
    positions =
        torch::arange(opts.start_pos, opts.start_pos + T, torch::dtype(torch::kLong).device(dev))
            .unsqueeze(0)
            .expand({B, T});
  if (opts.attn_mask.defined()) {
    TORCH_CHECK(opts.attn_mask.dim() == 3, "attn_mask must be [B, T, S]");
    mask = opts.attn_mask.unsqueeze(1);
  } else if (T > 1) {
    mask = causal_mask(T, opts.start_pos, dev);
  }
  return forward_impl(ids, positions, mask, opts);
}

ForwardOutput TransformerImpl::forward_impl(const torch::Tensor& ids,
                                            const torch::Tensor& positions,
                                            const torch::Tensor& mask, const ForwardOptions& opts) {
  ForwardOutput out;
  auto h = run_layers(embed_tokens(ids), positions, mask, opts, &out);
  out.last_hidden = h;
  out.hidden = norm(h);
  if (opts.compute_logits)
    out.logits = decode_linear(out.hidden, output_weight(), {}, opts.execution).to(torch::kFloat);
  return out;
}

std::vector<torch::Tensor> TransformerImpl::mtp_logits(const torch::Tensor& ids,
                                                       const torch::Tensor& last_hidden,
                                                       torch::Tensor* aux_loss) {
  std::vector<torch::Tensor> result;
  if (!mtp) return result;
  const int64_t B = ids.size(0), T = ids.size(1);
  auto h = last_hidden;  // h^{k-1}, [B, T-k+1, d]
  for (int64_t k = 1; k <= args_.n_mtp_layers && T - k > 0; ++k) {
    auto* layer = mtp[k - 1]->as<MTPLayerImpl>();
    const int64_t Tk = T - k;
    auto emb = embed_tokens(ids.narrow(1, k, Tk));  // Emb(t_{i+k})
    auto hp = layer->eh_proj(torch::cat({layer->enorm(emb), layer->hnorm(h.narrow(1, 0, Tk))}, -1));
    auto positions = torch::arange(Tk, torch::dtype(torch::kLong).device(ids.device()))
                         .unsqueeze(0)
                         .expand({B, Tk});
    torch::Tensor load, aux;
    h = layer->block(hp, positions, Tk > 1 ? causal_mask(Tk, 0, ids.device()) : torch::Tensor(),
                     nullptr, 0, 0, AttnImpl::kNaive, ExecutionContext{}, &load, &aux);
    if (aux_loss && aux.defined()) *aux_loss = aux_loss->defined() ? *aux_loss + aux : aux;
    result.push_back(
        torch::matmul(layer->shared_head_norm(h), output_weight().t()).to(torch::kFloat));
  }
  return result;
}

torch::Tensor TransformerImpl::mtp_loss(const torch::Tensor& ids, const torch::Tensor& last_hidden,
                                        const torch::Tensor& loss_mask) {
  torch::Tensor aux;
  auto logits = mtp_logits(ids, last_hidden, &aux);
  auto total = torch::zeros({}, torch::dtype(torch::kFloat).device(ids.device()));
  if (logits.empty()) return total;
  const int64_t T = ids.size(1);
  for (size_t i = 0; i < logits.size(); ++i) {
    const int64_t k = static_cast<int64_t>(i) + 1, n = T - k - 1;  // rows with a target
    if (n <= 0) continue;
    auto lg = logits[i].narrow(1, 0, n);  // [B, n, V]
    auto tgt = ids.narrow(1, k + 1, n);   // [B, n]
    auto nll = F::cross_entropy(lg.reshape({-1, lg.size(-1)}), tgt.reshape({-1}),
                                F::CrossEntropyFuncOptions().reduction(torch::kNone))
                   .view(tgt.sizes());
    if (loss_mask.defined()) {
      auto m = loss_mask.narrow(1, k + 1, n).to(torch::kFloat);
      total = total + (nll * m).sum() / m.sum().clamp_min(1.0);
    } else {
      total = total + nll.mean();
    }
  }
  total = total * (args_.mtp_lambda / args_.n_mtp_layers);
  // The MTP blocks' own balance loss (their experts route like the main ones).
  return aux.defined() ? total + aux : total;
}

void TransformerImpl::update_expert_bias(double gamma) {
  for (int64_t l = 0; l < args_.n_layers; ++l) {
    auto* layer = layers[l]->as<DecoderLayerImpl>();
    if (layer->moe) layer->moe->update_bias(gamma);
  }
  if (mtp)  // MTP blocks balance their own experts the same way
    for (const auto& m : *mtp) {
      auto* block = m->as<MTPLayerImpl>()->block.get();
      if (block->moe) block->moe->update_bias(gamma);
    }
}

torch::Tensor TransformerImpl::accumulated_expert_load() const {
  std::vector<torch::Tensor> loads;
  for (const auto& m : *layers) {
    auto* layer = m->as<DecoderLayerImpl>();
    if (layer->moe) loads.push_back(layer->moe->accumulated_load());
  }
  if (loads.empty()) return torch::zeros({0, 0});
  return torch::stack(loads);
}

}  // namespace r1kit::policy
