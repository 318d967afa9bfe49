"""The gpt-oss fixtures' specs and model construction.

Holds the tiny GptOssConfig shared by both fixtures (`BASE_CONFIG`: alternating sliding/full
attention layers, scaled-down YaRN `GPT_OSS_YARN`, clamped SwiGLU), the `FIXTURES` list (name,
seed, MXFP4 or bf16), the special token ids and generation_config.json (as token strings),
`randomize_gpt_oss` (expert weights and biases at scales that exercise the SwiGLU clamp, random
attention sinks), `hub_style_config` (openai/gpt-oss-20b's config.json spelling) and
`load_gpt_oss` (the float32 eager reference, MXFP4 dequantized by transformers' own loader).
"""

from __future__ import annotations

import fixture_env  # noqa: F401  (offline, quiet Hugging Face libraries)
import torch
from transformers import GptOssForCausalLM, Mxfp4Config

from fixture_models import INIT_RANGE
from gpt_oss_mxfp4 import HUB_MXFP4_QUANTIZATION_CONFIG


N_LAYERS = 4
LAYER_TYPES = ["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(N_LAYERS)]
# gpt-oss: yarn, theta 150000, factor 32, original 4096 (= 131072 / 32), beta 32/1, truncate false.
# Scaled down: factor 4 with original 64 = max_position_embeddings 256 / 4 (transformers warns
# when they disagree); with head_dim 16 the ramp is fractional for one frequency, so
# truncate false vs true matters (recorded in golden.json).
GPT_OSS_YARN = {
    "rope_type": "yarn",
    "rope_theta": 150000.0,
    "factor": 4.0,
    "original_max_position_embeddings": 64,
    "beta_fast": 32.0,
    "beta_slow": 1.0,
    "truncate": False,
}

# Expert weight scales: the gate/up pre-activations reach the swiglu_limit (7) for a few
# percent of the values, so the clamp is exercised; down_proj small to keep the residual tame.
EXPERT_GATE_UP_STD = 0.5
EXPERT_GATE_UP_BIAS_STD = 0.5
EXPERT_DOWN_STD = 0.04
EXPERT_DOWN_BIAS_STD = 0.2
SINK_MEAN, SINK_STD = 0.5, 1.0

BASE_CONFIG = dict(
    hidden_size=64,
    intermediate_size=64,
    num_hidden_layers=N_LAYERS,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    num_local_experts=8,
    num_experts_per_tok=2,
    layer_types=LAYER_TYPES,
    sliding_window=4,
    rope_parameters=GPT_OSS_YARN,
    swiglu_limit=7.0,
    swiglu_alpha=1.702,
    attention_bias=True,
    max_position_embeddings=256,
    rms_norm_eps=1e-5,
    tie_word_embeddings=False,
    initializer_range=INIT_RANGE,
)

FIXTURES = [
    {"name": "gpt_oss", "seed": 7001, "mxfp4": True},
    {"name": "gpt_oss_bf16", "seed": 7002, "mxfp4": False},
]

SPECIAL_IDS = {"bos_token_id": "<|startoftext|>", "eos_token_id": "<|return|>", "pad_token_id": "<|endoftext|>"}
GENERATION = {
    "bos_token_id": "<|startoftext|>",
    "eos_token_id": ["<|return|>", "<|endoftext|>", "<|call|>"],
    "pad_token_id": "<|endoftext|>",
}


def randomize_gpt_oss(model: GptOssForCausalLM, seed: int) -> None:
    """On top of make_fixtures.perturb_small_params (norm weights, every `.bias`: attention and
    router): random expert weights/biases at the scales above and random attention sinks."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in model.model.layers:
            ex = layer.mlp.experts
            ex.gate_up_proj.copy_(EXPERT_GATE_UP_STD * torch.randn(ex.gate_up_proj.shape, generator=g))
            ex.gate_up_proj_bias.copy_(EXPERT_GATE_UP_BIAS_STD * torch.randn(ex.gate_up_proj_bias.shape, generator=g))
            ex.down_proj.copy_(EXPERT_DOWN_STD * torch.randn(ex.down_proj.shape, generator=g))
            ex.down_proj_bias.copy_(EXPERT_DOWN_BIAS_STD * torch.randn(ex.down_proj_bias.shape, generator=g))
            s = layer.self_attn.sinks
            s.copy_(SINK_MEAN + SINK_STD * torch.randn(s.shape, generator=g))


def hub_style_config(cj: dict, cfg) -> dict:
    """openai/gpt-oss-20b's config.json spelling: rope_theta + rope_scaling (not rope_parameters),
    experts_per_token, initial_context_length, quantization_config; no dtype, swiglu_alpha
    or bos_token_id keys (transformers' defaults: swiglu_alpha 1.702)."""
    cj = dict(cj)
    rp = dict(cj.pop("rope_parameters"))
    cj["rope_theta"] = rp.pop("rope_theta")
    cj["rope_scaling"] = dict(sorted(rp.items()))
    cj["experts_per_token"] = cfg.num_experts_per_tok
    cj["initial_context_length"] = rp["original_max_position_embeddings"]
    cj["quantization_config"] = dict(HUB_MXFP4_QUANTIZATION_CONFIG)
    for k in ("dtype", "swiglu_alpha", "bos_token_id"):
        cj.pop(k, None)
    return dict(sorted(cj.items()))


def load_gpt_oss(fixture_dir: str, mxfp4: bool):
    kwargs = dict(dtype=torch.float32, attn_implementation="eager", experts_implementation="eager")
    if mxfp4:
        kwargs["quantization_config"] = Mxfp4Config(dequantize=True)
    model = GptOssForCausalLM.from_pretrained(fixture_dir, **kwargs)
    model.eval()
    return model
