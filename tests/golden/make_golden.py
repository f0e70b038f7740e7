#!/usr/bin/python3
"""Independent fp64 reference implementation that writes golden-logit fixtures.

Run with Debian's interpreter (torch 1.13 + numpy):  /usr/bin/python3 tests/golden/make_golden.py

Written from the DeepSeek-V2/V3 papers and the public reference code: DeepSeek-V3's
inference/model.py ([DS3]), the Hugging Face DeepSeek-V2 modeling_deepseek.py ([HFV2]),
transformers' Qwen2/Qwen3 ([HF-Q3])/Qwen3-MoE ([HF-Q3M])/Llama modeling files, its
modeling_rope_utils.py ([HF-RoPE]: the yarn and llama3 rope types) and the safetensors format
(docs/model.md summarises all of them); NOT from the r1kit C++ code, so it can check that code
independently.  Writes, for each model,
tests/testdata/golden/<name>/{config.json, model.safetensors, expected.json}.
Weights are stored as float32; all maths here runs in float64 on those exact fp32 values.

Conventions implemented (also written into each expected.json "notes"):
  * Positions start at 0.  Causal mask.  Softmax in fp64.
  * RMSNorm: x * rsqrt(mean(x^2) + eps) * weight.
  * Pre-norm blocks: h += attn(input_layernorm(h)); h += mlp(post_attention_layernorm(h));
    logits = lm_head(model.norm(h))  (tied models: logits = model.norm(h) @ embed_tokens^T).
  * DeepSeek RoPE (DeepSeek-V2 §2.1.3, [DS3]): interleaved pairs (2i, 2i+1) of the d_r rope
    slice rotated by pos*freq_i (== HF's view/transpose + rotate_half; the q.k products are
    identical).
    Qwen2/Llama RoPE: half-split rotate_half, pair (i, i+hd/2), over the full head_dim.
  * YaRN ([HFV2] behaviour): applied whenever rope_scaling is present; correction range from
    original_max_position_embeddings; cos/sin scaled by m(mscale)/m(mscale_all_dim);
    m(s) = 0.1*s*ln(factor)+1.  Softmax scale = d_qk^-0.5 * m(mscale_all_dim)^2 ([HFV2] rule).
  * MLA (DeepSeek-V2 §2.1) naive path; the absorbed path is also computed and asserted
    equal (1e-10).
  * MoE gate (DeepSeek-V3 §2.1.2, [DS3] Gate): V3 = sigmoid, s = scores +
    e_score_correction_bias (selection only), group score = sum of top-2 of s, keep
    topk_group groups, others -inf, top-k on masked s, w = scores[idx] / sum *
    routed_scaling_factor.  V2 (HFV2 rule) = softmax, greedy top-k,
    norm_topk_prob false => w = scores[idx] * routed_scaling_factor.
    Experts/shared/dense MLP: down(silu(gate(x)) * up(x)); shared inter = n_shared*moe_inter.
  * MTP (DeepSeek-V3 §2.2, depth 1): for i in 0..T-2,
    h'_i = eh_proj(cat[enorm(embed(t_{i+1})), hnorm(h_i)]) (embedding half first, as
    vLLM/SGLang), h_i = main model's last hidden state BEFORE model.norm; the MTP decoder
    block (layer index num_hidden_layers, MoE) runs causally over h'_{0..T-2} with rope
    positions 0..T-2; mtp_logits_i = shared_head.head(shared_head.norm(.)) predicts t_{i+2}.
    T-1 rows.
  * Qwen3 ([HF-Q3]): q_norm / k_norm, RMSNorm over each head's head_dim before RoPE; head_dim
    from config.  Qwen3-MoE ([HF-Q3M]): softmax gate over all experts, top-k, renormalised
    when norm_topk_prob, no shared expert; MoE layers from mlp_only_layers/decoder_sparse_step.
  * GQA rope_scaling ([HF-RoPE]): llama3 and yarn (see gqa_rope_freqs).

  --big DIR [--vocab V] [--layers L] [--dtype bf16|f32] writes instead a random Qwen3
  checkpoint of Qwen3-0.6B's shape (hidden 1024, 28 layers, 16 q / 8 kv heads x 128,
  SwiGLU 3072, tied) with vocabulary V (default 65536: ~0.5B parameters), tensor by tensor,
  for the loading-memory benchmark (bench/load_memory.sh); no logits.
"""
import json
import math
import struct
from pathlib import Path

import torch
import torch.nn.functional as F

DT = torch.float64
OUT_DIR = Path(__file__).resolve().parents[1] / "testdata" / "golden"


# ----------------------------------------------------------------------------- safetensors format
def write_safetensors_streaming(path, shapes, make, dtype):
    """Like write_safetensors, but tensors come one at a time from make(name) and are stored as
    `dtype` ("BF16" or "F32"), so a large checkpoint never sits in memory whole."""
    size = {"BF16": 2, "F32": 4}[dtype]
    header, off = {"__metadata__": {"format": "pt"}}, 0
    for name in sorted(shapes):
        n = size * math.prod(shapes[name])
        header[name] = {"dtype": dtype, "shape": list(shapes[name]), "data_offsets": [off, off + n]}
        off += n
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for name in sorted(shapes):
            t = make(name).contiguous()
            if dtype == "BF16":
                f.write(t.to(torch.bfloat16).view(torch.int16).numpy().astype("<i2").tobytes())
            else:
                f.write(t.to(torch.float32).numpy().astype("<f4").tobytes())


def write_big_qwen3(out, vocab, layers, dtype):
    """A random Qwen3-0.6B-shaped checkpoint (see the module docstring); weights N(0, 0.02)."""
    d, H, Hkv, hd, inter = 1024, 16, 8, 128, 3072
    cfg = dict(architectures=["Qwen3ForCausalLM"], model_type="qwen3", vocab_size=vocab,
               hidden_size=d, intermediate_size=inter, num_hidden_layers=layers,
               num_attention_heads=H, num_key_value_heads=Hkv, head_dim=hd, hidden_act="silu",
               rms_norm_eps=1e-6, rope_theta=1000000.0, rope_scaling=None,
               max_position_embeddings=40960, tie_word_embeddings=True, attention_bias=False,
               use_sliding_window=False, sliding_window=None, max_window_layers=layers,
               bos_token_id=0, eos_token_id=1,
               torch_dtype="bfloat16" if dtype == "BF16" else "float32")
    shapes = {"model.embed_tokens.weight": (vocab, d), "model.norm.weight": (d,)}
    for i in range(layers):
        p = f"model.layers.{i}."
        shapes.update({p + "input_layernorm.weight": (d,), p + "post_attention_layernorm.weight": (d,),
                       p + "self_attn.q_proj.weight": (H * hd, d),
                       p + "self_attn.k_proj.weight": (Hkv * hd, d),
                       p + "self_attn.v_proj.weight": (Hkv * hd, d),
                       p + "self_attn.o_proj.weight": (d, H * hd),
                       p + "self_attn.q_norm.weight": (hd,), p + "self_attn.k_norm.weight": (hd,),
                       p + "mlp.gate_proj.weight": (inter, d), p + "mlp.up_proj.weight": (inter, d),
                       p + "mlp.down_proj.weight": (d, inter)})
    g = torch.Generator().manual_seed(1)

    def make(name):
        if name.endswith("norm.weight"):
            return torch.ones(shapes[name])
        return torch.randn(*shapes[name], generator=g) * 0.02

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    write_safetensors_streaming(out / "model.safetensors", shapes, make, dtype)
    n = sum(math.prod(s) for s in shapes.values())
    print(f"wrote {out}: {n / 1e6:.1f}M parameters, {(out / 'model.safetensors').stat().st_size} B")


def write_safetensors(path, tensors):
    """8-byte LE header length, JSON header (dtype/shape/data_offsets), spaces to a multiple of 8."""
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(tensors):
        b = tensors[name].to(torch.float32).contiguous().numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * (-len(h) % 8)
    Path(path).write_bytes(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def read_safetensors(path):
    """Round-trip check of the writer."""
    data = Path(path).read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    buf = data[8 + n:]
    out = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        t = torch.frombuffer(bytearray(buf[b:end]), dtype=torch.float32)
        out[name] = t.reshape(e["shape"]) if e["shape"] else t.reshape(())
    return out


# ----------------------------------------------------------------------------- weights
class Weights:
    """Seeded fp32 random weights; .f32 is what is saved, .P the fp64 copies used for maths."""

    def __init__(self, seed):
        self.g = torch.Generator().manual_seed(seed)
        self.f32 = {}

    def randn(self, *shape):
        return torch.randn(*shape, generator=self.g, dtype=torch.float32)

    def linear(self, name, out, inp, std=None, bias=False):
        self.f32[name + ".weight"] = self.randn(out, inp) * (std or min(0.2, 1.0 / math.sqrt(inp)))
        if bias:
            self.f32[name + ".bias"] = self.randn(out) * 0.1

    def norm(self, name, dim):
        self.f32[name + ".weight"] = 1.0 + 0.1 * self.randn(dim)

    def vector(self, name, dim, std):
        self.f32[name] = self.randn(dim) * std

    def mlp(self, prefix, d, inter):
        self.linear(prefix + "gate_proj", inter, d)
        self.linear(prefix + "up_proj", inter, d)
        self.linear(prefix + "down_proj", d, inter)

    @property
    def P(self):
        return {k: v.to(DT) for k, v in self.f32.items()}


# ----------------------------------------------------------------------------- basic ops
def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def linear(x, P, name):
    y = x @ P[name + ".weight"].T
    return y + P[name + ".bias"] if name + ".bias" in P else y


def swiglu(x, P, prefix):
    """down(silu(gate(x)) * up(x))  (SwiGLU experts, [DS3] Expert)."""
    return linear(F.silu(linear(x, P, prefix + "gate_proj")) * linear(x, P, prefix + "up_proj"),
                  P, prefix + "down_proj")


def causal_softmax(scores):
    """scores [..., S, T]; causal triu(-inf) mask, softmax over T."""
    S, T = scores.shape[-2:]
    mask = torch.ones(S, T, dtype=torch.bool).triu(1)
    return torch.softmax(scores.masked_fill(mask, float("-inf")), dim=-1)


# ----------------------------------------------------------------------------- RoPE / YaRN
def yarn_m(factor, mscale):
    return 1.0 if factor <= 1 else 0.1 * mscale * math.log(factor) + 1.0


def rope_freqs(dim, theta, rope_scaling):
    """Returns (freq_i for i < dim/2, cos/sin multiplier). YaRN always applied if configured (HF)."""
    freqs = theta ** (-torch.arange(0, dim, 2, dtype=DT) / dim)
    if not rope_scaling:
        return freqs, 1.0
    rs = rope_scaling
    factor, L0 = rs["factor"], rs["original_max_position_embeddings"]

    def corr(n):
        return dim * math.log(L0 / (2 * math.pi * n)) / (2 * math.log(theta))

    low = max(math.floor(corr(rs["beta_fast"])), 0)
    high = min(math.ceil(corr(rs["beta_slow"])), dim - 1)
    if low == high:
        high += 0.001  # linear_ramp_factor guard ([DS3]/[HFV2])
    ramp = ((torch.arange(dim // 2, dtype=DT) - low) / (high - low)).clamp(0, 1)
    smooth = 1 - ramp
    freqs = freqs / factor * (1 - smooth) + freqs * smooth
    return freqs, yarn_m(factor, rs["mscale"]) / yarn_m(factor, rs["mscale_all_dim"])


def rope_interleaved(x, freqs, mscale):
    """DeepSeek: x [..., T, d]; pairs (2i, 2i+1) rotated by pos*freq_i, pos = 0..T-1."""
    T = x.shape[-2]
    ang = torch.arange(T, dtype=DT)[:, None] * freqs[None, :]
    cos, sin = torch.cos(ang) * mscale, torch.sin(ang) * mscale
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1).flatten(-2)


def rope_half(x, freqs, attention_factor=1.0):
    """Qwen2/Qwen3/Llama: x [..., T, d]; pairs (i, i+d/2) rotated by pos*freq_i (rotate_half);
    cos/sin multiplied by the rope type's attention factor ([HF-RoPE])."""
    T = x.shape[-2]
    ang = torch.arange(T, dtype=DT)[:, None] * freqs[None, :]
    cos = torch.cos(ang).repeat(1, 2) * attention_factor
    sin = torch.sin(ang).repeat(1, 2) * attention_factor
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat([-x2, x1], dim=-1) * sin


def gqa_rope_freqs(cfg, dim):
    """[HF-RoPE] for the GQA families: (inv_freq [dim/2], attention factor on cos/sin).
    default: theta^(-2i/dim), factor 1.
    llama3 (_compute_llama3_parameters): wavelen = 2 pi / f; wavelen < L0/high_freq_factor keeps
      f, wavelen > L0/low_freq_factor gives f/factor, between: (1-s) f/factor + s f with
      s = (L0/wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor); factor 1.
    yarn (_compute_yarn_parameters, no mscale keys): the NTK-by-parts ramp over
      [low, high] = [max(floor(corr(beta_fast)), 0), min(ceil(corr(beta_slow)), dim-1)],
      corr(n) = dim ln(L0 / (2 pi n)) / (2 ln theta), f' = f/factor * ramp + f * (1 - ramp);
      attention factor 0.1 ln(factor) + 1."""
    theta = cfg["rope_theta"]
    freqs = theta ** (-torch.arange(0, dim, 2, dtype=DT) / dim)
    rs = cfg.get("rope_scaling")
    kind = (rs or {}).get("rope_type", "default")
    if kind == "default":
        return freqs, 1.0
    factor, L0 = rs["factor"], rs["original_max_position_embeddings"]
    if kind == "llama3":
        lo, hi = rs["low_freq_factor"], rs["high_freq_factor"]
        out = []
        for f in freqs.tolist():
            wavelen = 2 * math.pi / f
            if wavelen < L0 / hi:
                out.append(f)
            elif wavelen > L0 / lo:
                out.append(f / factor)
            else:
                s = (L0 / wavelen - lo) / (hi - lo)
                out.append((1 - s) * f / factor + s * f)
        return torch.tensor(out, dtype=DT), 1.0
    assert kind == "yarn", kind
    assert factor * L0 == cfg["max_position_embeddings"]   # every transformers version agrees
    low = max(math.floor(dim * math.log(L0 / (2 * math.pi * rs.get("beta_fast", 32)))
                         / (2 * math.log(theta))), 0)
    high = min(math.ceil(dim * math.log(L0 / (2 * math.pi * rs.get("beta_slow", 1)))
                         / (2 * math.log(theta))), dim - 1)
    if low == high:
        high += 0.001
    ramp = ((torch.arange(dim // 2, dtype=DT) - low) / (high - low)).clamp(0, 1)
    return freqs / factor * ramp + freqs * (1 - ramp), 0.1 * math.log(factor) + 1.0


# ----------------------------------------------------------------------------- MLA
def mla_softmax_scale(cfg):
    """[HFV2]: d_qk^-0.5 * m(mscale_all_dim)^2 when rope_scaling has a non-zero mscale_all_dim."""
    scale = (cfg["qk_nope_head_dim"] + cfg["qk_rope_head_dim"]) ** -0.5
    rs = cfg.get("rope_scaling")
    if rs and rs.get("mscale_all_dim"):
        scale *= yarn_m(rs["factor"], rs["mscale_all_dim"]) ** 2
    return scale


def mla_attention(x, P, p, cfg):
    """x [T, d] -> [T, d].  Naive path (returned) and absorbed path (asserted equal), V2 §2.1."""
    T, H = x.shape[0], cfg["num_attention_heads"]
    dn, dr, dv, dc = (cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"],
                      cfg["kv_lora_rank"])
    eps = cfg["rms_norm_eps"]
    freqs, msc = rope_freqs(dr, cfg["rope_theta"], cfg.get("rope_scaling"))
    scale = mla_softmax_scale(cfg)

    if cfg.get("q_lora_rank"):
        q = linear(rms_norm(linear(x, P, p + "q_a_proj"), P[p + "q_a_layernorm.weight"], eps),
                   P, p + "q_b_proj")
    else:
        q = linear(x, P, p + "q_proj")
    q = q.view(T, H, dn + dr).transpose(0, 1)                       # [H, T, d_qk], head-major rows
    q_nope, q_pe = q.split([dn, dr], dim=-1)
    q_pe = rope_interleaved(q_pe, freqs, msc)                        # per head

    c_kv, k_pe = linear(x, P, p + "kv_a_proj_with_mqa").split([dc, dr], dim=-1)
    c_kv = rms_norm(c_kv, P[p + "kv_a_layernorm.weight"], eps)       # no norm on k_pe
    k_pe = rope_interleaved(k_pe, freqs, msc)                        # [T, dr], one shared head
    wkv_b = P[p + "kv_b_proj.weight"].view(H, dn + dv, dc)           # per head [W_UK ; W_UV]
    w_uk, w_uv = wkv_b[:, :dn], wkv_b[:, dn:]

    # naive: k = [k_nope ; k_pe broadcast to all heads], v from wkv_b
    k_nope = torch.einsum("tc,hdc->htd", c_kv, w_uk)
    v = torch.einsum("tc,hdc->htd", c_kv, w_uv)
    k = torch.cat([k_nope, k_pe.expand(H, T, dr)], dim=-1)
    probs = causal_softmax(torch.cat([q_nope, q_pe], -1) @ k.transpose(-1, -2) * scale)
    o_naive = (probs @ v).transpose(0, 1).reshape(T, H * dv)

    # absorbed: only c_kv and k_pe are "cached"
    q_lat = torch.einsum("hsd,hdc->hsc", q_nope, w_uk)
    probs_a = causal_softmax((q_lat @ c_kv.T + q_pe @ k_pe.T) * scale)
    o_lat = probs_a @ c_kv                                           # [H, T, d_c]
    o_abs = torch.einsum("hsc,hdc->shd", o_lat, w_uv).reshape(T, H * dv)
    err = (o_naive - o_abs).abs().max().item()
    assert err < 1e-10, f"MLA naive vs absorbed mismatch {err}"

    return linear(o_naive, P, p + "o_proj")


# ----------------------------------------------------------------------------- GQA (Qwen2/Qwen3/Llama)
def is_qwen3(cfg):
    return cfg["model_type"] in ("qwen3", "qwen3_moe")


def gqa_attention(x, P, p, cfg):
    """Qwen3 adds q_norm / k_norm: RMSNorm over each head's head_dim, before RoPE."""
    T, H, Hkv = x.shape[0], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim") or cfg["hidden_size"] // H
    eps = cfg["rms_norm_eps"]
    freqs, af = gqa_rope_freqs(cfg, hd)
    q = linear(x, P, p + "q_proj").view(T, H, hd)
    k = linear(x, P, p + "k_proj").view(T, Hkv, hd)
    if is_qwen3(cfg):
        q, k = rms_norm(q, P[p + "q_norm.weight"], eps), rms_norm(k, P[p + "k_norm.weight"], eps)
    q = rope_half(q.transpose(0, 1), freqs, af)
    k = rope_half(k.transpose(0, 1), freqs, af)
    v = linear(x, P, p + "v_proj").view(T, Hkv, hd).transpose(0, 1)
    k, v = k.repeat_interleave(H // Hkv, 0), v.repeat_interleave(H // Hkv, 0)  # repeat_kv
    probs = causal_softmax(q @ k.transpose(-1, -2) * hd ** -0.5)
    return linear((probs @ v).transpose(0, 1).reshape(T, H * hd), P, p + "o_proj")


# ----------------------------------------------------------------------------- MoE
def moe_route(x, P, p, cfg, use_bias=True, use_groups=True):
    """Returns (idx [T,k], weights [T,k], masked selection score s [T,N]).  [DS3] Gate."""
    N, k = cfg["n_routed_experts"], cfg["num_experts_per_tok"]
    logits = linear(x, P, p + "gate")
    if cfg["scoring_func"] == "sigmoid":
        scores = torch.sigmoid(logits)
    else:
        scores = torch.softmax(logits, dim=-1)
    bias = P.get(p + "gate.e_score_correction_bias")
    s = scores + bias if (bias is not None and use_bias) else scores   # bias: selection only
    G = cfg.get("n_group") or 1
    if G > 1 and use_groups:
        gs = s.view(-1, G, N // G)
        group_score = gs.topk(2, -1).values.sum(-1) if bias is not None else gs.amax(-1)
        keep = group_score.topk(cfg["topk_group"], -1).indices
        gmask = torch.zeros_like(group_score, dtype=torch.bool).scatter(1, keep, True)
        s = s.masked_fill(~gmask.repeat_interleave(N // G, dim=1), float("-inf"))
    idx = s.topk(k, -1).indices
    w = scores.gather(1, idx)
    rsf = cfg["routed_scaling_factor"]
    if cfg["model_type"] == "deepseek_v2":       # HFV2: normalize XOR scale
        w = w / w.sum(-1, keepdim=True) if (k > 1 and cfg["norm_topk_prob"]) else w * rsf
    else:                                        # HFV3/DS3: (normalize) then always scale
        if cfg["norm_topk_prob"]:
            w = w / w.sum(-1, keepdim=True)
        w = w * rsf
    return idx, w, s


def moe(x, P, p, cfg, trace):
    idx, w, s = moe_route(x, P, p, cfg)
    trace[p] = {"idx": idx, "s": s, "x": x}
    y = swiglu(x, P, p + "shared_experts.") if cfg.get("n_shared_experts") else torch.zeros_like(x)
    for t in range(x.shape[0]):
        for j in range(idx.shape[1]):
            y[t] += w[t, j] * swiglu(x[t], P, f"{p}experts.{int(idx[t, j])}.")
    return y


def qwen3_moe_route(x, P, p, cfg):
    """[HF-Q3M] Qwen3MoeSparseMoeBlock: softmax over all experts, top-k, renormalised to sum 1
    when norm_topk_prob; no shared expert, no scaling.  Returns (idx, w, probs)."""
    probs = torch.softmax(linear(x, P, p + "gate"), dim=-1)
    w, idx = probs.topk(cfg["num_experts_per_tok"], dim=-1)
    if cfg["norm_topk_prob"]:
        w = w / w.sum(-1, keepdim=True)
    return idx, w, probs


def qwen3_moe(x, P, p, cfg, trace):
    idx, w, probs = qwen3_moe_route(x, P, p, cfg)
    trace[p] = {"idx": idx, "s": probs, "x": x}
    y = torch.zeros_like(x)
    for t in range(x.shape[0]):
        for j in range(idx.shape[1]):
            y[t] += w[t, j] * swiglu(x[t], P, f"{p}experts.{int(idx[t, j])}.")
    return y


def is_qwen3_moe_layer(cfg, i):
    """[HF-Q3M]: MoE unless listed in mlp_only_layers, when (i+1) % decoder_sparse_step == 0."""
    return (cfg["model_type"] == "qwen3_moe" and i not in (cfg.get("mlp_only_layers") or [])
            and cfg["num_experts"] > 0 and (i + 1) % cfg["decoder_sparse_step"] == 0)


# ----------------------------------------------------------------------------- blocks / model
def is_deepseek(cfg):
    return cfg["model_type"].startswith("deepseek")


def decoder_layer(h, P, i, cfg, trace):
    p = f"model.layers.{i}."
    eps = cfg["rms_norm_eps"]
    attn = mla_attention if is_deepseek(cfg) else gqa_attention
    h = h + attn(rms_norm(h, P[p + "input_layernorm.weight"], eps), P, p + "self_attn.", cfg)
    x = rms_norm(h, P[p + "post_attention_layernorm.weight"], eps)
    if is_deepseek(cfg) and i >= cfg["first_k_dense_replace"] and i % cfg["moe_layer_freq"] == 0:
        return h + moe(x, P, p + "mlp.", cfg, trace)
    if is_qwen3_moe_layer(cfg, i):
        return h + qwen3_moe(x, P, p + "mlp.", cfg, trace)
    return h + swiglu(x, P, p + "mlp.")


def forward(cfg, P, ids, trace):
    """Returns (logits [T,V], last hidden state before model.norm [T,d])."""
    h = P["model.embed_tokens.weight"][ids]
    for i in range(cfg["num_hidden_layers"]):
        h = decoder_layer(h, P, i, cfg, trace)
    head = P["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else P["lm_head.weight"]
    return rms_norm(h, P["model.norm.weight"], cfg["rms_norm_eps"]) @ head.T, h


def mtp_forward(cfg, P, ids, h_main, trace):
    """DeepSeek-V3 §2.2, depth 1: rows i = 0..T-2 predict t_{i+2}."""
    L, eps = cfg["num_hidden_layers"], cfg["rms_norm_eps"]
    p = f"model.layers.{L}."
    emb = P[p + "embed_tokens.weight"][ids[1:]]
    hp = linear(torch.cat([rms_norm(emb, P[p + "enorm.weight"], eps),
                           rms_norm(h_main[:-1], P[p + "hnorm.weight"], eps)], dim=-1),
                P, p + "eh_proj")
    out = decoder_layer(hp, P, L, cfg, trace)
    return rms_norm(out, P[p + "shared_head.norm.weight"], eps) @ P[p + "shared_head.head.weight"].T


# ----------------------------------------------------------------------------- weight init per family
def init_deepseek(cfg, seed):
    W = Weights(seed)
    d, V, H = cfg["hidden_size"], cfg["vocab_size"], cfg["num_attention_heads"]
    dn, dr, dv, dc = (cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"],
                      cfg["kv_lora_rank"])
    W.f32["model.embed_tokens.weight"] = W.randn(V, d) * 0.5
    W.norm("model.norm", d)
    W.linear("lm_head", V, d, std=0.15)
    n_layers = cfg["num_hidden_layers"] + (cfg.get("num_nextn_predict_layers") or 0)
    for i in range(n_layers):
        p = f"model.layers.{i}."
        W.norm(p + "input_layernorm", d)
        W.norm(p + "post_attention_layernorm", d)
        a = p + "self_attn."
        if cfg.get("q_lora_rank"):
            W.linear(a + "q_a_proj", cfg["q_lora_rank"], d)
            W.norm(a + "q_a_layernorm", cfg["q_lora_rank"])
            W.linear(a + "q_b_proj", H * (dn + dr), cfg["q_lora_rank"])
        else:
            W.linear(a + "q_proj", H * (dn + dr), d)
        W.linear(a + "kv_a_proj_with_mqa", dc + dr, d)
        W.norm(a + "kv_a_layernorm", dc)
        W.linear(a + "kv_b_proj", H * (dn + dv), dc)
        W.linear(a + "o_proj", d, H * dv)
        m = p + "mlp."
        if i < cfg["first_k_dense_replace"]:
            W.mlp(m, d, cfg["intermediate_size"])
        else:
            W.linear(m + "gate", cfg["n_routed_experts"], d, std=0.15)
            if cfg["topk_method"] == "noaux_tc":
                W.vector(m + "gate.e_score_correction_bias", cfg["n_routed_experts"], 0.1)
            for e in range(cfg["n_routed_experts"]):
                W.mlp(f"{m}experts.{e}.", d, cfg["moe_intermediate_size"])
            if cfg.get("n_shared_experts"):
                W.mlp(m + "shared_experts.", d, cfg["n_shared_experts"] * cfg["moe_intermediate_size"])
        if i >= cfg["num_hidden_layers"]:   # MTP extras; embed/head are copies (as in the V3 release)
            W.norm(p + "enorm", d)
            W.norm(p + "hnorm", d)
            W.linear(p + "eh_proj", d, 2 * d)
            W.norm(p + "shared_head.norm", d)
            W.f32[p + "embed_tokens.weight"] = W.f32["model.embed_tokens.weight"].clone()
            W.f32[p + "shared_head.head.weight"] = W.f32["lm_head.weight"].clone()
    return W


def init_dense(cfg, seed, qkv_bias):
    W = Weights(seed)
    d, V, H, Hkv = (cfg["hidden_size"], cfg["vocab_size"], cfg["num_attention_heads"],
                    cfg["num_key_value_heads"])
    hd = cfg.get("head_dim") or d // H
    W.f32["model.embed_tokens.weight"] = W.randn(V, d) * (0.15 if cfg["tie_word_embeddings"] else 0.5)
    W.norm("model.norm", d)
    if not cfg["tie_word_embeddings"]:
        W.linear("lm_head", V, d, std=0.15)
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        W.norm(p + "input_layernorm", d)
        W.norm(p + "post_attention_layernorm", d)
        W.linear(p + "self_attn.q_proj", H * hd, d, bias=qkv_bias)
        W.linear(p + "self_attn.k_proj", Hkv * hd, d, bias=qkv_bias)
        W.linear(p + "self_attn.v_proj", Hkv * hd, d, bias=qkv_bias)
        W.linear(p + "self_attn.o_proj", d, H * hd)
        if is_qwen3(cfg):
            W.norm(p + "self_attn.q_norm", hd)
            W.norm(p + "self_attn.k_norm", hd)
        if is_qwen3_moe_layer(cfg, i):
            W.linear(p + "mlp.gate", cfg["num_experts"], d, std=0.3)
            for e in range(cfg["num_experts"]):
                W.mlp(f"{p}mlp.experts.{e}.", d, cfg["moe_intermediate_size"])
        else:
            W.mlp(p + "mlp.", d, cfg["intermediate_size"])
    return W


# ----------------------------------------------------------------------------- configs
COMMON = dict(vocab_size=97, hidden_size=64, intermediate_size=96, hidden_act="silu",
              rms_norm_eps=1e-6, bos_token_id=0, eos_token_id=1, initializer_range=0.02,
              use_cache=True, attention_dropout=0.0, torch_dtype="float32")

CONFIGS = {
    "deepseek_v3_tiny": dict(
        COMMON, architectures=["DeepseekV3ForCausalLM"], model_type="deepseek_v3",
        moe_intermediate_size=32, num_hidden_layers=3, first_k_dense_replace=1,
        num_attention_heads=4, num_key_value_heads=4, q_lora_rank=24, kv_lora_rank=16,
        qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=16, n_routed_experts=8,
        n_shared_experts=1, num_experts_per_tok=2, n_group=4, topk_group=2,
        topk_method="noaux_tc", scoring_func="sigmoid", norm_topk_prob=True,
        routed_scaling_factor=2.5, moe_layer_freq=1, aux_loss_alpha=0.001, seq_aux=True,
        ep_size=1, rope_theta=10000.0,
        rope_scaling={"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16,
                      "beta_fast": 32, "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 1.0},
        max_position_embeddings=64, tie_word_embeddings=False, num_nextn_predict_layers=1,
        attention_bias=False),
    "deepseek_v2_tiny": dict(
        COMMON, architectures=["DeepseekV2ForCausalLM"], model_type="deepseek_v2",
        moe_intermediate_size=32, num_hidden_layers=2, first_k_dense_replace=1,
        num_attention_heads=4, num_key_value_heads=4, q_lora_rank=None, kv_lora_rank=16,
        qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=16, n_routed_experts=6,
        n_shared_experts=2, num_experts_per_tok=2, n_group=1, topk_group=1,
        topk_method="greedy", scoring_func="softmax", norm_topk_prob=False,
        routed_scaling_factor=2.0, moe_layer_freq=1, aux_loss_alpha=0.001, seq_aux=True,
        ep_size=1, rope_theta=10000.0,
        rope_scaling={"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 4096,
                      "beta_fast": 32, "beta_slow": 1, "mscale": 0.707, "mscale_all_dim": 0.707},
        max_position_embeddings=16384, tie_word_embeddings=False, attention_bias=False),
    "qwen2_tiny": dict(
        COMMON, architectures=["Qwen2ForCausalLM"], model_type="qwen2", num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, rope_theta=1000000.0, rope_scaling=None,
        max_position_embeddings=64, tie_word_embeddings=True, use_sliding_window=False,
        sliding_window=64, max_window_layers=2),
    "llama_tiny": dict(
        COMMON, architectures=["LlamaForCausalLM"], model_type="llama", num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, rope_theta=500000.0,
        rope_scaling=None, max_position_embeddings=64, tie_word_embeddings=False,
        attention_bias=False, mlp_bias=False, rms_norm_eps=1e-5),
    "qwen3_tiny": dict(
        COMMON, architectures=["Qwen3ForCausalLM"], model_type="qwen3", num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=24, rope_theta=10000.0,
        rope_scaling={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64},
        max_position_embeddings=256, tie_word_embeddings=True, attention_bias=False,
        use_sliding_window=False, sliding_window=None, max_window_layers=2),
    "qwen3_moe_tiny": dict(
        COMMON, architectures=["Qwen3MoeForCausalLM"], model_type="qwen3_moe",
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
        rope_theta=1000000.0, rope_scaling=None, max_position_embeddings=64,
        tie_word_embeddings=False, attention_bias=False, use_sliding_window=False,
        sliding_window=None, max_window_layers=2, num_experts=8, num_experts_per_tok=2,
        moe_intermediate_size=16, norm_topk_prob=True, decoder_sparse_step=1, mlp_only_layers=[0],
        router_aux_loss_coef=0.001, output_router_logits=False),
    "llama3_tiny": dict(
        COMMON, architectures=["LlamaForCausalLM"], model_type="llama", num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, rope_theta=10000.0,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                      "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
        max_position_embeddings=512, tie_word_embeddings=True, attention_bias=False,
        mlp_bias=False, rms_norm_eps=1e-5, eos_token_id=[1, 95, 96]),
}
SEEDS = {"deepseek_v3_tiny": 1234, "deepseek_v2_tiny": 2345, "qwen2_tiny": 3456, "llama_tiny": 4567,
         "qwen3_tiny": 5678, "qwen3_moe_tiny": 6789, "llama3_tiny": 7890}
SEQ_LEN = 12

NOTES = [
    "Independent fp64 reference: tests/golden/make_golden.py (from the papers and reference code).",
    "Weights stored as F32; expected values computed in float64 from those exact F32 values.",
    "Positions start at 0; causal mask; batch 1; logits for every position.",
    "RMSNorm: x*rsqrt(mean(x^2)+eps)*weight. Pre-norm blocks; logits = head(model.norm(h)).",
]
DS_NOTES = [
    "RoPE on the d_r slice: DeepSeek interleaved pairs (2i,2i+1) rotated by pos*freq_i.",
    "YaRN (HF): always applied when rope_scaling present; correction range from "
    "original_max_position_embeddings; cos/sin *= m(mscale)/m(mscale_all_dim); "
    "softmax_scale = d_qk^-0.5 * m(mscale_all_dim)^2, m(s)=0.1*s*ln(factor)+1.",
    "MLA naive path (absorbed path checked equal to 1e-10 in the generator).",
    "Experts SwiGLU down(silu(gate(x))*up(x)); output = sum_k w_k E_k(x) + shared(x).",
]
V3_NOTES = [
    "Gate: sigmoid scores; s = scores + e_score_correction_bias for selection only; group score = "
    "sum of top-2 of s per group; keep topk_group groups, others -inf; top-k on masked s; "
    "w = scores[idx]/sum(scores[idx]) * routed_scaling_factor.",
    "MTP: row i (0..T-2): h'_i = eh_proj(cat[enorm(embed(t_{i+1})), hnorm(h_i)]) with h_i the main "
    "model's last hidden state BEFORE model.norm (embedding half first); MTP decoder block (MoE) "
    "runs causally over h'_0..h'_{T-2} with rope positions 0..T-2; "
    "mtp_logits_i = shared_head.head(shared_head.norm(out_i)) predicts t_{i+2}.",
]
V2_NOTES = [
    "Gate (HFV2 greedy): softmax over all experts; top-k; norm_topk_prob false so "
    "w = scores[idx] * routed_scaling_factor (no normalization).",
    "q_lora_rank null: direct q_proj [H*d_qk, d].",
]
DENSE_NOTES = [
    "RoPE: half-split rotate_half over the full head_dim (pair i, i+hd/2), no rope_scaling.",
    "GQA with repeat_kv; softmax scale head_dim^-0.5; MLP SwiGLU.",
]
ROPE_NOTES = {
    "yarn": "RoPE yarn (HF generic, no mscale keys): NTK-by-parts ramp from "
            "original_max_position_embeddings, f' = f/factor*ramp + f*(1-ramp); cos/sin *= "
            "0.1*ln(factor)+1; softmax scale head_dim^-0.5.",
    "llama3": "RoPE llama3: wavelen=2pi/f; < L0/high_freq_factor kept, > L0/low_freq_factor "
              "divided by factor, between (1-s)f/factor + s f, s=(L0/wavelen-low)/(high-low).",
}
QWEN3_NOTES = [
    "Qwen3: q_norm/k_norm RMSNorm over each head's head_dim (eps rms_norm_eps) before RoPE; "
    "head_dim from config (independent of hidden_size); no q/k/v bias.",
]
QWEN3_MOE_NOTES = [
    "Qwen3-MoE: layer i is MoE unless in mlp_only_layers, when (i+1) % decoder_sparse_step == 0; "
    "gate softmax over all experts, top-k, renormalised when norm_topk_prob; no shared expert, "
    "no scaling; dense layers use intermediate_size.",
]


# ----------------------------------------------------------------------------- diagnostics
def routing_report(name, cfg, P, trace):
    """Prints selections with/without bias and without group limit; returns routing + margins."""
    routing, min_margin = {}, float("inf")
    for p, tr in trace.items():
        idx = tr["idx"].sort(-1).values
        routing[p.rstrip(".")] = idx.tolist()
        top = tr["s"].topk(cfg["num_experts_per_tok"] + 1, -1).values
        fin = top[:, -1].isfinite()
        gaps = (top[:, -2] - top[:, -1])[fin]
        min_margin = min(min_margin, gaps.min().item() if len(gaps) else float("inf"))
        if cfg.get("n_group", 1) > 1:   # group-score margins
            x = tr["x"]
            _, _, s_raw = moe_route(x, P, p, cfg, use_groups=False)
            gsc = s_raw.view(x.shape[0], cfg["n_group"], -1).topk(2, -1).values.sum(-1)
            gtop = gsc.topk(cfg["topk_group"] + 1, -1).values
            min_margin = min(min_margin, (gtop[:, -2] - gtop[:, -1]).min().item())
        line = f"[{name}] {p}: selected={idx.tolist()}"
        if P.get(p + "gate.e_score_correction_bias") is not None:
            x = tr["x"]
            nob = moe_route(x, P, p, cfg, use_bias=False)[0].sort(-1).values
            nog = moe_route(x, P, p, cfg, use_groups=False)[0].sort(-1).values
            nb = int((nob != idx).any(-1).sum())
            ng = int((nog != idx).any(-1).sum())
            line += (f"\n    without bias     ={nob.tolist()}  (tokens changed by bias: {nb})"
                     f"\n    without grouping ={nog.tolist()}  (tokens where group mask removed a top-k expert: {ng})")
            tr["bias_changed"], tr["group_changed"] = nb, ng
        print(line)
    return routing, min_margin


# ----------------------------------------------------------------------------- main
def make(name):
    cfg = CONFIGS[name]
    seed = SEEDS[name]
    W = init_deepseek(cfg, seed) if is_deepseek(cfg) else init_dense(
        cfg, seed, qkv_bias=cfg["model_type"] == "qwen2")
    if name == "qwen2_tiny":   # keeps the fixture byte-identical to before Qwen3 was added
        assert not any("q_norm" in k for k in W.f32)
    P = W.P
    g = torch.Generator().manual_seed(seed + 1)
    ids = [cfg["bos_token_id"]] + torch.randint(2, cfg["vocab_size"], (SEQ_LEN - 1,), generator=g).tolist()
    ids_t = torch.tensor(ids)

    trace = {}
    logits, h_last = forward(cfg, P, ids_t, trace)
    expected = {"input_ids": ids, "logits": logits.tolist()}
    notes = list(NOTES)
    if is_deepseek(cfg):
        notes += DS_NOTES + (V3_NOTES if cfg["model_type"] == "deepseek_v3" else V2_NOTES)
    else:
        notes += DENSE_NOTES
        rope_type = (cfg.get("rope_scaling") or {}).get("rope_type")
        if rope_type:
            notes.append(ROPE_NOTES[rope_type])
        if is_qwen3(cfg):
            notes += QWEN3_NOTES
        if cfg["model_type"] == "qwen3_moe":
            notes += QWEN3_MOE_NOTES
    if cfg.get("num_nextn_predict_layers"):
        mtp = mtp_forward(cfg, P, ids_t, h_last, trace)
        expected["mtp_logits"] = mtp.tolist()
        assert mtp.isfinite().all() and mtp.shape[0] == SEQ_LEN - 1

    debug = {}
    if is_deepseek(cfg):
        freqs, msc = rope_freqs(cfg["qk_rope_head_dim"], cfg["rope_theta"], cfg["rope_scaling"])
        routing, margin = routing_report(name, cfg, P, trace)
        debug = {"softmax_scale": mla_softmax_scale(cfg), "rope_freqs": freqs.tolist(),
                 "rope_cos_sin_mscale": msc, "selected_experts_sorted": routing,
                 "min_routing_margin": margin}
        print(f"[{name}] softmax_scale={debug['softmax_scale']!r} rope_freqs={debug['rope_freqs']} "
              f"min routing margin={margin:.4g}")
        assert margin > 1e-3, "routing too close to a tie for fp32 implementations; change seed"
        if cfg["model_type"] == "deepseek_v3":
            assert sum(tr.get("bias_changed", 0) for tr in trace.values()) > 0
            assert sum(tr.get("group_changed", 0) for tr in trace.values()) > 0
    elif cfg.get("rope_scaling") or is_qwen3(cfg):   # the Qwen2/Llama fixtures keep debug {}
        hd = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
        freqs, af = gqa_rope_freqs(cfg, hd)
        debug = {"rope_freqs": freqs.tolist(), "rope_attention_factor": af}
        if trace:   # Qwen3-MoE: chosen experts and the smallest k-th vs (k+1)-th margin
            k = cfg["num_experts_per_tok"]
            top = torch.cat([tr["s"].topk(k + 1, -1).values for tr in trace.values()])
            margin = (top[:, -2] - top[:, -1]).min().item()
            debug["selected_experts_sorted"] = {
                p.rstrip("."): tr["idx"].sort(-1).values.tolist() for p, tr in trace.items()}
            debug["min_routing_margin"] = margin
            print(f"[{name}] routing {debug['selected_experts_sorted']} min margin={margin:.4g}")
            assert margin > 1e-3, "routing too close to a tie for fp32 implementations; change seed"
    expected["notes"] = notes
    expected["debug"] = debug

    assert logits.isfinite().all()
    print(f"[{name}] logits shape={tuple(logits.shape)} std={logits.std().item():.4f} "
          f"row-std min={logits.std(-1).min().item():.4f} absmax={logits.abs().max().item():.3f}"
          + (f" | mtp std={torch.tensor(expected['mtp_logits']).std().item():.4f}"
             if "mtp_logits" in expected else ""))

    out = OUT_DIR / name
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    write_safetensors(out / "model.safetensors", W.f32)
    back = read_safetensors(out / "model.safetensors")
    assert back.keys() == W.f32.keys() and all(torch.equal(back[k], W.f32[k]) for k in back)
    (out / "expected.json").write_text(json.dumps(expected) + "\n")
    print(f"[{name}] wrote {out} ({(out / 'model.safetensors').stat().st_size} B safetensors, "
          f"{len(W.f32)} tensors)")


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--big", metavar="DIR", help="write the random Qwen3 benchmark checkpoint")
    ap.add_argument("--vocab", type=int, default=65536)
    ap.add_argument("--layers", type=int, default=28)
    ap.add_argument("--dtype", choices=["bf16", "f32"], default="bf16")
    args = ap.parse_args()
    if args.big:
        write_big_qwen3(args.big, args.vocab, args.layers, args.dtype.upper())
    else:
        torch.set_num_threads(1)
        for n in CONFIGS:
            make(n)
