"""The Qwen3-Next / Qwen3.5-MoE fixtures' specs, configs and random weights.

Holds the golden settings (`CHUNK_SIZE` of transformers' chunked gated delta rule, `LONG_LEN`,
`LOGIT_LENGTHS` = make_fixtures' lengths plus 150, `DECODE_PREFIX`), the tiny shapes shared by all
three fixtures (`SHAPES`, `QWEN_ROPE`), the `FIXTURES` list (name, model and config classes, seed,
expert layout, hub-style config.json, DeltaNet kernel layer, config), the special token ids and
generation_config.json (as token strings), `qwen3_5_tokenizer_json` (the qwen tokenizer with
Qwen3.5's pre-tokenizer regex), the layer bookkeeping `is_moe_layer` and `gdn_modules`,
`perturb_hybrid` (the seeded random weights) and `hub_style_qwen3_next_config` (config.json
rewritten the way the Qwen3-Next hub checkpoints spell it, checked to reload identically).
"""

from __future__ import annotations

import copy
import json
import math
import os

import fixture_env  # noqa: F401  (offline, quiet Hugging Face libraries)
import torch
from transformers import Qwen3NextConfig, Qwen3NextForCausalLM
from transformers.models.qwen3_5 import tokenization_qwen3_5
from transformers.models.qwen3_5_moe import Qwen3_5MoeForCausalLM, Qwen3_5MoeTextConfig
from transformers.models.qwen3_5_moe import modeling_qwen3_5_moe as modeling_q35
from transformers.models.qwen3_next import modeling_qwen3_next as modeling_qn

import fixture_golden
from fixture_golden import save_json
from fixture_models import INIT_RANGE, perturb_small_params  # INIT_RANGE: make_fixtures' initializer_range


CHUNK_SIZE = 64  # torch_chunk_gated_delta_rule's default, the one Qwen3NextGatedDeltaNet uses
LONG_LEN = 150  # > 2 * CHUNK_SIZE
LOGIT_LENGTHS = list(fixture_golden.LOGIT_LENGTHS) + [LONG_LEN]
DECODE_PREFIX = 100  # recurrent_decode_check: cached prefill of 100, then 50 single-token steps

QWEN_ROPE = {"rope_type": "default", "rope_theta": 1e7, "partial_rotary_factor": 0.25}

SHAPES = dict(
    hidden_size=64,
    num_hidden_layers=6,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=32,
    linear_num_key_heads=2,
    linear_num_value_heads=4,
    linear_key_head_dim=16,
    linear_value_head_dim=16,
    linear_conv_kernel_dim=4,
    num_experts=16,
    num_experts_per_tok=4,
    moe_intermediate_size=32,
    shared_expert_intermediate_size=64,
    rms_norm_eps=1e-6,
    max_position_embeddings=512,
    tie_word_embeddings=False,
    initializer_range=INIT_RANGE,
    hidden_act="silu",
    attention_bias=False,
)

FIXTURES = [
    {
        "name": "qwen3_next",
        "kind": "qwen3_next",
        "cls": Qwen3NextForCausalLM,
        "cfg_cls": Qwen3NextConfig,
        "seed": 7001,
        "save_original_format": True,
        # The hub Qwen3-Next config.json style (Qwen/Qwen3-Next-80B-A3B-*): rope_theta and
        # partial_rotary_factor at the top level, full_attention_interval instead of layer_types.
        "hub_style_config": {"full_attention_interval": 3},
        "kernel_layer": 3,  # first DeltaNet layer after a full-attention layer
        "config": dict(
            SHAPES,
            layer_types=["linear_attention", "linear_attention", "full_attention"] * 2,
            intermediate_size=96,  # unused: no dense layer
            decoder_sparse_step=1,
            mlp_only_layers=[],
            norm_topk_prob=True,
            rope_parameters=dict(QWEN_ROPE),
        ),
    },
    {
        "name": "qwen3_next_fused",
        "kind": "qwen3_next",
        "cls": Qwen3NextForCausalLM,
        "cfg_cls": Qwen3NextConfig,
        "seed": 7002,
        "save_original_format": False,
        "hub_style_config": None,
        "kernel_layer": 1,
        "config": dict(
            SHAPES,
            num_hidden_layers=4,
            layer_types=["linear_attention", "linear_attention", "full_attention", "linear_attention"],
            linear_num_key_heads=1,
            linear_num_value_heads=4,
            linear_key_head_dim=16,
            linear_value_head_dim=32,
            intermediate_size=96,
            decoder_sparse_step=1,
            mlp_only_layers=[1],
            norm_topk_prob=True,
            tie_word_embeddings=True,
            rope_parameters=dict(QWEN_ROPE),
        ),
    },
    {
        "name": "qwen3_5_moe",
        "kind": "qwen3_5_moe",
        "cls": Qwen3_5MoeForCausalLM,
        "cfg_cls": Qwen3_5MoeTextConfig,
        "seed": 7003,
        "save_original_format": False,
        "hub_style_config": None,
        "kernel_layer": None,
        "qwen3_5_pretokenizer": True,
        "config": dict(
            SHAPES,
            layer_types=["linear_attention", "linear_attention", "full_attention"] * 2,
            # Qwen3.5 ships interleaved MRoPE; the sections add up to rotary_dim / 2 = 32 * 0.25 / 2 = 4
            # (the hub's [11, 11, 10] adds up to 256 * 0.25 / 2 = 32 for its head_dim 256).
            rope_parameters=dict(QWEN_ROPE, mrope_section=[2, 1, 1], mrope_interleaved=True),
        ),
    },
]

SPECIAL_IDS = {"bos_token_id": "<|endoftext|>", "eos_token_id": "<|im_end|>", "pad_token_id": None}
GENERATION = {"bos_token_id": "<|endoftext|>", "eos_token_id": ["<|im_end|>", "<|endoftext|>"],
              "pad_token_id": "<|endoftext|>"}
EOS_TEXT = "<|im_end|>"


def qwen3_5_tokenizer_json(tok_json: dict) -> dict:
    """The qwen tokenizer with Qwen3.5's pre-tokenizer regex (letters may carry combining marks, \\p{M}).

    AutoTokenizer maps model_type qwen3_5_moe_text to Qwen3_5Tokenizer whatever tokenizer_class says
    (MODELS_WITH_INCORRECT_HUB_TOKENIZER_CLASS) and that class rebuilds the pre-tokenizer with
    tokenization_qwen3_5.PRETOKENIZE_REGEX, so this is the tokenization transformers applies to Qwen3.5."""
    j = copy.deepcopy(tok_json)
    split = j["pre_tokenizer"]["pretokenizers"][0]
    assert split["type"] == "Split" and "Regex" in split["pattern"], split
    split["pattern"]["Regex"] = tokenization_qwen3_5.PRETOKENIZE_REGEX
    return j


def is_moe_layer(kind: str, cfg, i: int) -> bool:
    if kind == "qwen3_5_moe":
        return True  # Qwen3.5-MoE: every layer sparse (no mlp_only_layers / decoder_sparse_step)
    return i not in cfg.mlp_only_layers and cfg.num_experts > 0 and (i + 1) % cfg.decoder_sparse_step == 0


def gdn_modules(model):
    return {i: layer.linear_attn for i, layer in enumerate(model.model.layers) if hasattr(layer, "linear_attn")}


# ----------------------------------------------------------------------------------------------
# random weights
# ----------------------------------------------------------------------------------------------


ZERO_CENTRED_NORMS = (modeling_qn.Qwen3NextRMSNorm, modeling_q35.Qwen3_5MoeRMSNorm)


def perturb_hybrid(model, seed: int) -> dict:
    """make_fixtures.perturb_small_params, then the zero-centred norms and the DeltaNet parameters.

    perturb_small_params sets every 1-D parameter whose name contains "norm" to U(0.6, 1.4).  That
    is right for the DeltaNet gated norm linear_attn.norm (multiplies by weight directly, init 1)
    and harmless for the zero-centred RMSNorms (input/post_attention_layernorm, model.norm, q_norm,
    k_norm: multiply by 1 + weight, init 0), whose gain it makes 1.6..2.4.  Those gains, compounded
    over 13+ norms (q_norm and k_norm together scale the attention logits by ~4), made the random
    network badly conditioned (float32 vs float64 logits differed by up to ~1.7e-4 relative, too
    close to the C++ tolerance of 1e-4), so the zero-centred weights are redrawn as U(-0.4, 0.4):
    gain 1 + w in 0.6..1.4 like every other fixture's norms, and a reader using w instead of 1 + w
    (or ignoring it) is still far off.  perturb_small_params leaves A_log (init log U(0.01, 16)),
    dt_bias (init 1) and conv1d (init N(0, 0.15)) alone; they are redrawn so that some heads keep a
    long memory across the 64-token chunks and others forget within a few tokens."""
    perturb_small_params(model, seed)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, ZERO_CENTRED_NORMS):
                mod.weight.copy_(-0.4 + 0.8 * torch.rand(mod.weight.shape, generator=g))
        for la in gdn_modules(model).values():
            nv = la.num_v_heads
            # A log-uniform in [0.01, 1]: per-step decay exp(-A * softplus(a + dt_bias)).
            la.A_log.copy_(math.log(0.01) + (math.log(1.0) - math.log(0.01)) * torch.rand(nv, generator=g))
            la.dt_bias.copy_(-2.0 + 3.0 * torch.rand(nv, generator=g))
            la.conv1d.weight.copy_(0.5 * torch.randn(la.conv1d.weight.shape, generator=g))
    return {
        "helper": "make_fixtures.perturb_small_params(model, seed + 7): every 1-D parameter whose name contains "
        "'norm' -> U(0.6, 1.4). That is what the DeltaNet gated norm linear_attn.norm keeps (output * weight, "
        "transformers initialises it to 1). No biases exist (attention_bias false)",
        "zero_centred_norms": "input_layernorm, post_attention_layernorm, model.norm, self_attn.q_norm, "
        "self_attn.k_norm "
        "(output * (1 + weight), transformers initialises weight to 0) are then redrawn as U(-0.4, 0.4), i.e. gain "
        "0.6..1.4: the helper's U(0.6, 1.4) would be a gain of 1.6..2.4 and made the random network badly "
        "conditioned (float32 vs float64 logits up to ~1.7e-4 relative)",
        "deltanet": "then per linear-attention layer: A_log = log(A), A log-uniform in [0.01, 1]; dt_bias ~ U(-2, 1); "
        "conv1d.weight ~ N(0, 0.5^2)",
        "other": "all matrices (projections, router, shared_expert_gate, experts, embeddings, lm_head) "
        f"N(0, {INIT_RANGE}^2) "
        "from transformers' init with initializer_range",
    }


def hub_style_qwen3_next_config(fdir: str, spec: dict, cfg) -> dict:
    """Rewrite config.json the way the Qwen3-Next hub configs spell it; assert it reloads identically."""
    cpath = os.path.join(fdir, "config.json")
    with open(cpath, encoding="utf-8") as f:
        cj = json.load(f)
    rp = cj.pop("rope_parameters")
    assert rp == {"rope_type": "default", "rope_theta": QWEN_ROPE["rope_theta"],
                  "partial_rotary_factor": QWEN_ROPE["partial_rotary_factor"]}, rp
    cj["rope_theta"] = rp["rope_theta"]
    cj["partial_rotary_factor"] = rp["partial_rotary_factor"]
    lt = cj.pop("layer_types")
    cj.update(spec["hub_style_config"])
    save_json(dict(sorted(cj.items())), cpath)
    back = Qwen3NextConfig.from_pretrained(fdir)
    if back.layer_types != lt or dict(back.rope_parameters) != rp:
        raise RuntimeError(f"hub-style config reloads differently: {back.layer_types} {back.rope_parameters}")
    return {
        "style": "hub Qwen3-Next (Qwen/Qwen3-Next-80B-A3B-*): rope_theta and partial_rotary_factor at the top level "
        "(no rope_parameters), full_attention_interval instead of layer_types",
        "layer_types_rule": "layer i is full_attention iff (i + 1) % full_attention_interval == 0, else "
        "linear_attention (Qwen3NextConfig.__post_init__)",
        "reloads_to": {"layer_types": back.layer_types, "rope_parameters": dict(back.rope_parameters)},
    }
