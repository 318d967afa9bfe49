"""Model-side helpers of the fixtures: random initialisation, MoE bookkeeping, semantics summary.

Holds `INIT_RANGE` and `perturb_small_params` (random norm weights, biases and padding rows, so
a reader that forgets one fails the golden test), the per-architecture MoE bookkeeping
(`DEEPSEEK_STYLE`, `MLA_MODELS`, `moe_layer_indices`, `num_experts_of`, `expert_param_count`),
`check_expert_layout` (how the file's expert tensors map onto transformers' fused in-memory
experts), `load_reference` (the float32 eager from_pretrained every golden comes from) and
`config_summary` with `rope_summary` and `deepseek_style_summary`: the architecture semantics
that golden.json records under "config_summary".
"""

from __future__ import annotations

import glob
import os

import fixture_env  # noqa: F401  (offline, quiet Hugging Face libraries)
import torch
from safetensors import safe_open


INIT_RANGE = 0.15


def perturb_small_params(model: torch.nn.Module, seed: int) -> None:
    """Norm weights are initialised to 1 and biases to 0; randomise them so a
    C++ implementation that forgets to apply them fails the golden test."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1 and "norm" in name:
                p.copy_(0.6 + 0.8 * torch.rand(p.shape, generator=g))
            elif name.endswith(".bias"):
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
        # nn.Embedding(padding_idx=...) zeroes the pad row at init; a real
        # checkpoint has no such zero row.
        for mod in model.modules():
            if isinstance(mod, torch.nn.Embedding) and mod.padding_idx is not None:
                row = mod.weight[mod.padding_idx]
                row.copy_(INIT_RANGE * torch.randn(row.shape, generator=g))


def expert_param_count(model_type: str, cfg) -> int:
    if model_type == "mixtral":
        inter = cfg.intermediate_size
    elif model_type == "olmoe":
        inter = cfg.intermediate_size
    else:
        inter = cfg.moe_intermediate_size
    return 3 * cfg.hidden_size * inter


# DeepSeek-style models: the first `first_k_dense_replace` layers have a dense
# MLP, all later ones a routed MoE plus always-active shared experts.
DEEPSEEK_STYLE = ("deepseek_v2", "deepseek_v3", "glm4_moe")
MLA_MODELS = ("deepseek_v2", "deepseek_v3")


def moe_layer_indices(model_type: str, cfg) -> list[int]:
    n = cfg.num_hidden_layers
    if model_type in ("mixtral", "olmoe"):
        return list(range(n))
    if model_type in DEEPSEEK_STYLE:
        return list(range(cfg.first_k_dense_replace, n))
    return [
        i
        for i in range(n)
        if i not in cfg.mlp_only_layers and cfg.num_experts > 0 and (i + 1) % cfg.decoder_sparse_step == 0
    ]


def num_experts_of(model_type: str, cfg) -> int:
    if model_type == "mixtral":
        return cfg.num_local_experts
    if model_type in DEEPSEEK_STYLE:
        return cfg.n_routed_experts
    return cfg.num_experts


def check_expert_layout(fixture_dir: str, ref, spec: dict, tensors: dict | None = None) -> None:
    """Assert how the file layout maps onto the in-memory fused experts:
    gate_up_proj[e] == cat([gate (w1), up (w3)], dim=0), down_proj[e] == w2.

    `tensors` (name -> float32 tensor) replaces reading the fixture files, e.g.
    with the dequantized weights of an FP8 checkpoint."""
    if tensors is None:
        files = sorted(glob.glob(os.path.join(fixture_dir, "*.safetensors")))
        tensors = {}
        for fn in files:
            with safe_open(fn, "pt") as f:
                for k in f.keys():
                    tensors[k] = f.get_tensor(k).float()
    mt = spec["model_type"]
    cfg = ref.config
    for li in moe_layer_indices(mt, cfg):
        ex = ref.model.layers[li].mlp.experts
        if not spec["save_original_format"]:
            assert torch.equal(ex.gate_up_proj, tensors[f"model.layers.{li}.mlp.experts.gate_up_proj"])
            assert torch.equal(ex.down_proj, tensors[f"model.layers.{li}.mlp.experts.down_proj"])
            continue
        inter = ex.down_proj.shape[-1]
        for e in range(num_experts_of(mt, cfg)):
            if mt == "mixtral":
                pre = f"model.layers.{li}.block_sparse_moe.experts.{e}."
                g, u, d = pre + "w1.weight", pre + "w3.weight", pre + "w2.weight"
            else:
                pre = f"model.layers.{li}.mlp.experts.{e}."
                g, u, d = pre + "gate_proj.weight", pre + "up_proj.weight", pre + "down_proj.weight"
            assert torch.equal(ex.gate_up_proj[e, :inter], tensors[g])
            assert torch.equal(ex.gate_up_proj[e, inter:], tensors[u])
            assert torch.equal(ex.down_proj[e], tensors[d])


def load_reference(fixture_dir: str, cls):
    model = cls.from_pretrained(
        fixture_dir,
        dtype=torch.float32,
        attn_implementation="eager",
        experts_implementation="eager",
    )
    model.eval()
    return model


def rope_summary(model) -> dict:
    rot = model.model.rotary_emb
    return {
        "rope_type": rot.rope_type,
        "inv_freq": [float(v) for v in rot.inv_freq.tolist()],
        "attention_scaling": float(rot.attention_scaling),
    }


def config_summary(model_type: str, cfg, model) -> dict:
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    s = {
        "model_type": model_type,
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.hidden_size,
        "num_hidden_layers": cfg.num_hidden_layers,
        "num_attention_heads": cfg.num_attention_heads,
        "num_key_value_heads": cfg.num_key_value_heads,
        "head_dim": head_dim,
        "hidden_act": cfg.hidden_act,
        "rms_norm_eps": cfg.rms_norm_eps,
        "max_position_embeddings": cfg.max_position_embeddings,
        "rope_parameters": dict(cfg.rope_parameters),
        "rope_effective": rope_summary(model),
        "tie_word_embeddings": bool(cfg.tie_word_embeddings),
        "num_experts": num_experts_of(model_type, cfg),
        "num_experts_per_tok": cfg.num_experts_per_tok,
        "moe_layers": moe_layer_indices(model_type, cfg),
        "expert_intermediate_size": expert_param_count(model_type, cfg) // (3 * cfg.hidden_size),
        "bos_token_id": cfg.bos_token_id,
        "eos_token_id": cfg.eos_token_id,
        "pad_token_id": cfg.pad_token_id,
        "attention_scale": head_dim ** -0.5,
    }
    if model_type == "mixtral":
        s.update(
            sliding_window=cfg.sliding_window,
            norm_topk_prob=True,  # Mixtral always renormalises the top-k weights
            router_softmax="float32 softmax over all experts, top-k, renormalise",
        )
    if model_type in ("qwen3_moe", "qwen2_moe"):
        s.update(
            norm_topk_prob=cfg.norm_topk_prob,
            mlp_only_layers=list(cfg.mlp_only_layers),
            decoder_sparse_step=cfg.decoder_sparse_step,
            dense_intermediate_size=cfg.intermediate_size,
            moe_intermediate_size=cfg.moe_intermediate_size,
            sliding_window=cfg.sliding_window,
            use_sliding_window=cfg.use_sliding_window,
        )
    if model_type == "qwen3_moe":
        s.update(attention_bias=cfg.attention_bias, qk_norm="per-head RMSNorm over head_dim, before RoPE")
    if model_type == "qwen2_moe":
        s.update(
            qkv_bias=cfg.qkv_bias,
            shared_expert_intermediate_size=cfg.shared_expert_intermediate_size,
            layer_types=list(cfg.layer_types),
        )
    if model_type == "olmoe":
        s.update(
            norm_topk_prob=cfg.norm_topk_prob,
            clip_qkv=cfg.clip_qkv,
            attention_bias=cfg.attention_bias,
            qk_norm="RMSNorm over the whole q_proj output (num_heads*head_dim) / k_proj output "
            "(num_kv_heads*head_dim), before clip_qkv and RoPE",
        )
    if model_type in DEEPSEEK_STYLE:
        s.update(deepseek_style_summary(model_type, cfg, model))
    return s


def deepseek_style_summary(model_type: str, cfg, model) -> dict:
    """Semantics of DeepSeek-V2/V3 and GLM-4.5 (Glm4Moe) models as transformers implements them."""
    layers = model.model.layers
    scales = sorted({float(layer.self_attn.scaling) for layer in layers})
    if len(scales) != 1:
        raise RuntimeError(f"attention scaling differs between layers: {scales}")
    s = {
        # What eager attention multiplies q.k by (self_attn.scaling); for MLA with YaRN it
        # includes the mscale_all_dim correction (rope_effective has the cos/sin factor).
        "attention_scale": scales[0],
        "attention_bias": cfg.attention_bias,
        "n_routed_experts": cfg.n_routed_experts,
        "n_shared_experts": cfg.n_shared_experts,
        "moe_intermediate_size": cfg.moe_intermediate_size,
        "shared_expert_intermediate_size": cfg.moe_intermediate_size * cfg.n_shared_experts,
        "dense_intermediate_size": cfg.intermediate_size,
        "first_k_dense_replace": cfg.first_k_dense_replace,
        "routed_scaling_factor": cfg.routed_scaling_factor,
        "norm_topk_prob": cfg.norm_topk_prob,
        "n_group": cfg.n_group,
        "topk_group": cfg.topk_group,
        "num_nextn_predict_layers": getattr(cfg, "num_nextn_predict_layers", None),
        "moe_block": "routed experts (weighted) + one shared-experts MLP of intermediate size "
        "moe_intermediate_size*n_shared_experts (unweighted, always active), both fed the same "
        "post_attention_layernorm output",
    }
    if model_type in ("deepseek_v3", "glm4_moe"):
        s.update(
            topk_method="noaux_tc",
            scoring_func="sigmoid",
            router="scores = sigmoid(x @ gate.weight^T) in float32; choice = scores + e_score_correction_bias; "
            "group score = sum of the top-2 choice values in each of the n_group groups; keep the topk_group best "
            "groups (other experts masked to -inf); top-k experts by choice; weights = UNBIASED scores of the "
            "chosen experts, divided by (their sum + 1e-20) if norm_topk_prob (also for top_k=1), then times "
            "routed_scaling_factor. (DeepSeek's own V3 code masks dropped groups with 0.0, not -inf, which differs "
            "when kept experts have negative score+bias)",
            e_score_correction_bias="float32 buffer model.layers.L.mlp.gate.e_score_correction_bias: used for "
            "the selection only, never in the weights",
        )
    if model_type == "deepseek_v2":
        s.update(
            topk_method=cfg.topk_method,
            scoring_func="softmax",
            router="scores = softmax(x @ gate.weight^T) in float32 over all experts; 'greedy': top-k of scores; "
            "'group_limited_greedy': group score = max score in each of the n_group groups, keep the topk_group "
            "best groups (other scores set to 0.0), then top-k; weights = chosen scores times "
            "routed_scaling_factor, never renormalised: transformers' DeepseekV2TopkRouter ignores norm_topk_prob "
            "(DeepSeek's own V2 code renormalises INSTEAD of scaling when norm_topk_prob and top_k > 1; with "
            "norm_topk_prob=false, as in the V2 hub configs, both agree)",
            norm_topk_prob_used_by_transformers=False,
        )
    if model_type in MLA_MODELS:
        attn = layers[0].self_attn
        latent_eps = {float(attn.kv_a_layernorm.variance_epsilon)}
        if attn.q_a_layernorm is not None:
            latent_eps.add(float(attn.q_a_layernorm.variance_epsilon))
        if len(latent_eps) != 1:
            raise RuntimeError(f"latent norm eps differ: {latent_eps}")
        if model_type == "deepseek_v3":
            interleave = bool(cfg.rope_interleave)
            rope_layout = (
                "rope_interleave=true: the rope part of q and k is rotated in adjacent pairs (x[2i], x[2i+1]) by "
                "inv_freq[i] (transformers writes the rotated pairs de-interleaved, [evens, odds], which leaves q.k "
                "unchanged)"
                if interleave
                else "rope_interleave=false: rotate_half (NeoX) layout on the rope part"
            )
        else:
            interleave = True
            rope_layout = (
                "always adjacent pairs (x[2i], x[2i+1]) rotated by inv_freq[i] (complex multiplication); "
                "DeepseekV2 has no rope_interleave key"
            )
        s.update(
            head_dim=cfg.qk_nope_head_dim + cfg.qk_rope_head_dim,
            config_head_dim=cfg.head_dim,
            rotary_dim=cfg.qk_rope_head_dim,
            q_lora_rank=cfg.q_lora_rank,
            kv_lora_rank=cfg.kv_lora_rank,
            qk_nope_head_dim=cfg.qk_nope_head_dim,
            qk_rope_head_dim=cfg.qk_rope_head_dim,
            v_head_dim=cfg.v_head_dim,
            rope_interleave=interleave,
            rope_layout=rope_layout,
            latent_norm_eps=latent_eps.pop(),
            mla="q = q_b_proj(q_a_layernorm(q_a_proj(x))) (q_proj(x) when q_lora_rank is null), per head "
            "[qk_nope | qk_rope]; kv_a_proj_with_mqa(x) = [kv_lora_rank | qk_rope]; the first part goes through "
            "kv_a_layernorm then kv_b_proj, per head [qk_nope | v_head]; the qk_rope part is one RoPE'd key "
            "shared by all heads; k = [k_nope | k_rope]; scores = q.k * attention_scale. head_dim here is "
            "qk_nope+qk_rope; config_head_dim is what transformers stores as config.head_dim (= qk_rope_head_dim). "
            "q_a_layernorm and kv_a_layernorm use eps latent_norm_eps (module default 1e-6, NOT rms_norm_eps)",
        )
    if model_type == "glm4_moe":
        head_dim = layers[0].self_attn.head_dim
        prf = cfg.rope_parameters.get("partial_rotary_factor", 1.0)
        s.update(
            head_dim=head_dim,
            partial_rotary_factor=prf,
            rotary_dim=int(head_dim * prf),
            rope_interleave=False,
            rope_layout="rotate_half (NeoX) on the first rotary_dim dims of every q/k head, the rest passes through",
            use_qk_norm=cfg.use_qk_norm,
            qk_norm="per-head RMSNorm over head_dim (eps rms_norm_eps), after q_proj/k_proj (+bias), before RoPE"
            if cfg.use_qk_norm
            else None,
            attention_bias_detail="q_proj, k_proj, v_proj have a bias when attention_bias; o_proj never has one",
        )
    return s
