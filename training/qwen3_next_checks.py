"""Checkpoint and conditioning checks of the Qwen3-Next / Qwen3.5-MoE fixtures.

Holds `read_tensors` and `write_variant` (a fixture copy with renamed or extra tensors),
`check_expert_layout` (the saved per-expert or fused expert tensors against transformers'
in-memory fused experts; its text goes to golden.json "expert_layout_detail"), `conditioning`
and `well_conditioned` with `ROUTER_GAP_MIN`, `CORE_RMS_MIN`, `MAX_DRAWS` (random golden
sequences are redrawn while a router near-tie or a near-zero DeltaNet output could throw a float32
reader off), `mtp_check` (hub mtp.* tensors are dropped on load), `hub_prefix_check` (Qwen3.5's hub
model.language_model.* names load to the same model) and `mrope_check` (interleaved MRoPE equals
plain partial RoPE for text positions).
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile

import fixture_env  # noqa: F401  (offline, quiet Hugging Face libraries)
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from fixture_golden import full_logits
from fixture_models import load_reference
from qwen3_next_specs import gdn_modules, is_moe_layer


def read_tensors(fdir: str) -> dict:
    out = {}
    for fn in sorted(os.listdir(fdir)):
        if fn.endswith(".safetensors"):
            with safe_open(os.path.join(fdir, fn), "pt") as f:
                for k in f.keys():
                    out[k] = f.get_tensor(k)
    return out


def check_expert_layout(fdir, ref, kind, per_expert: bool) -> str:
    tensors = {k: v.float() for k, v in read_tensors(fdir).items()}
    cfg = ref.config
    for li in range(cfg.num_hidden_layers):
        if not is_moe_layer(kind, cfg, li):
            continue
        ex = ref.model.layers[li].mlp.experts
        inter = cfg.moe_intermediate_size
        pre = f"model.layers.{li}.mlp.experts."
        if not per_expert:
            assert torch.equal(ex.gate_up_proj, tensors[pre + "gate_up_proj"])
            assert torch.equal(ex.down_proj, tensors[pre + "down_proj"])
            continue
        for e in range(cfg.num_experts):
            assert torch.equal(ex.gate_up_proj[e, :inter], tensors[f"{pre}{e}.gate_proj.weight"])
            assert torch.equal(ex.gate_up_proj[e, inter:], tensors[f"{pre}{e}.up_proj.weight"])
            assert torch.equal(ex.down_proj[e], tensors[f"{pre}{e}.down_proj.weight"])
    if per_expert:
        return ("per_expert: model.layers.L.mlp.experts.E.{gate_proj,up_proj}.weight [moe_intermediate_size, "
            "hidden] and "
                "down_proj.weight [hidden, moe_intermediate_size]; transformers fuses them on load into "
                "gate_up_proj[E] = cat(gate_proj, up_proj) (dim 0) and down_proj[E] (checked)")
    return ("fused: model.layers.L.mlp.experts.gate_up_proj [E, 2*moe_intermediate_size, hidden] (rows [gate | up] per "
            "expert: SwiGLU = silu(gate_up[e, :I] @ x) * (gate_up[e, I:] @ x)) and "
            "model.layers.L.mlp.experts.down_proj "
            "[E, hidden, moe_intermediate_size] (checked against the loaded model)")



def write_variant(src: str, dst: str, rename=None, extra: dict | None = None):
    """Copy a fixture directory to dst with its tensors renamed and/or extra tensors added."""
    os.makedirs(dst, exist_ok=True)
    for fn in os.listdir(src):
        if not fn.endswith(".safetensors") and os.path.isfile(os.path.join(src, fn)):
            shutil.copy2(os.path.join(src, fn), dst)
    tensors = read_tensors(src)
    if rename:
        tensors = {rename(k): v for k, v in tensors.items()}
    tensors.update(extra or {})
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(dst, "model.safetensors"),
              metadata={"format": "pt"})


@torch.no_grad()
def conditioning(ref, ids) -> dict:
    """Over all tokens of one forward: the smallest gap between the k-th and (k+1)-th router probability
    (float64 softmax of transformers' float32 router logits, all MoE layers) and the smallest per-head RMS
    of the delta-rule output entering the gated RMSNorm (all DeltaNet layers)."""
    k = ref.config.num_experts_per_tok
    gaps, rms = [math.inf], [math.inf]

    def router_hook(mod, args, out):
        probs = out[0].double().softmax(-1).sort(-1, descending=True).values
        gaps.append(float((probs[:, k - 1] - probs[:, k]).min()))

    def norm_hook(mod, args):
        rms.append(float(args[0].double().pow(2).mean(-1).sqrt().min()))

    hs = [layer.mlp.gate.register_forward_hook(router_hook) for layer in ref.model.layers if hasattr(layer.mlp, "gate")]
    hs += [la.norm.register_forward_pre_hook(norm_hook) for la in gdn_modules(ref).values()]
    try:
        full_logits(ref, ids)
    finally:
        for h in hs:
            h.remove()
    return {"router_min_gap": min(gaps), "deltanet_min_core_output_rms": min(rms)}


# A random golden sequence is redrawn while
#  - some token's k-th and (k+1)-th router probabilities are closer than ROUTER_GAP_MIN: a float32 reader may
#    then pick the other expert, which changes that token's logits by O(0.1) (with 150 tokens x 6 layers x 16
#    experts a gap of ~3e-6 happens by chance);
#  - some DeltaNet head output entering the gated RMSNorm has an RMS below CORE_RMS_MIN: such an output is
#    the result of cancellation (q nearly orthogonal to the state) and the norm, whose eps is 1e-6,
#    multiplies its float32 rounding error by up to 1/sqrt(eps) = 1000 (seen: 7e-5 relative logit error
#    between float32 transformers and float64 for a draw with an RMS of 7.5e-5).
ROUTER_GAP_MIN = 2e-5
CORE_RMS_MIN = 2e-4
MAX_DRAWS = 50


def well_conditioned(c: dict) -> bool:
    return c["router_min_gap"] >= ROUTER_GAP_MIN and c["deltanet_min_core_output_rms"] >= CORE_RMS_MIN



def mtp_check(fdir, cls, cfg, ids) -> dict:
    """transformers has no MTP module for these models: hub-named mtp.* tensors are dropped on load."""
    H = cfg.hidden_size
    g = torch.Generator().manual_seed(5)
    extra = {
        "mtp.fc.weight": (0.1 * torch.randn(H, 2 * H, generator=g)).to(torch.bfloat16),
        "mtp.norm.weight": torch.rand(H, generator=g).to(torch.bfloat16),
        "mtp.pre_fc_norm_embedding.weight": torch.rand(H, generator=g).to(torch.bfloat16),
        "mtp.pre_fc_norm_hidden.weight": torch.rand(H, generator=g).to(torch.bfloat16),
    }
    base = load_reference(fdir, cls)
    with tempfile.TemporaryDirectory(prefix="qwen_mtp_") as d:
        write_variant(fdir, d, extra=extra)
        with_mtp = load_reference(d, cls)
    same = torch.equal(full_logits(base, ids), full_logits(with_mtp, ids))
    has_mtp = any(n.startswith("mtp") for n, _ in with_mtp.named_parameters())
    if not same or has_mtp:
        raise RuntimeError("mtp.* tensors changed the transformers model")
    return {
        "config_fields": "none: the transformers 5.24 config classes have no num_nextn_predict_layers / "
        "mtp_num_hidden_layers field (the hub configs carry mtp_num_hidden_layers, which "
        "transformers would keep as an unused extra attribute) and the models have no MTP module, so there are "
        "no MTP weights to keep and this fixture has none",
        "load_behaviour": f"{cls.__name__}._keys_to_ignore_on_load_unexpected = "
        f"{cls._keys_to_ignore_on_load_unexpected}: hub mtp.* tensors are dropped silently",
        "checked": f"a copy with extra tensors {sorted(extra)} loads without MTP parameters and gives bit-identical "
        "logits",
    }


def hub_prefix_check(fdir, cls, ids) -> dict:
    """Qwen3.5 hub checkpoints are Qwen3_5MoeForConditionalGeneration with model.language_model.* names."""
    base = load_reference(fdir, cls)
    with tempfile.TemporaryDirectory(prefix="qwen35_prefix_") as d:
        write_variant(fdir, d, rename=lambda k: "model.language_model." + k[6:] if k.startswith("model.") else k)
        hub_named = load_reference(d, cls)
    same = torch.equal(full_logits(base, ids), full_logits(hub_named, ids))
    if not same:
        raise RuntimeError("model.language_model.* names do not load to the same model")
    return {
        "saved_prefix": "model. (model.embed_tokens, model.layers.L.*, model.norm) and lm_head.weight: what "
        "Qwen3_5MoeForCausalLM.save_pretrained writes, with either save_original_format",
        "hub_prefix": "model.language_model. (model.language_model.embed_tokens / layers.L.* / norm), "
        "lm_head.weight at "
        "the top level, plus model.visual.* (vision tower) and mtp.*: the hub checkpoints (e.g. Qwen/Qwen3.5-35B-A3B) "
        "are Qwen3_5MoeForConditionalGeneration with a composite config (model_type qwen3_5_moe, text_config "
        "model_type qwen3_5_moe_text, vision_config)",
        "why": "transformers 5.24 has a text-only causal LM for it, Qwen3_5MoeForCausalLM (config "
        "Qwen3_5MoeTextConfig, "
        "model_type qwen3_5_moe_text), so the fixture is saved from that class; its conversion mapping "
        "(conversion_mapping 'qwen3_5_text': PrefixChange(prefix_to_remove='language_model', model_prefix='model')) "
        "maps the hub's model.language_model.* names onto model.* on load and _keys_to_ignore_on_load_unexpected "
        "drops model.visual.* and mtp.*; a C++ reader should strip 'language_model.' the same way",
        "checked": "a copy of this fixture with every model.* tensor renamed model.language_model.* loads into "
        "Qwen3_5MoeForCausalLM with bit-identical logits",
        "hub_expert_layout": "fused, as written here: mlp.experts.gate_up_proj [E, 2*moe_intermediate_size, hidden] "
        "and "
        "mlp.experts.down_proj [E, hidden, moe_intermediate_size] (save_original_format=True would instead split "
        "them into per-expert tensors, which is NOT the hub layout, via the qwen2_moe conversion mapping)",
    }


def mrope_check(ref) -> dict:
    """For text, the three MRoPE position streams are equal, so MRoPE is plain (partial) RoPE."""
    rot = ref.model.rotary_emb
    T = 40
    x = torch.zeros(1, T, 8)
    pos = torch.arange(T)[None]
    cos, sin = rot(x, pos.view(1, 1, -1).expand(3, 1, -1))
    inv = rot.inv_freq
    ang = pos[..., None].float() * inv
    emb = torch.cat([ang, ang], -1)
    d = max(float((cos - emb.cos()).abs().max()), float((sin - emb.sin()).abs().max()))
    if d > 1e-6:
        raise RuntimeError(f"MRoPE differs from 1-D RoPE for text positions: {d}")
    return {
        "rope": "Qwen3_5MoeTextRotaryEmbedding: interleaved MRoPE over (t, h, w) position streams with mrope_section; "
        "Qwen3_5MoeTextModel expands text position_ids to (4, B, T) = (text, t, h, w), all equal to the token index "
        "for text-only input, which makes MRoPE identical to plain 1-D partial RoPE with the same inv_freq",
        "checked_max_abs_diff_cos_sin": d,
    }

