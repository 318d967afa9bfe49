"""Qwen3-Next / Qwen3.5-MoE semantics: an independent float64 forward and the summary of it.

Holds `manual_forward`, the whole hybrid model in float64 from the raw (reloaded) weights, written
only from the formulas that golden.json's "config_summary" states: zero-centred RMSNorm, the Gated
DeltaNet token mixer `manual_gdn` (Qwen3-Next's grouped in_proj_qkvz / in_proj_ba or Qwen3.5's flat
projections, causal depthwise conv + SiLU, l2-normalised q/k, the per-token gated delta rule,
gated RMSNorm), gated full attention with partial NeoX RoPE (`manual_attention`, `manual_rope`),
the softmax top-k MoE with its sigmoid-gated shared expert (`manual_moe`) and the dense SwiGLU
(`manual_mlp`); it can also record the conditioning numbers (router gaps, DeltaNet output RMS).
`config_summary` is that description in words and numbers, per architecture.
"""

from __future__ import annotations

import math

import fixture_env  # noqa: F401  (offline, quiet Hugging Face libraries)
import torch
import torch.nn.functional as F

from fixture_models import rope_summary
from qwen3_next_specs import CHUNK_SIZE, is_moe_layer


# ----------------------------------------------------------------------------------------------
# independent float64 forward (what config_summary describes)
# ----------------------------------------------------------------------------------------------


def _rms(x, eps):
    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps)


def _silu(x):
    return x * torch.sigmoid(x)


def manual_gdn(h, sd, p, cfg, kind, stats=None):
    """One Gated DeltaNet token mixer, float64, from the raw weights. h: [T, hidden]."""
    T = h.shape[0]
    nk, nv = cfg.linear_num_key_heads, cfg.linear_num_value_heads
    dk, dv = cfg.linear_key_head_dim, cfg.linear_value_head_dim
    r = nv // nk
    if kind == "qwen3_next":
        # in_proj_qkvz rows, per key head j: [q_j (dk) | k_j (dk) | v of value heads j*r..j*r+r-1 (r*dv) | z of them]
        qkvz = (h @ sd[p + "in_proj_qkvz.weight"].T).view(T, nk, 2 * dk + 2 * r * dv)
        q, k, v, z = torch.split(qkvz, [dk, dk, r * dv, r * dv], dim=-1)
        q, k, v, z = (t.reshape(T, -1) for t in (q, k, v, z))
        # in_proj_ba rows, per key head j: [b of value heads j*r.. (r) | a of them (r)]
        ba = (h @ sd[p + "in_proj_ba.weight"].T).view(T, nk, 2 * r)
        b, a = ba[..., :r].reshape(T, nv), ba[..., r:].reshape(T, nv)
    else:
        # in_proj_qkv rows: [q all key heads (nk*dk) | k all key heads | v all value heads (nv*dv)]
        qkv = h @ sd[p + "in_proj_qkv.weight"].T
        q, k, v = torch.split(qkv, [nk * dk, nk * dk, nv * dv], dim=-1)
        z = h @ sd[p + "in_proj_z.weight"].T
        b = h @ sd[p + "in_proj_b.weight"].T
        a = h @ sd[p + "in_proj_a.weight"].T
    # Causal depthwise conv over channels cat(q, k, v), kernel K, then SiLU.
    x = torch.cat([q, k, v], dim=-1)  # [T, C]
    w = sd[p + "conv1d.weight"][:, 0, :]  # [C, K]; tap K-1 multiplies the current token
    K = w.shape[1]
    xp = torch.cat([torch.zeros(K - 1, x.shape[1], dtype=x.dtype), x], dim=0)
    conv = sum(xp[j:j + T] * w[:, j] for j in range(K))
    x = _silu(conv)
    q, k, v = torch.split(x, [nk * dk, nk * dk, nv * dv], dim=-1)
    q, k, v = q.view(T, nk, dk), k.view(T, nk, dk), v.view(T, nv, dv)
    q = q / torch.sqrt(q.pow(2).sum(-1, keepdim=True) + 1e-6)
    k = k / torch.sqrt(k.pow(2).sum(-1, keepdim=True) + 1e-6)
    q = q * dk ** -0.5
    beta = torch.sigmoid(b)  # [T, nv]
    g = -torch.exp(sd[p + "A_log"]) * F.softplus(a + sd[p + "dt_bias"])  # [T, nv]
    kh = torch.arange(nv) // r  # key head of each value head
    S = torch.zeros(nv, dk, dv, dtype=h.dtype)
    out = torch.zeros(T, nv, dv, dtype=h.dtype)
    for t in range(T):
        qt, kt = q[t, kh], k[t, kh]  # [nv, dk]
        S = S * torch.exp(g[t])[:, None, None]
        pred = torch.einsum("hk,hkv->hv", kt, S)
        delta = (v[t] - pred) * beta[t][:, None]
        S = S + kt[:, :, None] * delta[:, None, :]
        out[t] = torch.einsum("hk,hkv->hv", qt, S)
    if stats is not None:
        rms = out.pow(2).mean(-1).sqrt()
        key = "deltanet_min_core_output_rms"
        stats[key] = min(stats.get(key, math.inf), float(rms.min()))
    # Gated RMSNorm per value head: rms_norm(o) * weight * silu(z).
    o = _rms(out, cfg.rms_norm_eps) * sd[p + "norm.weight"] * _silu(z.view(T, nv, dv))
    return o.reshape(T, nv * dv) @ sd[p + "out_proj.weight"].T


def manual_rope(x, cfg):
    """Partial NeoX RoPE on the first rotary_dim dims of each head. x: [T, heads, head_dim]."""
    hd = x.shape[-1]
    rd = int(hd * cfg.rope_parameters["partial_rotary_factor"])
    inv = 1.0 / (cfg.rope_parameters["rope_theta"] ** (torch.arange(0, rd, 2, dtype=torch.float64) / rd))
    ang = torch.arange(x.shape[0], dtype=torch.float64)[:, None] * inv[None]
    cos = torch.cat([ang.cos(), ang.cos()], -1)[:, None]
    sin = torch.cat([ang.sin(), ang.sin()], -1)[:, None]
    xr, xp = x[..., :rd], x[..., rd:]
    rot = torch.cat([-xr[..., rd // 2:], xr[..., :rd // 2]], -1)
    return torch.cat([xr * cos + rot * sin, xp], -1)


def manual_attention(h, sd, p, cfg):
    T = h.shape[0]
    nh, nkv, hd = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
    eps = cfg.rms_norm_eps
    qg = (h @ sd[p + "q_proj.weight"].T).view(T, nh, 2 * hd)  # per head [q_h | gate_h]
    q, gate = qg[..., :hd], qg[..., hd:].reshape(T, nh * hd)
    k = (h @ sd[p + "k_proj.weight"].T).view(T, nkv, hd)
    v = (h @ sd[p + "v_proj.weight"].T).view(T, nkv, hd)
    q = _rms(q, eps) * (1 + sd[p + "q_norm.weight"])
    k = _rms(k, eps) * (1 + sd[p + "k_norm.weight"])
    q, k = manual_rope(q, cfg), manual_rope(k, cfg)
    kv_of = torch.arange(nh) // (nh // nkv)
    scores = torch.einsum("thd,shd->hts", q, k[:, kv_of]) * hd ** -0.5
    mask = torch.ones(T, T, dtype=torch.bool).triu(1)
    scores = scores.masked_fill(mask, float("-inf")).softmax(-1)
    o = torch.einsum("hts,shd->thd", scores, v[:, kv_of]).reshape(T, nh * hd)
    return (o * torch.sigmoid(gate)) @ sd[p + "o_proj.weight"].T


def manual_mlp(h, sd, p):
    return (_silu(h @ sd[p + "gate_proj.weight"].T) * (h @ sd[p + "up_proj.weight"].T)) @ sd[p + "down_proj.weight"].T


def manual_moe(h, sd, p, cfg, kind, stats=None):
    E, k = cfg.num_experts, cfg.num_experts_per_tok
    inter = cfg.moe_intermediate_size
    probs = (h @ sd[p + "gate.weight"].T).softmax(-1)
    top_w, top_i = probs.topk(k, dim=-1)
    if stats is not None:
        srt = probs.sort(-1, descending=True).values
        gap = float((srt[:, k - 1] - srt[:, k]).min())
        stats["router_min_gap_kth_vs_next_prob"] = min(stats.get("router_min_gap_kth_vs_next_prob", math.inf), gap)
    if kind == "qwen3_5_moe" or cfg.norm_topk_prob:
        top_w = top_w / top_w.sum(-1, keepdim=True)
    out = torch.zeros_like(h)
    gu_all, down_all = sd[p + "experts.gate_up_proj"], sd[p + "experts.down_proj"]  # [E, 2I, H], [E, H, I]
    for t in range(h.shape[0]):
        for j in range(k):
            e = int(top_i[t, j])
            gu = gu_all[e] @ h[t]
            out[t] += top_w[t, j] * (down_all[e] @ (_silu(gu[:inter]) * gu[inter:]))
    assert E == gu_all.shape[0]
    shared = manual_mlp(h, sd, p + "shared_expert.")
    return out + torch.sigmoid(h @ sd[p + "shared_expert_gate.weight"].T) * shared


def manual_forward(sd, cfg, kind, ids, stats=None):
    eps = cfg.rms_norm_eps
    x = sd["model.embed_tokens.weight"][torch.tensor(ids)]
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        h = _rms(x, eps) * (1 + sd[p + "input_layernorm.weight"])
        if cfg.layer_types[i] == "linear_attention":
            x = x + manual_gdn(h, sd, p + "linear_attn.", cfg, kind, stats)
        else:
            x = x + manual_attention(h, sd, p + "self_attn.", cfg)
        h = _rms(x, eps) * (1 + sd[p + "post_attention_layernorm.weight"])
        if is_moe_layer(kind, cfg, i):
            x = x + manual_moe(h, sd, p + "mlp.", cfg, kind, stats)
        else:
            x = x + manual_mlp(h, sd, p + "mlp.")
    x = _rms(x, eps) * (1 + sd["model.norm.weight"])
    return x @ sd["lm_head.weight"].T



# ----------------------------------------------------------------------------------------------
# config summary
# ----------------------------------------------------------------------------------------------


def config_summary(kind, cfg, model) -> dict:
    nk, nv = cfg.linear_num_key_heads, cfg.linear_num_value_heads
    dk, dv = cfg.linear_key_head_dim, cfg.linear_value_head_dim
    r = nv // nk
    hd = cfg.head_dim
    prf = cfg.rope_parameters["partial_rotary_factor"]
    moe_layers = [i for i in range(cfg.num_hidden_layers) if is_moe_layer(kind, cfg, i)]
    s = {
        "model_type": cfg.model_type,
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.hidden_size,
        "num_hidden_layers": cfg.num_hidden_layers,
        "layer_types": list(cfg.layer_types),
        "linear_attention_layers": [i for i, t in enumerate(cfg.layer_types) if t == "linear_attention"],
        "full_attention_layers": [i for i, t in enumerate(cfg.layer_types) if t == "full_attention"],
        "num_attention_heads": cfg.num_attention_heads,
        "num_key_value_heads": cfg.num_key_value_heads,
        "head_dim": hd,
        "hidden_act": cfg.hidden_act,
        "rms_norm_eps": cfg.rms_norm_eps,
        "max_position_embeddings": cfg.max_position_embeddings,
        "rope_parameters": dict(cfg.rope_parameters),
        "rope_effective": rope_summary(model),
        "partial_rotary_factor": prf,
        "rotary_dim": int(hd * prf),
        "rope_layout": "rotate_half (NeoX) on the first rotary_dim = head_dim * partial_rotary_factor = "
        f"{int(hd * prf)} "
        "dims of every q/k head (pairs (i, i + rotary_dim/2) rotated by inv_freq[i] = theta^(-2i/rotary_dim)); the "
        "remaining dims pass through unrotated",
        "tie_word_embeddings": bool(cfg.tie_word_embeddings),
        "bos_token_id": cfg.bos_token_id,
        "eos_token_id": cfg.eos_token_id,
        "pad_token_id": cfg.pad_token_id,
        "num_experts": cfg.num_experts,
        "num_experts_per_tok": cfg.num_experts_per_tok,
        "moe_intermediate_size": cfg.moe_intermediate_size,
        "shared_expert_intermediate_size": cfg.shared_expert_intermediate_size,
        "moe_layers": moe_layers,
        "dense_mlp_layers": [i for i in range(cfg.num_hidden_layers) if i not in moe_layers],
        "rmsnorm": "zero-centred: y = x / sqrt(mean(x^2) + rms_norm_eps) * (1 + weight), computed in float32; used by "
        "input_layernorm, post_attention_layernorm, model.norm and the attention q_norm / k_norm (transformers "
        "initialises these weights to 0; the hub checkpoints store weight, not 1 + weight)",
        "decoder_layer": "h = x + mixer(input_layernorm(x)), mixer = linear_attn (DeltaNet) or self_attn per "
        "layer_types; out = h + mlp(post_attention_layernorm(h)); final model.norm then lm_head",
        "full_attention": {
            "q_proj": f"weight [num_attention_heads * head_dim * 2, hidden] = [{cfg.num_attention_heads * hd * 2}, "
            f"{cfg.hidden_size}]; output viewed [T, num_attention_heads, 2 * head_dim] and split per head: "
            "[..., :head_dim] = query, [..., head_dim:] = output gate, i.e. rows per head h are "
            "[q_h (head_dim rows) | gate_h (head_dim rows)], heads consecutive (q_0, gate_0, q_1, gate_1, ...)",
            "k_proj / v_proj": "[num_key_value_heads * head_dim, hidden], no bias (attention_bias false)",
            "qk_norm": "q_norm / k_norm: zero-centred RMSNorm (1 + weight) over head_dim per head, eps rms_norm_eps, "
            "applied before RoPE",
            "attention": "causal softmax(q.k * head_dim^-0.5) v with GQA: query head h uses kv head "
            "h // (num_attention_heads / num_key_value_heads)",
            "output_gate": "attn_out [T, num_attention_heads * head_dim] (heads concatenated) * sigmoid(gate) with "
            "gate flattened in the same head-major order, then o_proj [hidden, num_attention_heads * head_dim]",
            "attention_scale": hd ** -0.5,
        },
        "linear_attention": {
            "linear_num_key_heads": nk,
            "linear_num_value_heads": nv,
            "linear_key_head_dim": dk,
            "linear_value_head_dim": dv,
            "value_heads_per_key_head": r,
            "linear_conv_kernel_dim": cfg.linear_conv_kernel_dim,
            "key_dim": nk * dk,
            "value_dim": nv * dv,
            "conv_dim": 2 * nk * dk + nv * dv,
            "conv1d": f"conv1d.weight [conv_dim, 1, K] = [{2 * nk * dk + nv * dv}, 1, {cfg.linear_conv_kernel_dim}], "
            "no "
            "bias; depthwise causal over channels mixed = cat(q (all key heads), k (all key heads), v (all "
            "value heads)) "
            "in that order: conv[t, c] = sum_j weight[c, 0, j] * mixed[t - (K-1) + j, c] (zeros before the sequence; "
            "tap K-1 is the current token), then SiLU on every channel; z, b and a are not convolved. Decode keeps "
            "the last K-1 pre-conv mixed vectors per layer (transformers' cache keeps K)",
            "qk_l2norm": "after the conv, q and k are l2-normalised per head over the head dim: x / sqrt(sum(x^2) + "
            "1e-6) (eps 1e-6 fixed, not rms_norm_eps; done inside the kernel, use_qk_l2norm_in_kernel=True), in "
            "float32",
            "q_scale": f"q is then multiplied by linear_key_head_dim^-0.5 = {dk ** -0.5}",
            "grouping": f"value head h reads query/key head h // {r} (num_v_heads / num_k_heads; repeat_interleave)",
            "g": "g = -exp(A_log) * softplus(a + dt_bias) per value head (float32), the log of the per-token decay; "
            "A_log [num_v_heads], dt_bias [num_v_heads]",
            "beta": "beta = sigmoid(b) per value head",
            "recurrence": "per value head, S [k_head_dim, v_head_dim] = 0 at the start; per token: S <- exp(g) * S; "
            "delta = beta * (v - S^T k); S <- S + k delta^T; o = S^T q (after the update). Prefill uses the "
            f"chunked form (chunk_size {CHUNK_SIZE}), cached decode the per-token form; both give the same numbers "
            "(see deltanet_kernel / recurrent_decode_check)",
            "gated_norm": "linear_attn.norm (Qwen3NextRMSNormGated / Qwen3_5MoeRMSNormGated), per value head over "
            "v_head_dim: y = o / sqrt(mean(o^2) + rms_norm_eps) * weight * silu(z), computed in float32; weight "
            f"[v_head_dim] = [{dv}] shared by all heads, used directly (NOT 1 + weight; initialised to 1), eps = "
            f"rms_norm_eps = {cfg.rms_norm_eps}",
            "out_proj": f"out_proj.weight [hidden, value_dim] = [{cfg.hidden_size}, {nv * dv}] over the value heads "
            "concatenated in value-head order",
        },
        "moe": {
            "router": "mlp.gate.weight [num_experts, hidden]; probs = softmax(x @ W^T) in float32 over all experts; "
            "top-k (num_experts_per_tok) by prob; "
            + ("weights renormalised to sum 1 (norm_topk_prob)" if (kind == "qwen3_5_moe" or cfg.norm_topk_prob)
               else "weights NOT renormalised"),
            "experts": "SwiGLU: down_proj(silu(gate_proj x) * up_proj x), moe_intermediate_size",
            "shared_expert": f"mlp.shared_expert.{{gate,up,down}}_proj SwiGLU of shared_expert_intermediate_size = "
            f"{cfg.shared_expert_intermediate_size}, scaled by sigmoid(mlp.shared_expert_gate.weight [1, hidden] @ x) "
            "(one scalar per token), always active",
            "output": "sum_k w_k expert_k(x) + sigmoid(shared_expert_gate x) * shared_expert(x)",
        },
    }
    if kind == "qwen3_next":
        s["decoder_sparse_step"] = cfg.decoder_sparse_step
        s["mlp_only_layers"] = list(cfg.mlp_only_layers)
        s["norm_topk_prob"] = cfg.norm_topk_prob
        s["dense_intermediate_size"] = cfg.intermediate_size
        s["moe_layer_rule"] = ("layer i is sparse iff i not in mlp_only_layers and num_experts > 0 and (i + 1) % "
                               "decoder_sparse_step == 0; otherwise a dense SwiGLU mlp.{gate,up,down}_proj of "
                               "intermediate_size")
        s["linear_attention"]["in_proj_qkvz"] = (
            f"in_proj_qkvz.weight [2*key_dim + 2*value_dim, hidden] = [{2 * nk * dk + 2 * nv * dv}, "
            f"{cfg.hidden_size}], "
            f"grouped per key head j (0..{nk - 1}), {2 * dk + 2 * r * dv} rows each: [q_j ({dk}) | k_j ({dk}) | v of "
            f"value heads j*{r}..j*{r}+{r - 1} ({r}*{dv}) | z of the same value heads ({r}*{dv})]; q, k, v are then "
            "re-concatenated head-major into mixed = cat(q_0..q_{nk-1}, k_0.., v_0..v_{nv-1}) for the conv, z stays "
            "per value head")
        s["linear_attention"]["in_proj_ba"] = (
            f"in_proj_ba.weight [2*num_v_heads, hidden] = [{2 * nv}, {cfg.hidden_size}], grouped per key head j: "
            f"[b of value heads j*{r}..j*{r}+{r - 1} ({r}) | a of the same ({r})]")
    else:
        s["norm_topk_prob"] = True
        s["moe_layer_rule"] = "every layer is sparse (Qwen3_5MoeTextConfig has no mlp_only_layers, " \
                              "decoder_sparse_step, intermediate_size or norm_topk_prob)"
        s["linear_attention"]["in_proj_qkv"] = (
            f"in_proj_qkv.weight [2*key_dim + value_dim, hidden] = [{2 * nk * dk + nv * dv}, {cfg.hidden_size}], flat: "
            "rows [q of all key heads (key_dim) | k of all key heads (key_dim) | v of all value heads (value_dim)], "
            "i.e. already the conv channel order")
        s["linear_attention"]["in_proj_z"] = \
            f"in_proj_z.weight [value_dim, hidden] = [{nv * dv}, {cfg.hidden_size}], " \
                                             "value-head-major"
        s["linear_attention"]["in_proj_b"] = f"in_proj_b.weight [num_v_heads, hidden] = [{nv}, {cfg.hidden_size}]"
        s["linear_attention"]["in_proj_a"] = f"in_proj_a.weight [num_v_heads, hidden] = [{nv}, {cfg.hidden_size}]"
        s["mrope"] = {"mrope_section": cfg.rope_parameters.get("mrope_section"),
                      "mrope_interleaved": cfg.rope_parameters.get("mrope_interleaved")}
    s["qwen3_next_vs_qwen3_5_moe_text"] = [
        "DeltaNet input projections: Qwen3-Next has fused in_proj_qkvz / in_proj_ba grouped per key head "
        "([q_j, k_j, v-group_j, z-group_j] and [b-group_j, a-group_j]); Qwen3.5 has four separate flat projections "
        "in_proj_qkv ([q all | k all | v all]), in_proj_z, in_proj_b, in_proj_a. Everything after the projections "
        "(conv channel order cat(q, k, v), SiLU, l2norm, g, beta, kernels, gated norm, out_proj) is identical",
        "MoE placement: Qwen3-Next uses decoder_sparse_step / mlp_only_layers (dense layers of intermediate_size "
        "possible) and norm_topk_prob; Qwen3.5-MoE makes every layer sparse and always renormalises the top-k weights",
        "RoPE: Qwen3.5 uses interleaved MRoPE (rope_parameters mrope_section, mrope_interleaved) which equals plain "
        "partial RoPE for text-only positions; Qwen3-Next uses plain partial RoPE",
        "Checkpoint/config: Qwen3-Next hub = Qwen3NextForCausalLM, model.layers.*, experts per expert, flat config; "
        "Qwen3.5-MoE hub = Qwen3_5MoeForConditionalGeneration, model.language_model.*, fused experts, nested "
        "text_config; this fixture is the text-only Qwen3_5MoeForCausalLM (see hub_layout)",
        "Identical: gated full attention (q_proj with per-head gate), q/k norm, zero-centred RMSNorm (1 + weight), "
        "gated RMSNorm (weight, not 1 + weight), shared expert with sigmoid gate, softmax router, "
        "partial_rotary_factor",
    ]
    return s
