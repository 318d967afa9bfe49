"""MXFP4 of the gpt-oss fixture: the hub layout, our quantizer, decoders and the golden section.

Holds the e2m1/e8m0 constants and the hub's `HUB_MXFP4_QUANTIZATION_CONFIG`, our quantizer
(`fp4_encode`, `mxfp4_quantize`: per 32-value block e = ceil(log2(amax / 6)), ties to the even
code, signed zeros kept; `quantize_checkpoint_mxfp4` turns the fused bf16 experts of a saved
checkpoint into `<p>_blocks` / `<p>_scales`), an independent decoder (`mxfp4_decode_reference`)
next to transformers' own (`hf_mxfp4_dequantize`, `check_hf_fp4_table`), and `mxfp4_golden`,
golden.json's "mxfp4" section with the golden/dequant_<proj>_l<L>_e<E>.npy files it writes.
"""

from __future__ import annotations

import os

import fixture_env  # noqa: F401  (offline, quiet Hugging Face libraries)
import numpy as np
import torch
from safetensors.torch import load_file, save_file
from transformers.integrations import mxfp4 as hf_mxfp4


# e2m1 magnitudes of codes 0..7; code | 8 is the negative of code.
FP4_MAGNITUDES = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]
MXFP4_BLOCK = 32
E8M0_BIAS = 127

HUB_MXFP4_QUANTIZATION_CONFIG = {
    "modules_to_not_convert": [
        "model.layers.*.self_attn",
        "model.layers.*.mlp.router",
        "model.embed_tokens",
        "lm_head",
    ],
    "quant_method": "mxfp4",
}


def fp4_encode(x: torch.Tensor) -> torch.Tensor:
    """Round float64 values (already divided by the block scale, |x| <= 6) to the nearest e2m1
    code, ties to the even code (mantissa bit 0).  Negative values keep the sign bit, also when
    they round to zero (code 8 = -0.0)."""
    mags = torch.tensor(FP4_MAGNITUDES, dtype=torch.float64)
    a = x.abs()
    if float(a.max()) > 6.0:
        raise RuntimeError("value out of FP4 range")
    dist = (a[..., None] - mags).abs()
    cand = dist == dist.min(dim=-1, keepdim=True).values
    codes = torch.arange(8)
    # nearest code; a tie is always between two adjacent codes: take the even one
    idx = ((~cand).to(torch.long) * 100 + (codes % 2) * 10 + codes).argmin(dim=-1)
    sign = (x < 0) | ((x == 0) & torch.signbit(x))
    return (idx | (sign.to(torch.long) << 3)).to(torch.uint8)


def mxfp4_quantize(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """w [..., R, C] (rows = output features, C a multiple of 32) ->
    blocks uint8 [..., R, C/32, 16], scales uint8 [..., R, C/32].

    Per block of 32 consecutive input features: exponent e = ceil(log2(amax / 6)) (so no value
    saturates), scale byte = e + 127, codes = fp4_encode(w / 2^e); element 2j of a block goes to
    the LOW nibble of byte j, element 2j+1 to the HIGH nibble."""
    *lead, r, c = w.shape
    if c % MXFP4_BLOCK:
        raise ValueError(f"{c} columns is not a multiple of {MXFP4_BLOCK}")
    x = w.double().reshape(*lead, r, c // MXFP4_BLOCK, MXFP4_BLOCK)
    amax = x.abs().amax(dim=-1)
    e = torch.where(amax > 0, torch.ceil(torch.log2(amax / 6.0)), torch.zeros_like(amax)).to(torch.long)
    # guard against log2 rounding: make sure amax / 2^e <= 6
    e = torch.where(amax / torch.pow(2.0, e.double()) > 6.0, e + 1, e)
    if int(e.min()) < -E8M0_BIAS or int(e.max()) > 127:
        raise RuntimeError("block exponent out of e8m0 range")
    codes = fp4_encode(x / torch.pow(2.0, e.double())[..., None])
    lo, hi = codes[..., 0::2], codes[..., 1::2]
    blocks = (lo | (hi << 4)).to(torch.uint8)
    scales = (e + E8M0_BIAS).to(torch.uint8)
    return blocks.contiguous(), scales.contiguous()


def mxfp4_decode_reference(blocks: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Independent decoder: [..., R, G, 16] + [..., R, G] -> float32 [..., R, G*32]
    (same row order as the blocks: rows are output features)."""
    table = torch.tensor(FP4_MAGNITUDES + [-v for v in FP4_MAGNITUDES], dtype=torch.float32)
    b = blocks.to(torch.long)
    vals = torch.stack([table[b & 0xF], table[b >> 4]], dim=-1).flatten(-2)  # [..., R, G, 32]
    vals = vals * torch.pow(2.0, (scales.to(torch.float32) - E8M0_BIAS))[..., None]
    return vals.flatten(-2)


def hf_mxfp4_dequantize(blocks: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """transformers' own conversion (what Mxfp4Dequantize runs): [E, R, G, 16] -> [E, G*32, R]."""
    return hf_mxfp4.convert_moe_packed_tensors(blocks, scales, dtype=torch.float32)


def check_hf_fp4_table() -> None:
    if [float(v) for v in hf_mxfp4.FP4_VALUES] != FP4_MAGNITUDES + [-v for v in FP4_MAGNITUDES]:
        raise RuntimeError(f"transformers FP4_VALUES changed: {hf_mxfp4.FP4_VALUES}")


def quantize_checkpoint_mxfp4(fdir: str, cfg) -> dict:
    """Replace the fused bf16 experts of model.safetensors (transformers 5 layout
    gate_up_proj [E, H, 2I], down_proj [E, I, H]) by the hub MXFP4 tensors."""
    path = os.path.join(fdir, "model.safetensors")
    tensors = load_file(path)
    out = {}
    stats = {"nibbles": 0, "negative_zero_nibbles": 0, "scale_min": 255, "scale_max": 0, "max_abs_err_in_block_scale_units": 0.0}
    for name, t in tensors.items():
        if name.endswith((".mlp.experts.gate_up_proj", ".mlp.experts.down_proj")):
            rows_first = t.float().transpose(1, 2).contiguous()  # [E, out, in]
            blocks, scales = mxfp4_quantize(rows_first)
            deq = mxfp4_decode_reference(blocks, scales)
            # the quantizer's error bound: half the FP4 step at the top of the range (1.0 * 2^e)
            err = (deq - rows_first).abs()
            step = torch.pow(2.0, scales.to(torch.float32) - E8M0_BIAS).repeat_interleave(MXFP4_BLOCK, dim=-1)
            stats["max_abs_err_in_block_scale_units"] = max(stats["max_abs_err_in_block_scale_units"], float((err / step).max()))
            out[name + "_blocks"] = blocks
            out[name + "_scales"] = scales
            stats["nibbles"] += blocks.numel() * 2
            stats["negative_zero_nibbles"] += int(((blocks & 0xF) == 8).sum() + ((blocks >> 4) == 8).sum())
            stats["scale_min"] = min(stats["scale_min"], int(scales.min()))
            stats["scale_max"] = max(stats["scale_max"], int(scales.max()))
        else:
            out[name] = t
    save_file(out, path, metadata={"format": "pt"})
    return stats


DEQUANT_CHECKS = [("gate_up", 1, 5), ("down", 2, 3)]  # (proj, layer, expert)


def mxfp4_golden(ref, fdir: str, gdir: str, file_tensors: dict, qstats: dict) -> dict:
    state = ref.state_dict()
    checks = []
    for proj, li, e in DEQUANT_CHECKS:
        tname = f"model.layers.{li}.mlp.experts.{proj}_proj"
        blocks, scales = file_tensors[tname + "_blocks"], file_tensors[tname + "_scales"]
        hf = hf_mxfp4_dequantize(blocks, scales)[e]  # transformers' values, in-memory orientation [in, out]
        if not torch.equal(hf, state[tname][e]):
            raise RuntimeError(f"{tname}[{e}]: dequantized values differ from the reference model's weight")
        rows = hf.T.contiguous()  # the blocks' orientation: [out rows, in]
        fn = f"dequant_{proj}_l{li}_e{e}.npy"
        np.save(os.path.join(gdir, fn), rows.numpy().astype(np.float32))
        checks.append({
            "tensor": tname,
            "blocks": tname + "_blocks",
            "scales": tname + "_scales",
            "layer": li,
            "expert": e,
            "file": fn,
            "shape": list(rows.shape),
            "layout": "float32 [rows of <tensor>_blocks[expert], (H or I)/32 * 32]: row r = output feature r in "
            "file order (for gate_up: row 2j = gate j, row 2j+1 = up j), column c = input feature c; equals "
            "transformers' dequantized parameter <tensor>[expert] TRANSPOSED (in memory it is [in, out])",
            "negative_zeros": int((torch.signbit(rows) & (rows == 0)).sum()),
        })
    return {
        "format": "per expert tensor <p> in {gate_up_proj, down_proj} of layer L: <p>_blocks uint8 [E, R, C/32, 16] "
        "and <p>_scales uint8 [E, R, C/32], R = output features (gate_up: 2I, down: H), C = input features "
        "(gate_up: H, down: I). Block g of row r holds input features 32g..32g+31: byte j has feature 32g+2j in "
        "its LOW nibble and 32g+2j+1 in its HIGH nibble. Nibble = e2m1 code: bit 3 sign, value table "
        "[0, 0.5, 1, 1.5, 2, 3, 4, 6] for codes 0..7 and the negatives (-0.0 for 8) for 8..15. "
        "w[e, r, 32g+i] = fp4(nibble) * 2^(scales[e, r, g] - 127) (e8m0 scale, bias 127). "
        "gate_up rows are interleaved: row 2j = gate j, row 2j+1 = up j. Biases <p>_bias are bf16, not quantized",
        "in_memory_relation": "transformers' GptOssExperts.gate_up_proj [E, H, 2I] = dequant(gate_up_proj).transpose(1, 2), "
        "down_proj [E, I, H] = dequant(down_proj).transpose(1, 2)",
        "quantized_tensors": sorted(k for k in file_tensors if k.endswith(("_blocks", "_scales"))),
        "not_quantized": "everything else (bf16): embed_tokens, lm_head, attention (incl. sinks and biases), router, "
        "norms, expert biases -- the hub modules_to_not_convert",
        "quantization": "our own quantizer (make_gpt_oss_fixtures.mxfp4_quantize) from the bf16 random weights: "
        "per 32-value block e = ceil(log2(amax / 6)), scale byte e + 127, codes = nearest e2m1 value of w / 2^e, "
        "ties to the even code, negative values keep the sign bit even when they round to 0",
        "quantization_stats": qstats,
        "golden_from": "GptOssForCausalLM.from_pretrained(dir, dtype=torch.float32, attn_implementation='eager', "
        "experts_implementation='eager', quantization_config=transformers.Mxfp4Config(dequantize=True)): "
        "transformers.quantizers.quantizer_mxfp4.Mxfp4HfQuantizer with dequantize=True keeps GptOssExperts and its "
        "load op transformers.integrations.mxfp4.Mxfp4Dequantize turns each <p>_blocks/<p>_scales pair into the "
        "float32 parameter <p> via transformers.integrations.mxfp4.convert_moe_packed_tensors (FP4_VALUES lookup, "
        "torch.ldexp by scales - 127, then transpose(1, 2)); the model then runs in float32. Checked: the loaded "
        "parameters equal convert_moe_packed_tensors(blocks, scales, dtype=float32) and an independent decoder "
        "(mxfp4_decode_reference) bit for bit, signs of zeros included",
        "why_dequantize": "transformers 5.24 has no native MXFP4 compute on a CPU without the hub Triton kernels "
        "(kernels-community/gpt-oss-triton-kernels, use_kernels=True, unreachable offline). A plain "
        "from_pretrained(dir) of this directory raises ImportError('Using mxfp4 requires Accelerate') here (no "
        "accelerate installed); with accelerate, Mxfp4HfQuantizer._process_model_before_weight_loading forces "
        "quantization_config.dequantize=True on a CPU when use_kernels is off, i.e. the same Mxfp4Dequantize path "
        "used here. The dequantized values are exact in float32 (and in bf16: fp4 value * 2^k)",
        "dequant_checks": checks,
    }
