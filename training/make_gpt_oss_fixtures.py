#!/usr/bin/env python3
"""Build the tiny random-weight gpt-oss (GptOssForCausalLM) fixtures and their golden outputs.

Development-time tool only, like training/make_fixtures.py, whose corpus, tokenizer
helpers, golden helpers and golden.json layout it reuses (from fixture_tokenizers.py,
fixture_golden.py and fixture_models.py).  Regenerate with exactly:

    python3 training/make_gpt_oss_fixtures.py --out tests/fixtures

(same library versions as make_fixtures.py: torch 2.15.0 CPU, transformers 5.24.0,
tokenizers 0.23.3, safetensors 0.8.0, numpy 2.4.6).  Everything is seeded.

Fixtures:
    gpt_oss       the hub MXFP4 layout of openai/gpt-oss-20b: routed experts stored as
                  model.layers.L.mlp.experts.{gate_up,down}_proj_{blocks,scales} (uint8) plus
                  bf16 {gate_up,down}_proj_bias, everything else bf16; hub-style config.json
                  (rope_theta + rope_scaling, quantization_config quant_method mxfp4, ...).
    gpt_oss_bf16  the same architecture unquantized, bf16, exactly as transformers 5
                  save_pretrained writes it (fused gate_up_proj [E, H, 2I] etc.).

Golden numbers come from re-loading the saved directory with
GptOssForCausalLM.from_pretrained(dir, dtype=float32, attn_implementation="eager",
experts_implementation="eager") -- for the MXFP4 one with
quantization_config=Mxfp4Config(dequantize=True), i.e. transformers' own MXFP4 -> float
conversion (integrations.mxfp4.Mxfp4Dequantize -> convert_moe_packed_tensors).

This script holds build_fixture and the command line; the rest lives next to it:
gpt_oss_specs.py (config, fixture specs, random weights, hub config.json),
gpt_oss_mxfp4.py (the MXFP4 quantizer, decoders, golden section), gpt_oss_semantics.py (the
independent float64 re-implementation, config summary, effect checks) and, in
fixture_tokenizers.py, the o200k tokenizer.  It re-exports mxfp4_quantize and manual_forward,
which golden.json names as make_gpt_oss_fixtures.<name>.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("RAYON_NUM_THREADS", "2")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fixture_env  # noqa: E402,F401  (offline, quiet Hugging Face libraries)
import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors import safe_open  # noqa: E402
from transformers import GenerationConfig, GptOssConfig, GptOssForCausalLM  # noqa: E402

from fixture_golden import (  # noqa: E402
    FAMILY_TEXTS,
    GPT_OSS_TEXTS,
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
from fixture_models import perturb_small_params  # noqa: E402
from fixture_tokenizers import (  # noqa: E402
    TOKENIZER_DESCRIPTION,
    _resolve,
    build_o200k_tokenizer,
    corpus_texts,
    gpt_oss_tokenizer_config,
    write_tokenizer_json,
)
from gpt_oss_mxfp4 import (  # noqa: E402
    check_hf_fp4_table,
    hf_mxfp4_dequantize,
    mxfp4_decode_reference,
    mxfp4_golden,
    mxfp4_quantize,  # noqa: F401  (re-exported: golden.json names make_gpt_oss_fixtures.mxfp4_quantize)
    quantize_checkpoint_mxfp4,
)
from gpt_oss_semantics import (  # noqa: E402
    capture_effects,
    clamp_and_router_stats,
    expert_param_count,
    gpt_oss_summary,
    manual_forward,
)
from gpt_oss_specs import (  # noqa: E402
    BASE_CONFIG,
    FIXTURES,
    GENERATION,
    SPECIAL_IDS,
    hub_style_config,
    load_gpt_oss,
    randomize_gpt_oss,
)


def build_fixture(spec: dict, out_root: str, tok_json: dict) -> None:
    name = spec["name"]
    mxfp4 = spec["mxfp4"]
    fdir = os.path.join(out_root, name)
    if os.path.exists(fdir):
        shutil.rmtree(fdir)
    os.makedirs(fdir)
    tok = write_tokenizer_json(tok_json, os.path.join(fdir, "tokenizer.json"))
    vocab_size = tok.get_vocab_size(with_added_tokens=True)
    save_json(gpt_oss_tokenizer_config(tok_json), os.path.join(fdir, "tokenizer_config.json"))
    chat_src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures",
                            "chat_templates", "openai-gpt-oss-120b.jinja")
    shutil.copyfile(chat_src, os.path.join(fdir, "chat_template.jinja"))

    cfg_kwargs = dict(BASE_CONFIG, vocab_size=vocab_size)
    for k, v in SPECIAL_IDS.items():
        cfg_kwargs[k] = _resolve(tok, v)
    cfg = GptOssConfig(**cfg_kwargs)

    torch.manual_seed(spec["seed"])
    model = GptOssForCausalLM(cfg)
    perturb_small_params(model, spec["seed"] + 7)
    randomize_gpt_oss(model, spec["seed"] + 11)
    model.eval()
    model = model.to(torch.bfloat16)
    model.generation_config = GenerationConfig(**{k: _resolve(tok, v) for k, v in GENERATION.items()})
    model.save_pretrained(fdir)
    saved_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    del model

    extra = {}
    if mxfp4:
        check_hf_fp4_table()
        qstats = quantize_checkpoint_mxfp4(fdir, cfg)
        cpath = os.path.join(fdir, "config.json")
        with open(cpath, encoding="utf-8") as f:
            cj = json.load(f)
        save_json(hub_style_config(cj, cfg), cpath)

    # ---------------- reference, from the saved directory ----------------
    ref = load_gpt_oss(fdir, mxfp4)
    ref_state = ref.state_dict()
    file_tensors = {}
    with safe_open(os.path.join(fdir, "model.safetensors"), "pt") as f:
        for k in f.keys():
            file_tensors[k] = f.get_tensor(k)
    for k, v in saved_state.items():
        if k not in ref_state:
            raise RuntimeError(f"{name}: {k} missing after reload")
        if mxfp4 and k.endswith((".mlp.experts.gate_up_proj", ".mlp.experts.down_proj")):
            blocks, scales = file_tensors[k + "_blocks"], file_tensors[k + "_scales"]
            hf = hf_mxfp4_dequantize(blocks, scales)
            ours = mxfp4_decode_reference(blocks, scales).transpose(1, 2)
            if not torch.equal(hf, ours):
                raise RuntimeError(f"{name}: {k}: transformers' MXFP4 decode differs from the reference decoder")
            if not torch.equal(torch.signbit(hf), torch.signbit(ours)):
                raise RuntimeError(f"{name}: {k}: sign of zero differs")
            if not torch.equal(ref_state[k], hf):
                raise RuntimeError(f"{name}: {k}: loaded parameter is not the dequantized file tensor")
            continue
        if not torch.equal(ref_state[k], v.float()):
            raise RuntimeError(f"{name}: {k} differs after reload")
        if k in file_tensors and not torch.equal(file_tensors[k].float(), ref_state[k]):
            raise RuntimeError(f"{name}: {k} file tensor differs from the loaded one")
    if not mxfp4:
        for li in range(cfg.num_hidden_layers):
            p = f"model.layers.{li}.mlp.experts."
            for n in ("gate_up_proj", "down_proj", "gate_up_proj_bias", "down_proj_bias"):
                if not torch.equal(ref_state[p + n], file_tensors[p + n].float()):
                    raise RuntimeError(f"{name}: {p + n}: file layout differs from the in-memory one")

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

    # Independent float64 re-implementation of the documented semantics.
    reimpl = 0.0
    for e in logits_entries:
        m = manual_forward(ref, e["tokens"])
        reimpl = max(reimpl, float((m - full_logits(ref, e["tokens"]).double()).abs().max()))
    if reimpl > 1e-3:
        raise RuntimeError(f"{name}: independent re-implementation differs from transformers by {reimpl}")

    with torch.no_grad():
        ids = logits_entries[2]["tokens"]
        full = full_logits(ref, ids)
        kv_diff = kv_cache_diff(ref, ids, full)
        # one token at a time as well (the sliding-window cache keeps only the last window-1 keys)
        out = ref(input_ids=torch.tensor([ids[:1]]), use_cache=True)
        cache = out.cache
        rows = [out.logits[0, -1]]
        for j in range(1, len(ids)):
            o = ref(input_ids=torch.tensor([[ids[j]]]), cache=cache, use_cache=True)
            cache = o.cache
            rows.append(o.logits[0, -1])
        kv_step_diff = float((torch.stack(rows) - full).abs().max())

    greedy_entries = pick_greedy(ref, name, greedy_candidates(tok, spec["seed"] + 200, vocab_size))

    FAMILY_TEXTS.setdefault("gpt_oss", GPT_OSS_TEXTS)
    tokenization, auto_info = tokenization_golden(tok, fdir, "gpt_oss")

    n_params = int(ref.num_parameters())
    n_exp, k = cfg.num_local_experts, cfg.num_experts_per_tok
    active = n_params - cfg.num_hidden_layers * (n_exp - k) * expert_param_count(cfg)

    summary = gpt_oss_summary(ref.config, ref)
    summary.update(clamp_and_router_stats(ref, [e["tokens"] for e in logits_entries]))
    summary["independent_reimplementation_max_abs_logit_diff"] = reimpl
    summary["independent_reimplementation_note"] = (
        "training/make_gpt_oss_fixtures.py manual_forward: float64, written from the formulas in this summary "
        "(router, expert_mlp, attention_sinks, sliding_window_semantics, rope_layout, rope_yarn), over the 3 "
        "golden logits sequences"
    )
    effects = capture_effects(ref, logits_entries[2]["tokens"])

    if mxfp4:
        extra["mxfp4"] = mxfp4_golden(ref, fdir, gdir, file_tensors, qstats)
        extra["dequant_checks"] = extra["mxfp4"].pop("dequant_checks")
    else:
        extra["expert_layout_note"] = (
            "transformers 5 save_pretrained writes the fused in-memory layout unchanged: "
            "model.layers.L.mlp.experts.gate_up_proj [E, H, 2I] (y = x @ W[e], columns = outputs, gate/up "
            "INTERLEAVED: column 2j is gate j, column 2j+1 is up j), gate_up_proj_bias [E, 2I] (same interleaving), "
            "down_proj [E, I, H] (y = act @ W[e]), down_proj_bias [E, H]; note the transposed orientation vs "
            "nn.Linear weights [out, in]"
        )

    with open(os.path.join(fdir, "config.json"), encoding="utf-8") as f:
        saved_config = json.load(f)
    golden = {
        **golden_provenance(ref),
        "storage_dtype": "mxfp4+bfloat16" if mxfp4 else "bfloat16",
        "expert_layout": "mxfp4_blocks" if mxfp4 else "fused",
        "num_parameters": n_params,
        "active_parameters": int(active),
        "config_summary": summary,
        "saved_config_json": saved_config,
        "tensor_names": tensor_listing(fdir),
        "logits": logits_entries,
        "kv_cache_vs_full_max_abs_diff": kv_diff,
        "kv_cache_token_by_token_vs_full_max_abs_diff": kv_step_diff,
        "greedy": greedy_entries,
        "tokenization": tokenization,
        "tokenizer_check": auto_info,
        "tokenizer_description": TOKENIZER_DESCRIPTION,
        "golden_from": "GptOssForCausalLM.from_pretrained(dir, dtype=torch.float32, attn_implementation='eager', "
        "experts_implementation='eager'"
        + (", quantization_config=transformers.Mxfp4Config(dequantize=True))" if mxfp4 else ")")
        + ", run in float32 on the CPU",
        **effects,
        **extra,
    }
    save_json(golden, os.path.join(gdir, "golden.json"))
    size = sum(os.path.getsize(os.path.join(dp, fn)) for dp, _, fns in os.walk(fdir) for fn in fns)
    print(
        f"[{name}] vocab={vocab_size} params={n_params} active={active} size={size / 1e6:.2f}MB "
        f"greedy min_margin={[round(g['min_margin'], 5) for g in greedy_entries]} "
        f"distinct={[g['distinct_tokens'] for g in greedy_entries]} kv_diff={kv_diff:.2e} "
        f"kv_step={kv_step_diff:.2e} reimpl={reimpl:.2e} auto_tok_ok={auto_info['autotokenizer_matches_tokenizers']} "
        f"clamp={summary['swiglu_clamp']['gate_above_limit_fraction']:.4f}/"
        f"{summary['swiglu_clamp']['up_below_minus_limit_fraction']:.4f}/"
        f"{summary['swiglu_clamp']['up_above_limit_fraction']:.4f} "
        f"sw={effects['sliding_window_effect_max_abs_logit_diff']:.3f} "
        f"sinks0={effects['sinks_effect_max_abs_logit_diff_vs_zero_sinks']:.3f} "
        f"sinks-inf={effects['sinks_effect_max_abs_logit_diff_vs_no_sinks']:.3f}"
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="tests/fixtures", help="output root directory")
    ap.add_argument("--only", nargs="*", help="only build these fixtures")
    args = ap.parse_args(argv)

    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    tok_json = build_o200k_tokenizer(corpus_texts())
    for spec in FIXTURES:
        if args.only and spec["name"] not in args.only:
            continue
        build_fixture(spec, args.out, tok_json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
