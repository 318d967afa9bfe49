"""DeepSeek-V3 FP8 block quantization of the fixtures and its dequantization checks.

Holds the hub's FP8 layout (`FP8_BLOCK`, `FP8_QUANTIZATION_CONFIG`, `fp8_quantizable`: which
weights become float8_e4m3fn with a float32 `<name>_scale_inv` per 128x128 block), our quantizer
(`quantize_fp8_blockwise`, `quantize_checkpoint_fp8`), transformers' and an independent block
dequantization (`hf_fp8_dequantize`, `reference_fp8_dequantize`), `load_fp8_reference` (the
float32 reference model built from the dequantized weights, since transformers cannot run the
FP8 checkpoint on a CPU), `fp8_integration_report` (what transformers' own CPU load path would
do with each tensor) and `fp8_golden`, golden.json's "fp8" section with its dequant_<name>.npy.
"""

from __future__ import annotations

import glob
import json
import math
import os
import re
import shutil
import tempfile

import fixture_env  # noqa: F401  (offline, quiet Hugging Face libraries)
import numpy as np
import torch
from safetensors.torch import load_file, save_file

from fixture_golden import save_json
from fixture_models import load_reference


FP8_BLOCK = [128, 128]
FP8_QUANTIZATION_CONFIG = {
    "activation_scheme": "dynamic",
    "fmt": "e4m3",
    "quant_method": "fp8",
    "weight_block_size": FP8_BLOCK,
}


def fp8_quantizable(name: str, t: torch.Tensor) -> bool:
    """As in the DeepSeek-V3 hub checkpoint: every Linear weight of the decoder layers
    except the router; embeddings, lm_head, norms and biases stay high precision."""
    return (
        name.startswith("model.layers.")
        and name.endswith(".weight")
        and t.ndim == 2
        and not name.endswith("mlp.gate.weight")
        and "norm" not in name
    )


def quantize_fp8_blockwise(w: torch.Tensor, block: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per 128x128 block (edge blocks partial): scale = amax/448, fp8 = e4m3fn(w / scale)."""
    w = w.float()
    rows, cols = w.shape
    br, bc = block
    fp8_max = float(torch.finfo(torch.float8_e4m3fn).max)
    scale = torch.ones(math.ceil(rows / br), math.ceil(cols / bc), dtype=torch.float32)
    q = torch.empty(rows, cols, dtype=torch.float8_e4m3fn)
    for i in range(scale.shape[0]):
        for j in range(scale.shape[1]):
            blk = w[i * br:(i + 1) * br, j * bc:(j + 1) * bc]
            amax = blk.abs().amax()
            if amax > 0:
                scale[i, j] = amax / fp8_max
            q[i * br:(i + 1) * br, j * bc:(j + 1) * bc] = (blk / scale[i, j]).clamp(-fp8_max, fp8_max).to(
                torch.float8_e4m3fn
            )
    if torch.isnan(q.float()).any():
        raise RuntimeError("NaN in FP8 weight")
    return q, scale


def hf_fp8_dequantize(q: torch.Tensor, scale_inv: torch.Tensor) -> torch.Tensor:
    """transformers' own block dequantization (fixed 128x128 blocks, partial edge blocks)."""
    from transformers.integrations.finegrained_fp8 import _dequantize_fp8_weight

    return _dequantize_fp8_weight(q, scale_inv, FP8_BLOCK, torch.float32)


def _per_element(block_values: torch.Tensor, shape) -> torch.Tensor:
    """[ceil(rows/128), ceil(cols/128)] block values -> [rows, cols]."""
    rows, cols = shape
    expanded = block_values.repeat_interleave(FP8_BLOCK[0], dim=0)[:rows]
    return expanded.repeat_interleave(FP8_BLOCK[1], dim=1)[:, :cols]


def reference_fp8_dequantize(q: torch.Tensor, scale_inv: torch.Tensor) -> torch.Tensor:
    """Independent check: w[r, c] = float(q[r, c]) * scale_inv[r // 128, c // 128] (float32)."""
    return q.to(torch.float32) * _per_element(scale_inv, q.shape)


def quantize_checkpoint_fp8(fixture_dir: str) -> list[str]:
    files = sorted(glob.glob(os.path.join(fixture_dir, "*.safetensors")))
    if [os.path.basename(f) for f in files] != ["model.safetensors"]:
        raise RuntimeError(f"FP8 conversion expects a single-file checkpoint, got {files}")
    tensors = load_file(files[0])
    out = {}
    names = []
    worst = 0.0
    for name, t in tensors.items():
        if fp8_quantizable(name, t):
            q, s = quantize_fp8_blockwise(t, FP8_BLOCK)
            out[name] = q
            out[name + "_scale_inv"] = s
            names.append(name)
            err = (reference_fp8_dequantize(q, s) - t.float()).abs()
            block_amax = _per_element(s, t.shape) * torch.finfo(torch.float8_e4m3fn).max
            worst = max(worst, float((err / block_amax).max()))
        else:
            out[name] = t
    save_file(out, files[0], metadata={"format": "pt"})
    return sorted(names), worst


def load_fp8_reference(fixture_dir: str, cls, fp8_names: list[str]):
    """transformers 5.24 cannot run this checkpoint on a CPU (see fp8_integration_report):
    dequantize every FP8 weight with transformers' _dequantize_fp8_weight, write the
    dequantized float32 weights (other tensors unchanged) with the same names and the
    config minus quantization_config to a temporary directory, and from_pretrained that."""
    tensors = load_file(os.path.join(fixture_dir, "model.safetensors"))
    deq = {}
    for name, t in tensors.items():
        if name.endswith("_scale_inv"):
            continue
        if t.dtype == torch.float8_e4m3fn:
            w = hf_fp8_dequantize(t, tensors[name + "_scale_inv"])
            if not torch.equal(w, reference_fp8_dequantize(t, tensors[name + "_scale_inv"])):
                raise RuntimeError(f"{name}: transformers' dequantization differs from the block formula")
            deq[name] = w
        else:
            deq[name] = t
    if sorted(n for n, t in tensors.items() if t.dtype == torch.float8_e4m3fn) != fp8_names:
        raise RuntimeError("FP8 tensor set changed")
    with open(os.path.join(fixture_dir, "config.json"), encoding="utf-8") as f:
        cj = json.load(f)
    cj.pop("quantization_config")
    with tempfile.TemporaryDirectory(prefix="fp8_dequant_") as tmp:
        save_json(cj, os.path.join(tmp, "config.json"))
        shutil.copy2(os.path.join(fixture_dir, "generation_config.json"), tmp)
        save_file(deq, os.path.join(tmp, "model.safetensors"), metadata={"format": "pt"})
        ref = load_reference(tmp, cls)
    return ref, {k: v.float() for k, v in deq.items()}, tensors


def fp8_integration_report(tensors: dict, fp8_names: list[str]) -> dict:
    """What transformers' CPU loading path (FineGrainedFP8 with dequantize=True, which its
    quantizer forces without a GPU) would do with each FP8 weight: its Fp8Dequantize op
    (integrations.finegrained_fp8.Fp8Dequantize._dequantize_one) derives the block size
    from the scale grid (rows // scale_rows) instead of using weight_block_size."""
    from transformers.integrations.finegrained_fp8 import Fp8Dequantize

    op = Fp8Dequantize(None)
    per = []
    for name in fp8_names:
        q, s = tensors[name], tensors[name + "_scale_inv"]
        good = hf_fp8_dequantize(q, s)
        e = {"tensor": name, "shape": list(q.shape), "scale_shape": list(s.shape)}
        try:
            got = op._dequantize_one(q, s, output_dtype=torch.float32)
        except ValueError as err:
            e["result"] = "raises"
            e["error"] = str(err)
        else:
            if torch.equal(got, good):
                e["result"] = "bit_exact"
            else:
                e["result"] = "wrong_values"
                e["max_abs_diff"] = float((got - good).abs().max())
        per.append(e)
    counts = {r: sum(1 for e in per if e["result"] == r) for r in ("bit_exact", "wrong_values", "raises")}
    return {"counts": counts, "tensors": per}


FP8_CPU_NOTE = (
    "transformers 5.24 cannot compute this checkpoint on a CPU: FineGrainedFP8HfQuantizer.validate_environment "
    "requires accelerate and, with no GPU/XPU, forces quantization_config.dequantize=True; that load path runs "
    "integrations.finegrained_fp8.Fp8Dequantize._dequantize_one, which derives the block size from the scale "
    "grid shape (rows // scale_rows, cols // scale_cols) instead of weight_block_size, so it raises "
    "'Weight shape (320, 256) not divisible by scale grid (3, 2).' on the dense MLP and would silently use "
    "80-row / 72-column blocks where the grid happens to divide (per tensor: transformers_cpu_dequantize_path). "
    "FP8Linear.forward needs the Triton/DeepGEMM GPU kernels and quantizes activations per token, so it is no "
    "weight-only reference either."
)


def fp8_golden(
    ref, gdir: str, fp8_names: list[str], file_tensors: dict, deq: dict, checks: list, quant_err: float
) -> dict:
    """golden.json "fp8" section; writes golden/dequant_<short>.npy for the `checks` tensors."""
    state = ref.state_dict()
    dequant_checks = []
    for short, tname in checks:
        if tname not in fp8_names:
            raise RuntimeError(f"{tname} is not an FP8 tensor")
        w = deq[tname]
        m = re.fullmatch(r"(model\.layers\.\d+\.mlp\.experts)\.(\d+)\.(gate|up|down)_proj\.weight", tname)
        if m:
            e = int(m.group(2))
            if m.group(3) == "down":
                used = state[m.group(1) + ".down_proj"][e]
            else:
                gu = state[m.group(1) + ".gate_up_proj"][e]
                half = gu.shape[0] // 2
                used = gu[:half] if m.group(3) == "gate" else gu[half:]
        else:
            used = state[tname]
        if not torch.equal(used, w):
            raise RuntimeError(f"{tname}: dequantized values differ from the reference model's weight")
        fn = f"dequant_{short}.npy"
        np.save(os.path.join(gdir, fn), w.numpy().astype(np.float32))
        dequant_checks.append(
            {"tensor": tname, "file": fn, "shape": list(w.shape),
             "scale_shape": list(file_tensors[tname + "_scale_inv"].shape)}
        )
    return {
        "format": "float8_e4m3fn weight + float32 <name>_scale_inv of shape [ceil(rows/128), ceil(cols/128)]; "
        "dequantized w[r, c] = float(fp8[r, c]) * scale_inv[r // 128, c // 128] (edge blocks partial)",
        "quantized_tensors": len(fp8_names),
        "not_quantized": "embed_tokens, lm_head, norms (bf16), mlp.gate.weight (router, bf16), "
        "mlp.gate.e_score_correction_bias (f32)",
        "quantization": "from the bf16 random weights: per 128x128 block scale_inv = amax/448 (float32), "
        "fp8 = float8_e4m3fn(w / scale_inv) (round to nearest even)",
        "max_quantization_error_relative_to_block_amax": quant_err,
        "golden_from": "every FP8 weight dequantized with transformers.integrations.finegrained_fp8."
        "_dequantize_fp8_weight(weight, weight_scale_inv, [128, 128], torch.float32) (checked bit-identical to "
        "the formula above), saved as float32 under the same names with the config minus quantization_config, "
        "loaded with DeepseekV3ForCausalLM.from_pretrained(dtype=float32, eager) and run in float32",
        "why_not_from_pretrained_fp8": FP8_CPU_NOTE,
        "transformers_cpu_dequantize_path": fp8_integration_report(file_tensors, fp8_names),
        "dequant_checks": dequant_checks,
    }
