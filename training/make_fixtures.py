#!/usr/bin/env python3
"""Build tiny random-weight Hugging Face MoE checkpoints and golden outputs.

Development-time tool only: CI never runs it. Its output (tests/fixtures/*) is
committed, and the C++ tests compare the engine against it.

Regenerate everything with exactly:

    python3 training/make_fixtures.py --out tests/fixtures

Versions used to produce the committed fixtures (see training/requirements-dev.txt):
    Python 3.11.7, torch 2.15.0 (CPU only), transformers 5.24.0,
    tokenizers 0.23.3, safetensors 0.8.0, numpy 2.4.6, huggingface_hub 2.4.0

Everything is seeded; re-running with the same versions gives the same files.
The tokenizer training corpus is a fixed, sorted selection of the Python
standard library sources of the running interpreter (Python 3.11.7 here) plus
the multilingual sentences below, so a different Python version gives
different (but equally valid) tokenizers.

Per fixture directory:
    config.json, generation_config.json, model*.safetensors[, index json],
    tokenizer.json, tokenizer_config.json,
    golden/golden.json, golden/logits_<i>.npy (float32, [len, vocab])
    [FP8 fixtures: golden/dequant_<name>.npy, transformers' float32 dequantization
     of a few FP8 tensors, listed in golden.json "dequant_checks"]

All golden numbers are computed by re-loading the saved directory with
from_pretrained(dir, dtype=float32, attn_implementation="eager",
experts_implementation="eager"), i.e. bf16/fp16 weights are upcast exactly as a
reader of the safetensors files would do.  FP8 checkpoints, which transformers
cannot run on a CPU, are dequantized with transformers' own block dequantization
first (see fixture_fp8.load_fp8_reference; golden.json "fp8" says how).

The code lives in modules next to this script (it holds build_fixture and the command line):
fixture_tokenizers.py (corpus, tokenizers), fixture_golden.py (golden helpers),
fixture_models.py (initialisation, MoE bookkeeping, config summaries), fixture_deepseek.py
(router checks, MTP layer), fixture_fp8.py (FP8 blocks) and fixture_specs.py (FIXTURES).
make_fixtures re-exports the helpers that other scripts use as make_fixtures.<name>.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fixture_env  # noqa: E402,F401  (offline, quiet Hugging Face libraries)
import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import GenerationConfig  # noqa: E402

from fixture_deepseek import (  # noqa: E402
    add_mtp_tensors,
    mtp_load_check,
    randomize_router_bias,
    restore_fp32_buffers,
    router_selection_stats,
)
from fixture_fp8 import (  # noqa: E402
    FP8_QUANTIZATION_CONFIG,
    fp8_golden,
    load_fp8_reference,
    quantize_checkpoint_fp8,
)
from fixture_golden import (  # noqa: E402
    FAMILY_TEXTS,  # noqa: F401  (re-exported)
    LOGIT_LENGTHS,
    full_logits,
    golden_provenance,
    greedy_candidates,
    kv_cache_diff,
    pick_greedy,
    save_json,
    tensor_listing,
    tokenization_golden,
)
from fixture_models import (  # noqa: E402
    DEEPSEEK_STYLE,
    INIT_RANGE,  # noqa: F401  (re-exported)
    check_expert_layout,
    config_summary,
    expert_param_count,
    load_reference,
    moe_layer_indices,
    num_experts_of,
    perturb_small_params,
    rope_summary,  # noqa: F401  (re-exported)
)
from fixture_specs import FIXTURES  # noqa: E402
from fixture_tokenizers import (  # noqa: E402
    _added_tokens_decoder,  # noqa: F401  (re-exported)
    _resolve,
    build_llama_tokenizer,
    build_neox_tokenizer,
    build_qwen_tokenizer,
    corpus_texts,
    qwen_tokenizer_json,  # noqa: F401  (re-exported)
    tokenizer_config,
    write_tokenizer_json,
)


def build_fixture(spec: dict, out_root: str, tok_jsons: dict) -> None:
    name = spec["name"]
    fdir = os.path.join(out_root, name)
    if os.path.exists(fdir):
        shutil.rmtree(fdir)
    os.makedirs(fdir)
    family = spec["tokenizer"]
    tok_json = tok_jsons[family]
    tok = write_tokenizer_json(tok_json, os.path.join(fdir, "tokenizer.json"))
    vocab_size = tok.get_vocab_size(with_added_tokens=True)
    save_json(tokenizer_config(family, tok_json, spec["eos_text"]), os.path.join(fdir, "tokenizer_config.json"))

    cfg_kwargs = dict(spec["config"])
    cfg_kwargs["vocab_size"] = vocab_size
    for k, v in spec.get("special_ids", {}).items():
        cfg_kwargs[k] = _resolve(tok, v)
    cfg = spec["cfg_cls"](**cfg_kwargs)

    torch.manual_seed(spec["seed"])
    model = spec["cls"](cfg)
    perturb_small_params(model, spec["seed"] + 7)
    if spec.get("router_bias_std"):
        randomize_router_bias(model, spec["seed"] + 11, spec["router_bias_std"])
    fp32_buffers = {
        k: v.detach().clone()
        for k, v in model.named_buffers()
        if any(k.endswith(suffix) for suffix in spec.get("fp32_buffers", []))
    }
    model.eval()
    model = model.to(spec["dtype"])
    restore_fp32_buffers(model, fp32_buffers)
    n_params_in_memory = int(model.num_parameters())
    model.generation_config = GenerationConfig(**{k: _resolve(tok, v) for k, v in spec["generation"].items()})
    save_kwargs = {"save_original_format": spec["save_original_format"]}
    if spec["max_shard_size"]:
        save_kwargs["max_shard_size"] = spec["max_shard_size"]
    model.save_pretrained(fdir, **save_kwargs)
    saved_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    del model

    if spec.get("rename_config_keys"):
        cpath = os.path.join(fdir, "config.json")
        with open(cpath, encoding="utf-8") as f:
            cj = json.load(f)
        cj = {spec["rename_config_keys"].get(k, k): v for k, v in cj.items()}
        save_json(dict(sorted(cj.items())), cpath)
    if spec.get("drop_config_keys") or spec.get("extra_config_keys") or spec.get("fp8"):
        cpath = os.path.join(fdir, "config.json")
        with open(cpath, encoding="utf-8") as f:
            cj = json.load(f)
        for k in spec.get("drop_config_keys", []):
            del cj[k]
        cj.update(spec.get("extra_config_keys", {}))
        if spec.get("fp8"):
            cj["quantization_config"] = dict(FP8_QUANTIZATION_CONFIG)
        save_json(dict(sorted(cj.items())), cpath)

    extra_golden = {}
    ref_without_mtp = None
    mtp_names = []
    if spec.get("mtp"):
        # The same checkpoint without the MTP tensors, to prove they do not change the golden.
        with tempfile.TemporaryDirectory(prefix=f"{name}_no_mtp_") as no_mtp_dir:
            for fn in os.listdir(fdir):
                shutil.copy2(os.path.join(fdir, fn), no_mtp_dir)
            ref_without_mtp = load_reference(no_mtp_dir, spec["cls"])
        mtp_names = add_mtp_tensors(fdir, cfg, spec["model_type"], spec["seed"] + 13)
    fp8_names = []
    if spec.get("fp8"):
        fp8_names, fp8_quant_err = quantize_checkpoint_fp8(fdir)

    # ---------------- golden, from the saved directory ----------------
    if spec.get("fp8"):
        ref, deq_tensors, fp8_file_tensors = load_fp8_reference(fdir, spec["cls"], fp8_names)
        # Sanity: every reloaded weight equals the dequantized file tensor of that name
        # (the fused experts are checked by check_expert_layout).
        ref_state = ref.state_dict()
        for k, v in ref_state.items():
            if k in deq_tensors:
                if not torch.equal(v, deq_tensors[k]):
                    raise RuntimeError(f"{name}: {k} differs from its dequantized tensor")
            elif not k.endswith((".mlp.experts.gate_up_proj", ".mlp.experts.down_proj")):
                raise RuntimeError(f"{name}: {k} not in the checkpoint")
        check_expert_layout(fdir, ref, spec, tensors=deq_tensors)
    else:
        ref = load_reference(fdir, spec["cls"])
        # Sanity: reloaded fp32 weights equal the saved low-precision weights.
        ref_state = ref.state_dict()
        for k, v in saved_state.items():
            if k not in ref_state:
                raise RuntimeError(f"{name}: {k} missing after reload")
            if not torch.equal(ref_state[k], v.float()):
                raise RuntimeError(f"{name}: {k} differs after reload")

        check_expert_layout(fdir, ref, spec)
    if spec["model_type"] in DEEPSEEK_STYLE and int(ref.num_parameters()) != n_params_in_memory:
        raise RuntimeError(f"{name}: num_parameters {ref.num_parameters()} != {n_params_in_memory} before saving")

    gdir = os.path.join(fdir, "golden")
    os.makedirs(gdir)
    rng = np.random.default_rng(spec["seed"] + 100)
    logits_entries = []
    for i, n in enumerate(LOGIT_LENGTHS):
        ids = [int(x) for x in rng.integers(0, vocab_size, size=n)]
        lg = full_logits(ref, ids).numpy().astype(np.float32)
        assert lg.shape == (n, vocab_size)
        fn = f"logits_{i}.npy"
        np.save(os.path.join(gdir, fn), lg)
        logits_entries.append(
            {"tokens": ids, "file": fn, "shape": list(lg.shape),
             "logit_std": float(lg.std()), "argmax": [int(a) for a in lg.argmax(-1)]}
        )

    kv_diff = kv_cache_diff(ref, logits_entries[2]["tokens"])
    greedy_entries = pick_greedy(ref, name, greedy_candidates(tok, spec["seed"] + 200, vocab_size))

    tokenization, auto_info = tokenization_golden(tok, fdir, family)

    cfg_loaded = ref.config
    mt = spec["model_type"]
    n_params = int(ref.num_parameters())
    n_exp = num_experts_of(mt, cfg_loaded)
    k = cfg_loaded.num_experts_per_tok
    moe_layers = moe_layer_indices(mt, cfg_loaded)
    active = n_params - len(moe_layers) * (n_exp - k) * expert_param_count(mt, cfg_loaded)

    summary = config_summary(mt, cfg_loaded, ref)
    if mt in DEEPSEEK_STYLE:
        summary.update(router_selection_stats(ref, mt, [e["tokens"] for e in logits_entries]))
    if mtp_names:
        # Golden unaffected: the directory without the MTP tensors gives identical logits.
        if int(ref_without_mtp.num_parameters()) != n_params:
            raise RuntimeError(f"{name}: MTP tensors change num_parameters")
        for e in logits_entries:
            if not torch.equal(full_logits(ref_without_mtp, e["tokens"]), full_logits(ref, e["tokens"])):
                raise RuntimeError(f"{name}: MTP tensors change the logits")
        del ref_without_mtp
        extra_golden["mtp_tensors"] = mtp_names
        extra_golden["mtp_check"] = {
            "golden_identical_without_mtp_tensors": True,
            "causal_lm_load": "Glm4MoeForCausalLM.from_pretrained reports them as UNEXPECTED and ignores them "
            "(its _keys_to_ignore_on_load_unexpected only names layers 46 and 92, the MTP layer indices of "
            "GLM-4.5-Air / GLM-4.5)",
            **mtp_load_check(ref, fdir, mtp_names),
        }
    if fp8_names:
        extra_golden["fp8"] = fp8_golden(
            ref, gdir, fp8_names, fp8_file_tensors, deq_tensors, spec["fp8_dequant_checks"], fp8_quant_err
        )
        extra_golden["dequant_checks"] = extra_golden["fp8"].pop("dequant_checks")
    if mt == "olmoe":
        # Show that clip_qkv actually changes the output.
        clip = ref.config.clip_qkv
        assert clip is not None
        with torch.no_grad():
            x = torch.tensor([logits_entries[2]["tokens"]])
            clipped = ref(input_ids=x, use_cache=False).logits[0]
            ref.config.clip_qkv = None
            unclipped = ref(input_ids=x, use_cache=False).logits[0]
            ref.config.clip_qkv = clip
            summary["clip_qkv_effect_max_abs_logit_diff"] = float((clipped - unclipped).abs().max())
            # fraction of clipped q/k/v entries in layer 0
            layer = ref.model.layers[0]
            h = layer.input_layernorm(ref.model.embed_tokens(x))
            att = layer.self_attn
            q = att.q_norm(att.q_proj(h))
            kk = att.k_norm(att.k_proj(h))
            v = att.v_proj(h)
            summary["clip_qkv_fraction_clipped_layer0"] = {
                "q": float((q.abs() > clip).float().mean()),
                "k": float((kk.abs() > clip).float().mean()),
                "v": float((v.abs() > clip).float().mean()),
            }

    with open(os.path.join(fdir, "config.json"), encoding="utf-8") as f:
        saved_config = json.load(f)

    golden = {
        **golden_provenance(ref),
        "storage_dtype": str(spec["dtype"]).replace("torch.", ""),
        "expert_layout": "per_expert" if spec["save_original_format"] else "fused",
        "num_parameters": n_params,
        "active_parameters": int(active),
        "config_summary": summary,
        "saved_config_json": saved_config,
        "tensor_names": tensor_listing(fdir),
        "logits": logits_entries,
        "kv_cache_vs_full_max_abs_diff": kv_diff,
        "greedy": greedy_entries,
        "tokenization": tokenization,
        "tokenizer_check": auto_info,
        **extra_golden,
    }
    save_json(golden, os.path.join(gdir, "golden.json"))
    print(
        f"[{name}] vocab={vocab_size} params={n_params} active={active} "
        f"greedy min_margin={[round(g['min_margin'], 5) for g in greedy_entries]} "
        f"kv_diff={kv_diff:.2e} auto_tok_ok={auto_info['autotokenizer_matches_tokenizers']}"
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="tests/fixtures", help="output root directory")
    ap.add_argument("--only", nargs="*", help="only build these fixtures")
    args = ap.parse_args(argv)

    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)

    texts = corpus_texts()
    tok_jsons = {
        "qwen": build_qwen_tokenizer(texts),
        "neox": build_neox_tokenizer(texts),
        "llama": build_llama_tokenizer(texts),
    }
    for spec in FIXTURES:
        if args.only and spec["name"] not in args.only:
            continue
        build_fixture(spec, args.out, tok_jsons)
    return 0


if __name__ == "__main__":
    sys.exit(main())
