"""DeepSeek-V2/V3 and GLM-4.5 extras of the fixtures: router bias, router checks, the MTP layer.

Holds `randomize_router_bias` (a random e_score_correction_bias of std `ROUTER_BIAS_STD`) and
`restore_fp32_buffers` (that buffer stays float32 next to bf16 weights, as in hub checkpoints),
`router_selection_stats` with its re-implementation of the DeepSeek/GLM router selection
(`_select_experts`: softmax or sigmoid scores, correction bias, group-limited top-k), which must
pick exactly transformers' experts and weights, and the hub-style multi-token-prediction layer
of the GLM fixture: `add_mtp_tensors` writes it and `mtp_load_check` loads it into transformers'
own MtpModel.
"""

from __future__ import annotations

import glob
import os

import fixture_env  # noqa: F401  (offline, quiet Hugging Face libraries)
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from fixture_golden import full_logits
from fixture_models import INIT_RANGE, moe_layer_indices


# e_score_correction_bias is a zero-initialised buffer; a random one (this std,
# comparable to the spread of the sigmoid scores) changes the expert choice.
ROUTER_BIAS_STD = 0.3


def randomize_router_bias(model: torch.nn.Module, seed: int, std: float) -> None:
    g = torch.Generator().manual_seed(seed)
    n = 0
    with torch.no_grad():
        for name, buf in model.named_buffers():
            if name.endswith("e_score_correction_bias"):
                buf.copy_(std * torch.randn(buf.shape, generator=g))
                n += 1
    if n == 0:
        raise RuntimeError("no e_score_correction_bias buffer to randomise")


def restore_fp32_buffers(model: torch.nn.Module, copies: dict) -> None:
    """Put float32 buffers back after model.to(bf16): hub checkpoints store
    e_score_correction_bias as F32 next to BF16 weights."""
    for name, t in copies.items():
        mod_name, _, attr = name.rpartition(".")
        mod = model.get_submodule(mod_name)
        if attr not in mod._buffers:
            raise RuntimeError(f"{name} is not a buffer")
        setattr(mod, attr, t.clone())


def _group_limited(n_group, topk_group) -> bool:
    return n_group is not None and topk_group is not None and 1 < n_group and topk_group < n_group


def _select_experts(choice: torch.Tensor, top_k: int, n_group, topk_group, group_score: str, fill: float):
    """Re-implementation of the DeepSeek/GLM router selection.

    Returns (sorted expert ids [T, top_k], sorted kept-group ids [T, topk_group] or None)."""
    t, e = choice.shape
    groups = None
    if _group_limited(n_group, topk_group):
        per = e // n_group
        grouped = choice.view(t, n_group, per)
        if group_score == "top2_sum":
            gs = grouped.topk(2, dim=-1).values.sum(dim=-1)
        elif group_score == "max":
            gs = grouped.max(dim=-1).values
        else:
            raise ValueError(group_score)
        gidx = gs.topk(topk_group, dim=-1).indices
        keep = torch.zeros(t, n_group, dtype=torch.bool).scatter(1, gidx, True).repeat_interleave(per, dim=1)
        choice = choice.masked_fill(~keep, fill)
        groups = gidx.sort(dim=-1).values
    idx = choice.topk(top_k, dim=-1).indices.sort(dim=-1).values
    return idx, groups


def _rows_differ(a: torch.Tensor, b: torch.Tensor) -> int:
    return int((a != b).any(dim=-1).sum())


@torch.no_grad()
def router_selection_stats(ref, model_type: str, prompts: list[list[int]]) -> dict:
    """Run the prompts, capture every MoE router input, re-run the routing math with
    and without e_score_correction_bias / group limiting, and count the (token, layer)
    pairs whose chosen expert set changes.  Also proves the re-implementation picks
    exactly the experts (and weights) transformers picked."""
    cfg = ref.config
    captured = []
    hooks = []
    for li in moe_layer_indices(model_type, cfg):
        gate = ref.model.layers[li].mlp.gate

        def hook(mod, inp, out, li=li):
            x = inp[0].reshape(-1, inp[0].shape[-1]).float().clone()
            captured.append((li, x, out[1].clone(), out[2].clone()))

        hooks.append(gate.register_forward_hook(hook))
    try:
        for ids in prompts:
            full_logits(ref, ids)
    finally:
        for h in hooks:
            h.remove()
    k = cfg.num_experts_per_tok
    n = bias_sel = bias_grp = grp_sel = zero_fill_sel = 0
    for li, x, actual_w, actual_idx in captured:
        gate = ref.model.layers[li].mlp.gate
        logits = torch.nn.functional.linear(x, gate.weight.float())
        if model_type == "deepseek_v2":
            scores = logits.softmax(dim=-1)
            limited = cfg.topk_method == "group_limited_greedy"
            if cfg.topk_method not in ("greedy", "group_limited_greedy"):
                raise ValueError(cfg.topk_method)
            full, _ = _select_experts(scores, k, cfg.n_group if limited else None, cfg.topk_group, "max", 0.0)
            plain, _ = _select_experts(scores, k, None, None, "max", 0.0)
            want_w = scores.gather(1, actual_idx) * cfg.routed_scaling_factor
        else:
            scores = logits.sigmoid()
            bias = gate.e_score_correction_bias.float()
            full, g_full = _select_experts(scores + bias, k, cfg.n_group, cfg.topk_group, "top2_sum", float("-inf"))
            nobias, g_nobias = _select_experts(scores, k, cfg.n_group, cfg.topk_group, "top2_sum", float("-inf"))
            plain, _ = _select_experts(scores + bias, k, None, None, "top2_sum", float("-inf"))
            # DeepSeek's own V3 code masks the dropped groups with 0.0 instead of -inf.
            zero_fill, _ = _select_experts(scores + bias, k, cfg.n_group, cfg.topk_group, "top2_sum", 0.0)
            zero_fill_sel += _rows_differ(full, zero_fill)
            bias_sel += _rows_differ(full, nobias)
            if g_full is not None:
                bias_grp += _rows_differ(g_full, g_nobias)
            want_w = scores.gather(1, actual_idx)
            if cfg.norm_topk_prob:
                want_w = want_w / (want_w.sum(dim=-1, keepdim=True) + 1e-20)
            want_w = want_w * cfg.routed_scaling_factor
        if not torch.equal(full, actual_idx.sort(dim=-1).values):
            raise RuntimeError(f"layer {li}: re-implemented router selection differs from transformers")
        if not torch.allclose(want_w, actual_w.float(), rtol=1e-6, atol=0):
            raise RuntimeError(f"layer {li}: re-implemented router weights differ from transformers")
        grp_sel += _rows_differ(full, plain)
        n += x.shape[0]
    out = {"router_tokens_checked": n, "router_reimplementation_matches_transformers": True}
    grouped = _group_limited(cfg.n_group, cfg.topk_group)
    if model_type == "deepseek_v2" and cfg.topk_method == "greedy":
        grouped = False
    if model_type != "deepseek_v2":
        out["bias_changes_selection_fraction"] = bias_sel / n
        if bias_sel == 0:
            raise RuntimeError("e_score_correction_bias never changes the expert choice on the golden prompts")
        if grouped:
            out["bias_changes_group_choice_fraction"] = bias_grp / n
            out["zero_instead_of_neg_inf_group_mask_changes_selection_fraction"] = zero_fill_sel / n
    if grouped:
        out["group_limit_changes_selection_fraction"] = grp_sel / n
        if grp_sel == 0:
            raise RuntimeError("group-limited selection never differs from plain top-k on the golden prompts")
    return out


def add_mtp_tensors(fixture_dir: str, cfg, model_type: str, seed: int) -> list[str]:
    """Add a hub-style multi-token-prediction layer, model.layers.{num_hidden_layers}.*:
    eh_proj [H, 2H], enorm, hnorm, shared_head.norm and a full MoE decoder layer
    (names and dtypes copied from the last MoE layer), all random.  transformers'
    CausalLM ignores them."""
    files = sorted(glob.glob(os.path.join(fixture_dir, "*.safetensors")))
    if [os.path.basename(f) for f in files] != ["model.safetensors"]:
        raise RuntimeError(f"MTP tensors need a single-file checkpoint, got {files}")
    path = files[0]
    tensors = load_file(path)
    src = f"model.layers.{moe_layer_indices(model_type, cfg)[-1]}."
    dst = f"model.layers.{cfg.num_hidden_layers}."
    g = torch.Generator().manual_seed(seed)

    def rand(name: str, shape, dtype) -> torch.Tensor:
        if name.endswith("e_score_correction_bias"):
            v = ROUTER_BIAS_STD * torch.randn(shape, generator=g)
        elif len(shape) == 1 and "norm" in name:
            v = 0.6 + 0.8 * torch.rand(shape, generator=g)
        elif name.endswith(".bias"):
            v = 0.2 * torch.randn(shape, generator=g)
        else:
            v = INIT_RANGE * torch.randn(shape, generator=g)
        return v.to(dtype)

    new = {}
    for name in sorted(tensors):
        if name.startswith(src):
            t = tensors[name]
            new[dst + name[len(src):]] = rand(name, tuple(t.shape), t.dtype)
    h = cfg.hidden_size
    wdtype = tensors[src + "self_attn.o_proj.weight"].dtype
    new[dst + "eh_proj.weight"] = rand("eh_proj.weight", (h, 2 * h), wdtype)
    for norm in ("enorm", "hnorm", "shared_head.norm"):
        new[f"{dst}{norm}.weight"] = rand(f"{norm}.weight", (h,), wdtype)
    if any(name in tensors for name in new):
        raise RuntimeError("MTP tensor names collide with model tensors")
    tensors.update(new)
    save_file(tensors, path, metadata={"format": "pt"})
    return sorted(new)


@torch.no_grad()
def mtp_load_check(ref, fixture_dir: str, mtp_names: list[str]) -> dict:
    """Load the MTP tensors into transformers' own MTP module (transformers.modeling_layers.MtpModel,
    the one generate(use_mtp=True) uses) with its checkpoint conversions, and require that
    every tensor is consumed and nothing but the shared embedding/head is missing."""
    from transformers.core_model_loading import convert_and_load_state_dict_in_model
    from transformers.modeling_layers import MtpModel
    from transformers.modeling_utils import LoadStateDictConfig

    mtp = MtpModel(ref, ref.config.num_nextn_predict_layers)
    slices = {}
    with safe_open(os.path.join(fixture_dir, "model.safetensors"), "pt") as f:
        for k in mtp_names:
            slices[k] = f.get_tensor(k)
        info, _ = convert_and_load_state_dict_in_model(
            model=mtp,
            state_dict=slices,
            load_config=LoadStateDictConfig(weight_mapping=mtp.get_weight_conversions(ref), dtype=torch.float32),
        )
    missing = sorted(info.missing_keys)
    if missing != ["embed_tokens.weight", "shared_head.weight"] or info.unexpected_keys or info.mismatched_keys:
        raise RuntimeError(f"MtpModel load: missing={missing} unexpected={info.unexpected_keys} "
                           f"mismatched={info.mismatched_keys} errors={info.conversion_errors}")
    state = mtp.state_dict()
    pre = f"model.layers.{ref.config.num_hidden_layers}."
    for src, dst in (("eh_proj.weight", "layers.0.eh_proj.weight"),
                     ("shared_head.norm.weight", "layers.0.post_norm.weight"),
                     ("self_attn.q_proj.bias", "layers.0.mtp_block.self_attn.q_proj.bias")):
        if not torch.equal(state[dst], slices[pre + src].float()):
            raise RuntimeError(f"MtpModel: {dst} != {pre + src}")
    return {
        "loader": "transformers.modeling_layers.MtpModel + convert_and_load_state_dict_in_model "
        "(MtpModel.get_weight_conversions)",
        "mtp_parameters": int(sum(p.numel() for n, p in mtp.named_parameters()
                                  if not n.startswith(("embed_tokens", "shared_head")))),
        "missing_keys": missing,
        "unexpected_keys": sorted(info.unexpected_keys),
        "renames": {"eh_proj/enorm/hnorm": "layers.0.<same>", "shared_head.norm": "layers.0.post_norm",
                    "other": "layers.0.mtp_block.<same>"},
    }
