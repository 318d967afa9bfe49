"""gpt-oss semantics: an independent re-implementation of the forward pass and the summary of it.

Holds `manual_forward`, a float64 forward written only from the documented formulas (YaRN
`yarn_inv_freq`, RMSNorm `rms`, attention sinks, sliding window, router, `swiglu_clamped`
experts), `clamp_and_router_stats` (re-runs the router on captured inputs, which must match
transformers, and measures how often the SwiGLU clamp bites), `gpt_oss_summary` (golden.json's
"config_summary": every formula in words), `expert_param_count`, and `capture_effects` (logit
differences proving that the sliding window, the sinks and YaRN's truncate=false matter).
"""

from __future__ import annotations

import math

import fixture_env  # noqa: F401  (offline, quiet Hugging Face libraries)
import torch

from fixture_golden import full_logits
from fixture_models import rope_summary


# ----------------------------------------------------------------------------
# Semantics: an independent re-implementation of the forward pass
# ----------------------------------------------------------------------------


def yarn_inv_freq(head_dim: int, rp: dict) -> tuple[torch.Tensor, float]:
    """YaRN as documented in config_summary, in float64."""
    base, factor, orig = rp["rope_theta"], rp["factor"], rp["original_max_position_embeddings"]
    bf, bs = rp.get("beta_fast", 32.0), rp.get("beta_slow", 1.0)
    d = head_dim

    def corr_dim(rot):
        return d * math.log(orig / (rot * 2 * math.pi)) / (2 * math.log(base))

    low, high = corr_dim(bf), corr_dim(bs)
    if rp.get("truncate", True):
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, d - 1)
    if low == high:
        high += 0.001
    i = torch.arange(d // 2, dtype=torch.float64)
    ramp = ((i - low) / (high - low)).clamp(0, 1)  # 0 -> keep original frequency, 1 -> divide by factor
    pos_freq = base ** (torch.arange(0, d, 2, dtype=torch.float64) / d)
    inv = (1.0 / pos_freq) * (1 - ramp) + (1.0 / (factor * pos_freq)) * ramp
    mscale = 0.1 * math.log(factor) + 1.0 if factor > 1 else 1.0
    return inv, mscale


def rms(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def swiglu_clamped(gate_up: torch.Tensor, alpha: float, limit: float) -> torch.Tensor:
    gate, up = gate_up[..., 0::2], gate_up[..., 1::2]
    gate = gate.clamp(max=limit)
    up = up.clamp(min=-limit, max=limit)
    return (up + 1.0) * gate * torch.sigmoid(alpha * gate)


@torch.no_grad()
def manual_forward(model, ids: list[int]) -> torch.Tensor:
    """float64 forward from the reference model's weights, written from the documented formulas only."""
    cfg = model.config
    sd = {k: v.double() for k, v in model.state_dict().items()}
    nh, nkv, hd = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
    t = len(ids)
    inv, att = yarn_inv_freq(hd, cfg.rope_parameters)
    ang = torch.arange(t, dtype=torch.float64)[:, None] * inv[None]
    cos, sin = ang.cos() * att, ang.sin() * att

    def rope(x):  # [t, heads, hd], rotate_half pairing (i, i + hd/2)
        x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
        c, s = cos[:, None], sin[:, None]
        return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], dim=-1)

    x = sd["model.embed_tokens.weight"][torch.tensor(ids)]
    qi = torch.arange(t)[:, None]
    kj = torch.arange(t)[None, :]
    for li in range(cfg.num_hidden_layers):
        p = f"model.layers.{li}."
        h = rms(x, sd[p + "input_layernorm.weight"], cfg.rms_norm_eps)
        q = (h @ sd[p + "self_attn.q_proj.weight"].T + sd[p + "self_attn.q_proj.bias"]).view(t, nh, hd)
        k = (h @ sd[p + "self_attn.k_proj.weight"].T + sd[p + "self_attn.k_proj.bias"]).view(t, nkv, hd)
        v = (h @ sd[p + "self_attn.v_proj.weight"].T + sd[p + "self_attn.v_proj.bias"]).view(t, nkv, hd)
        q, k = rope(q), rope(k)
        allowed = kj <= qi
        if cfg.layer_types[li] == "sliding_attention" and cfg.sliding_window is not None:
            allowed = allowed & (kj > qi - cfg.sliding_window)
        heads = []
        for hh in range(nh):
            kvh = hh // (nh // nkv)
            s = (q[:, hh] @ k[:, kvh].T) * hd ** -0.5
            s = s.masked_fill(~allowed, float("-inf"))
            full = torch.cat([s, sd[p + "self_attn.sinks"][hh].expand(t, 1)], dim=-1)
            pr = torch.softmax(full, dim=-1)[:, :-1]  # the sink's share is dropped, not renormalised
            heads.append(pr @ v[:, kvh])
        o = torch.cat(heads, dim=-1) @ sd[p + "self_attn.o_proj.weight"].T + sd[p + "self_attn.o_proj.bias"]
        x = x + o
        h = rms(x, sd[p + "post_attention_layernorm.weight"], cfg.rms_norm_eps)
        logits = h @ sd[p + "mlp.router.weight"].T + sd[p + "mlp.router.bias"]
        topv, topi = torch.topk(logits, cfg.num_experts_per_tok, dim=-1)
        w = torch.softmax(topv, dim=-1)
        out = torch.zeros_like(x)
        for ti in range(t):
            for kk in range(cfg.num_experts_per_tok):
                e = int(topi[ti, kk])
                gu = h[ti] @ sd[p + "mlp.experts.gate_up_proj"][e] + sd[p + "mlp.experts.gate_up_proj_bias"][e]
                a = swiglu_clamped(gu, cfg.swiglu_alpha, cfg.swiglu_limit)
                y = a @ sd[p + "mlp.experts.down_proj"][e] + sd[p + "mlp.experts.down_proj_bias"][e]
                out[ti] += w[ti, kk] * y
        x = x + out
    x = rms(x, sd["model.norm.weight"], cfg.rms_norm_eps)
    return x @ sd["lm_head.weight"].T


@torch.no_grad()
def clamp_and_router_stats(ref, prompts: list[list[int]]) -> dict:
    """Capture every expert-block input, re-run the router with the documented formula (must
    match transformers' choice and weights) and count how often the swiglu clamp bites."""
    cfg = ref.config
    captured = []
    hooks = []
    for li, layer in enumerate(ref.model.layers):
        def hook(mod, inp, out, li=li):
            captured.append((li, inp[0].reshape(-1, inp[0].shape[-1]).clone(), out[1].clone(), out[2].clone()))
        hooks.append(layer.mlp.router.register_forward_hook(hook))
    try:
        for ids in prompts:
            full_logits(ref, ids)
    finally:
        for h in hooks:
            h.remove()
    lim = cfg.swiglu_limit
    n_gate = n_up = n_gate_hi = n_up_lo = n_up_hi = n_tok = 0
    per_layer = {}
    for li, x, scores, idx in captured:
        r = ref.model.layers[li].mlp.router
        logits = x @ r.weight.T + r.bias
        topv, topi = torch.topk(logits, cfg.num_experts_per_tok, dim=-1)
        if not torch.equal(topi, idx):
            raise RuntimeError(f"layer {li}: router re-implementation picks other experts")
        if not torch.allclose(torch.softmax(topv, dim=-1), scores, rtol=1e-6, atol=1e-7):
            raise RuntimeError(f"layer {li}: router re-implementation weights differ")
        ex = ref.model.layers[li].mlp.experts
        g_hi = u_lo = u_hi = cnt = 0
        for kk in range(cfg.num_experts_per_tok):
            gu = torch.einsum("th,thj->tj", x, ex.gate_up_proj[idx[:, kk]]) + ex.gate_up_proj_bias[idx[:, kk]]
            gate, up = gu[:, 0::2], gu[:, 1::2]
            g_hi += int((gate > lim).sum())
            u_lo += int((up < -lim).sum())
            u_hi += int((up > lim).sum())
            cnt += gate.numel()
        per_layer[str(li)] = {"gate_above_limit": g_hi / cnt, "up_outside_limit": (u_lo + u_hi) / cnt}
        n_gate_hi += g_hi
        n_up_lo += u_lo
        n_up_hi += u_hi
        n_gate += cnt
        n_up += cnt
        n_tok += x.shape[0]
    if n_gate_hi == 0 or n_up_lo == 0 or n_up_hi == 0:
        raise RuntimeError("the swiglu clamp is not exercised on the golden prompts")
    return {
        "router_tokens_checked": n_tok,
        "router_reimplementation_matches_transformers": True,
        "swiglu_clamp": {
            "measured_on": "the 3 golden logits sequences, every (token, chosen expert) pair, all layers",
            "values_per_kind": n_gate,
            "gate_above_limit_fraction": n_gate_hi / n_gate,
            "up_below_minus_limit_fraction": n_up_lo / n_up,
            "up_above_limit_fraction": n_up_hi / n_up,
            "per_layer": per_layer,
        },
    }


# ----------------------------------------------------------------------------
# golden.json: the config summary and the effect checks
# ----------------------------------------------------------------------------


def expert_param_count(cfg) -> int:
    h, i = cfg.hidden_size, cfg.intermediate_size
    return h * 2 * i + 2 * i + i * h + h


def gpt_oss_summary(cfg, model) -> dict:
    nh, hd = cfg.num_attention_heads, cfg.head_dim
    scales = {float(layer.self_attn.scaling) for layer in model.model.layers}
    if scales != {hd ** -0.5}:
        raise RuntimeError(f"unexpected attention scaling {scales}")
    return {
        "model_type": "gpt_oss",
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.hidden_size,
        "num_hidden_layers": cfg.num_hidden_layers,
        "num_attention_heads": nh,
        "num_key_value_heads": cfg.num_key_value_heads,
        "head_dim": hd,
        "hidden_act": cfg.hidden_act,
        "rms_norm_eps": cfg.rms_norm_eps,
        "max_position_embeddings": cfg.max_position_embeddings,
        "rope_parameters": dict(cfg.rope_parameters),
        "rope_effective": rope_summary(model),
        "tie_word_embeddings": bool(cfg.tie_word_embeddings),
        "num_experts": cfg.num_local_experts,
        "num_experts_per_tok": cfg.num_experts_per_tok,
        "moe_layers": list(range(cfg.num_hidden_layers)),
        "expert_intermediate_size": cfg.intermediate_size,
        "expert_parameters_each": expert_param_count(cfg),
        "bos_token_id": cfg.bos_token_id,
        "eos_token_id": cfg.eos_token_id,
        "pad_token_id": cfg.pad_token_id,
        "attention_scale": hd ** -0.5,
        "attention_bias": cfg.attention_bias,
        "attention_bias_detail": "q_proj, k_proj, v_proj AND o_proj all have a bias (attention_bias=true); "
        "the router has a bias; every expert has gate_up_proj_bias [2I] and down_proj_bias [H]",
        "layer_types": list(cfg.layer_types),
        "sliding_window": cfg.sliding_window,
        "sliding_window_semantics": "layers whose layer_types entry is 'sliding_attention' (even layers 0, 2, ...) "
        "let query position i attend to key positions j with i - sliding_window < j <= i, i.e. the last "
        "sliding_window tokens INCLUDING itself; 'full_attention' layers are plain causal",
        "rope_layout": "rotate_half (NeoX): within each head, dim d < head_dim/2 pairs with d + head_dim/2 and "
        "rotates by inv_freq[d]: out[d] = x[d]*cos - x[d+hd/2]*sin, out[d+hd/2] = x[d+hd/2]*cos + x[d]*sin, "
        "applied to q and k after their biases",
        "rope_yarn": "dim = head_dim; corr(r) = dim*ln(orig/(2*pi*r)) / (2*ln(theta)); low = corr(beta_fast), "
        "high = corr(beta_slow) (floored/ceiled only if truncate, which gpt-oss sets false); low = max(low, 0), "
        "high = min(high, dim-1); ramp[i] = clamp((i - low)/(high - low), 0, 1) for i < dim/2; "
        "inv_freq[i] = (1-ramp[i]) * theta^(-2i/dim) + ramp[i] * theta^(-2i/dim)/factor; "
        "cos and sin are both multiplied by attention_factor = 0.1*ln(factor) + 1 "
        "(rope_effective.attention_scaling); nothing else scales the scores",
        "attention_sinks": "one learned logit per query head, self_attn.sinks [num_attention_heads]: for each "
        "query row the softmax runs over [scaled masked scores..., sink_h] and the sink's probability is then "
        "DROPPED (not renormalised), so the attention weights sum to 1 - p_sink; the sink has no value vector; "
        "eager subtracts the row max (including the sink) first, which is only for numerical stability",
        "router": "logits = x @ router.weight^T + router.bias (x = post_attention_layernorm output); top-k "
        "(k = num_experts_per_tok) of the LOGITS; weights = softmax over those k logits only (no softmax over "
        "all experts, no extra normalisation or scaling)",
        "swiglu_alpha": cfg.swiglu_alpha,
        "swiglu_limit": cfg.swiglu_limit,
        "expert_mlp": "gate_up = x @ gate_up_proj[e] + gate_up_proj_bias[e]  (in-memory gate_up_proj [E, H, 2I]); "
        "gate = gate_up[0::2] (even columns), up = gate_up[1::2] (odd columns); gate = min(gate, limit); "
        "up = clamp(up, -limit, limit); act = (up + 1) * gate * sigmoid(alpha * gate); "
        "y = act @ down_proj[e] + down_proj_bias[e]  (down_proj [E, I, H]); moe_out = sum_k weight_k * y_k "
        "(the down bias is inside the weighted sum)",
        "hidden_act_note": "config hidden_act 'silu' is not used by the experts; they apply the clamped "
        "SwiGLU above with alpha = swiglu_alpha (the hub config has no swiglu_alpha key: default 1.702; "
        "transformers' Triton MXFP4 expert path hard-codes 1.702)",
        "norms": "RMSNorm y = w * x / sqrt(mean(x^2) + rms_norm_eps) in float32: input_layernorm, "
        "post_attention_layernorm, final model.norm; no shared experts, no dense layers",
        "expert_parameter_count_note": "num_parameters counts the dequantized expert weights for the MXFP4 "
        "fixture; active_parameters = num_parameters - num_layers * (num_experts - k) * expert_parameters_each, "
        "expert_parameters_each = H*2I + 2I + I*H + H (weights and both biases)",
    }


def capture_effects(ref, ids: list[int]) -> dict:
    """Max |logit| differences proving the sliding window, the sinks, YaRN truncate=false matter."""
    x = torch.tensor([ids])
    out = {}
    with torch.no_grad():
        base = ref(input_ids=x, use_cache=False).logits[0]
        # sliding window off: every layer plain causal (a window longer than the sequence;
        # transformers' create_sliding_window_causal_mask refuses sliding_window=None)
        sw = ref.config.sliding_window
        ref.config.sliding_window = 1 << 30
        saved = [layer.self_attn.sliding_window for layer in ref.model.layers]
        for layer in ref.model.layers:
            layer.self_attn.sliding_window = None if layer.self_attn.sliding_window is None else 1 << 30
        try:
            nosw = ref(input_ids=x, use_cache=False).logits[0]
        finally:
            ref.config.sliding_window = sw
            for layer, s in zip(ref.model.layers, saved):
                layer.self_attn.sliding_window = s
        out["sliding_window_effect_max_abs_logit_diff"] = float((base - nosw).abs().max())
        out["sliding_window_effect_note"] = (
            f"the same model with config.sliding_window = 2^30 (no window: all layers plain causal; transformers' "
            f"mask builder refuses None), on the {len(ids)}-token golden sequence logits_2"
        )
        sinks = [layer.self_attn.sinks.detach().clone() for layer in ref.model.layers]
        try:
            for layer in ref.model.layers:
                layer.self_attn.sinks.data.zero_()
            zero = ref(input_ids=x, use_cache=False).logits[0]
            for layer in ref.model.layers:
                layer.self_attn.sinks.data.fill_(float("-inf"))
            ninf = ref(input_ids=x, use_cache=False).logits[0]
        finally:
            for layer, s in zip(ref.model.layers, sinks):
                layer.self_attn.sinks.data.copy_(s)
        out["sinks_effect_max_abs_logit_diff_vs_zero_sinks"] = float((base - zero).abs().max())
        out["sinks_effect_max_abs_logit_diff_vs_no_sinks"] = float((base - ninf).abs().max())
        out["sinks_values"] = [[float(v) for v in s] for s in sinks]
        back = ref(input_ids=x, use_cache=False).logits[0]
        if not torch.equal(back, base):
            raise RuntimeError("model not restored after the effect checks")
    # YaRN truncate flag
    rp = dict(ref.config.rope_parameters)
    inv_f, _ = yarn_inv_freq(ref.config.head_dim, rp)
    inv_t, _ = yarn_inv_freq(ref.config.head_dim, {**rp, "truncate": True})
    out["rope_truncate_false_vs_true_max_abs_inv_freq_diff"] = float((inv_f - inv_t).abs().max())
    hf_inv = ref.model.rotary_emb.inv_freq.double()
    out["rope_inv_freq_reimplementation_max_abs_diff"] = float((hf_inv - inv_f).abs().max())
    if out["rope_inv_freq_reimplementation_max_abs_diff"] > 1e-7:
        raise RuntimeError("YaRN re-implementation differs from transformers")
    if out["rope_truncate_false_vs_true_max_abs_inv_freq_diff"] == 0:
        raise RuntimeError("truncate does not matter with these rope parameters")
    if out["sliding_window_effect_max_abs_logit_diff"] < 1e-3:
        raise RuntimeError("the sliding window does not matter")
    if out["sinks_effect_max_abs_logit_diff_vs_no_sinks"] < 1e-3:
        raise RuntimeError("the sinks do not matter")
    return out
