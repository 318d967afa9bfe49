#!/usr/bin/env python3
"""Build the tiny random-weight hybrid (Gated DeltaNet + gated attention) MoE fixtures.

Development-time tool only, like training/make_fixtures.py, whose corpus, Qwen tokenizer,
golden helpers and golden.json layout it reuses (from fixture_tokenizers.py, fixture_golden.py and
fixture_models.py).  Regenerate with exactly:

    python3 training/make_qwen3_next_fixtures.py --out tests/fixtures

(same library versions as make_fixtures.py: Python 3.11.7, torch 2.15.0 CPU, transformers
5.24.0, tokenizers 0.23.3, safetensors 0.8.0, numpy 2.4.6).  Everything is seeded; it runs on
at most 2 CPU threads.

Fixtures (all bf16 on disk, like the hub checkpoints; every golden number comes from re-loading
the saved directory with from_pretrained(dir, dtype=float32, attn_implementation="eager",
experts_implementation="eager")):

    qwen3_next        Qwen3NextForCausalLM, 6 layers [lin, lin, full, lin, lin, full], every layer
                      sparse (decoder_sparse_step 1, mlp_only_layers []); experts stored per
                      expert (mlp.experts.E.{gate,up,down}_proj.weight, the hub Qwen3-Next layout,
                      save_pretrained(save_original_format=True)); config.json rewritten in the hub
                      Qwen3-Next style (top-level rope_theta / partial_rotary_factor,
                      full_attention_interval instead of layer_types), checked to reload to the
                      same config.
    qwen3_next_fused  Qwen3NextForCausalLM variant: 4 layers with explicit non-periodic layer_types
                      [lin, lin, full, lin], mlp_only_layers [1] (a dense SwiGLU MLP of
                      intermediate_size in a DeltaNet layer), linear_num_key_heads 1 /
                      linear_num_value_heads 4 (group of 4), linear_value_head_dim 32 !=
                      linear_key_head_dim 16 (catches a transposed [dk, dv] state), tied
                      embeddings, transformers 5 fused expert layout (save_original_format=False)
                      and transformers 5 config keys (rope_parameters, layer_types).
    qwen3_5_moe       Qwen3_5MoeForCausalLM (the text-only causal LM of Qwen3.5-MoE, config class
                      Qwen3_5MoeTextConfig, model_type qwen3_5_moe_text), same shapes as qwen3_next;
                      separate in_proj_qkv / in_proj_z / in_proj_b / in_proj_a; every layer sparse;
                      fused experts (the hub Qwen3.5 layout) under transformers' text-only names
                      model.layers.* (the hub stores model.language_model.*, see golden.json
                      "hub_layout").

Random weights: fixture_models.perturb_small_params, then the zero-centred RMSNorm weights redrawn to
U(-0.4, 0.4) and the DeltaNet A_log / dt_bias / conv1d redrawn (perturb_hybrid says why).  The
random golden sequences (and greedy prompts) avoid router near-ties and near-zero DeltaNet outputs
(well_conditioned), so that a float32 reader is not thrown off by rounding.

Per fixture directory, as make_fixtures.py writes them, plus:
    golden/logits_<i>.npy for lengths [1, 7, 19, 150]: 150 > 2 * 64 crosses two chunk boundaries
        of transformers' torch_chunk_gated_delta_rule (chunk_size 64);
    golden.json "recurrent_decode_check": full forward of the 150-token case against a 100-token
        cached prefill (chunked kernel) followed by 50 single-token cached steps (recurrent kernel
        + causal_conv1d_update), with the kernel calls actually seen;
    golden.json "manual_float64_check": an independent float64 re-implementation of the whole
        forward from the raw weights (qwen3_next_semantics.manual_forward), following config_summary's
        description, against every golden logits file;
    [qwen3_next, qwen3_next_fused] golden/deltanet_*.npy + golden.json "deltanet_kernel": the exact
        q, k, v, g, beta that one linear-attention layer passed to torch_chunk_gated_delta_rule in
        the 150-token forward, and the outputs / final states of torch_chunk_gated_delta_rule and
        torch_recurrent_gated_delta_rule on them.

This script holds build_fixture and the command line; the rest lives next to it:
qwen3_next_specs.py (golden settings, FIXTURES, random weights, hub-style config.json),
qwen3_next_semantics.py (the float64 re-implementation manual_forward, config_summary),
qwen3_next_kernel_golden.py (KernelRecorder, the cached-decode path check, the DeltaNet kernel
goldens and f64_gated_delta_rule) and qwen3_next_checks.py (expert layout, conditioning of the
random sequences, MTP, hub prefix and MRoPE checks).  It re-exports manual_forward and
f64_gated_delta_rule, which golden.json names as being in this script.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("MKL_NUM_THREADS", "2")
os.environ.setdefault("RAYON_NUM_THREADS", "2")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fixture_env  # noqa: E402,F401  (offline, quiet Hugging Face libraries)
import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import GenerationConfig  # noqa: E402

from fixture_golden import (  # noqa: E402
    full_logits,
    golden_provenance,
    greedy_candidates,
    kv_cache_diff,
    pick_greedy,
    save_json,
    tensor_listing,
    tokenization_golden,
)
from fixture_golden import LOGIT_LENGTHS as BASE_LOGIT_LENGTHS  # noqa: E402  (make_fixtures' lengths)
from fixture_models import load_reference  # noqa: E402
from fixture_tokenizers import (  # noqa: E402
    _resolve,
    build_qwen_tokenizer,
    corpus_texts,
    tokenizer_config,
    write_tokenizer_json,
)
from qwen3_next_checks import (  # noqa: E402
    CORE_RMS_MIN,
    MAX_DRAWS,
    ROUTER_GAP_MIN,
    check_expert_layout,
    conditioning,
    hub_prefix_check,
    mrope_check,
    mtp_check,
    well_conditioned,
)
from qwen3_next_kernel_golden import (  # noqa: E402
    decode_check,
    deltanet_kernel_golden,
    f64_gated_delta_rule,  # noqa: F401  (re-exported: golden.json names it as in this script)
)
from qwen3_next_semantics import config_summary, manual_forward  # noqa: E402
from qwen3_next_specs import (  # noqa: E402
    CHUNK_SIZE,
    EOS_TEXT,
    FIXTURES,
    GENERATION,
    LOGIT_LENGTHS,
    LONG_LEN,
    SPECIAL_IDS,
    hub_style_qwen3_next_config,
    is_moe_layer,
    perturb_hybrid,
    qwen3_5_tokenizer_json,
)


def build_fixture(spec: dict, out_root: str, tok_json: dict) -> None:
    name, kind = spec["name"], spec["kind"]
    fdir = os.path.join(out_root, name)
    if os.path.exists(fdir):
        shutil.rmtree(fdir)
    os.makedirs(fdir)
    if spec.get("qwen3_5_pretokenizer"):
        tok_json = qwen3_5_tokenizer_json(tok_json)
    tok = write_tokenizer_json(tok_json, os.path.join(fdir, "tokenizer.json"))
    vocab_size = tok.get_vocab_size(with_added_tokens=True)
    save_json(tokenizer_config("qwen", tok_json, EOS_TEXT), os.path.join(fdir, "tokenizer_config.json"))

    cfg_kwargs = dict(spec["config"], vocab_size=vocab_size)
    for k, v in SPECIAL_IDS.items():
        cfg_kwargs[k] = _resolve(tok, v)
    cfg = spec["cfg_cls"](**cfg_kwargs)

    torch.manual_seed(spec["seed"])
    model = spec["cls"](cfg)
    perturbation = perturb_hybrid(model, spec["seed"] + 7)
    model.eval()
    model = model.to(torch.bfloat16)
    model.generation_config = GenerationConfig(**{k: _resolve(tok, v) for k, v in GENERATION.items()})
    model.save_pretrained(fdir, save_original_format=spec["save_original_format"])
    saved_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    del model

    extra = {}
    if spec["hub_style_config"]:
        extra["config_style"] = hub_style_qwen3_next_config(fdir, spec, cfg)
    else:
        extra["config_style"] = {
            "style": "as transformers 5.24 save_pretrained writes it (rope_parameters, layer_types)"}

    ref = load_reference(fdir, spec["cls"])
    ref_state = ref.state_dict()
    for k, v in saved_state.items():
        if k not in ref_state:
            raise RuntimeError(f"{name}: {k} missing after reload")
        if not torch.equal(ref_state[k], v.float()):
            raise RuntimeError(f"{name}: {k} differs after reload")
    expert_layout_detail = check_expert_layout(fdir, ref, kind, spec["save_original_format"])

    gdir = os.path.join(fdir, "golden")
    os.makedirs(gdir)
    rng = np.random.default_rng(spec["seed"] + 100)
    logits_entries = []
    for i, n in enumerate(LOGIT_LENGTHS):
        for draw in range(MAX_DRAWS):
            ids = [int(x) for x in rng.integers(0, vocab_size, size=n)]
            cond = conditioning(ref, ids)
            if well_conditioned(cond):
                break
        else:
            raise RuntimeError(f"{name}: no well-conditioned {n}-token sequence in {MAX_DRAWS} draws")
        lg = full_logits(ref, ids).numpy().astype(np.float32)
        assert lg.shape == (n, vocab_size)
        fn = f"logits_{i}.npy"
        np.save(os.path.join(gdir, fn), lg)
        logits_entries.append({"tokens": ids, "file": fn, "shape": list(lg.shape),
                               "logit_std": float(lg.std()), "argmax": [int(a) for a in lg.argmax(-1)],
                               **cond, "draws": draw + 1})

    # Independent float64 forward from the raw weights, following config_summary.
    sd64 = {k: v.double() for k, v in ref.state_dict().items()}
    manual = []
    for e in logits_entries:
        stats = {}
        ours = manual_forward(sd64, ref.config, kind, e["tokens"], stats)
        hf = torch.from_numpy(np.load(os.path.join(gdir, e["file"]))).double()
        d = float((ours - hf).abs().max())
        manual.append({"length": len(e["tokens"]), "max_abs_diff": d, "max_abs_logit": float(hf.abs().max()),
                       "rel_max_err": d / float(hf.abs().max()), **stats})
        if d / float(hf.abs().max()) > 3e-5:
            raise RuntimeError(f"{name}: manual float64 forward disagrees with transformers: {manual[-1]}")

    # make_fixtures' KV-cache consistency number: 10-token cached prefill, then the other 9 tokens in one
    # cached forward (chunked kernel continuing from the cached state).
    kv_diff = kv_cache_diff(ref, logits_entries[2]["tokens"])

    long_ids = logits_entries[LOGIT_LENGTHS.index(LONG_LEN)]["tokens"]
    recurrent_decode = decode_check(ref, kind, long_ids)

    if spec["kernel_layer"] is not None:
        extra["deltanet_kernel"] = deltanet_kernel_golden(ref, kind, spec["kernel_layer"], long_ids, gdir)

    # Greedy as make_fixtures, with each candidate's router gap over the prompt and all but the last
    # generated token (what the model reads) recorded, and ill-conditioned ones (well_conditioned) put last.
    greedy_entries = pick_greedy(ref, name, greedy_candidates(tok, spec["seed"] + 200, vocab_size),
                                 extra=lambda ids, new: conditioning(ref, ids + new[:-1]),
                                 demote=lambda cond: not well_conditioned(cond))

    tokenization, auto_info = tokenization_golden(tok, fdir, "qwen")

    cfg_loaded = ref.config
    n_params = int(ref.num_parameters())
    moe_layers = [i for i in range(cfg_loaded.num_hidden_layers) if is_moe_layer(kind, cfg_loaded, i)]
    per_expert = 3 * cfg_loaded.hidden_size * cfg_loaded.moe_intermediate_size
    active = n_params - len(moe_layers) * (cfg_loaded.num_experts - cfg_loaded.num_experts_per_tok) * per_expert

    summary = config_summary(kind, cfg_loaded, ref)
    extra["mtp_check"] = mtp_check(fdir, spec["cls"], cfg_loaded, logits_entries[2]["tokens"])
    if kind == "qwen3_5_moe":
        extra["hub_layout"] = hub_prefix_check(fdir, spec["cls"], logits_entries[2]["tokens"])
        extra["mrope_check"] = mrope_check(ref)
    else:
        extra["hub_layout"] = {
            "saved_prefix": "model. / lm_head.weight, as the hub Qwen3-Next checkpoints (Qwen3NextForCausalLM)",
            "hub_expert_layout": "per expert (model.layers.L.mlp.experts.E.{gate,up,down}_proj.weight); transformers "
            "5.24 writes that with save_pretrained(save_original_format=True) (the qwen2_moe conversion mapping, "
            "reversed) and the fused gate_up_proj / down_proj with save_original_format=False",
            "this_fixture": "per_expert" if spec["save_original_format"] else "fused",
        }

    with open(os.path.join(fdir, "config.json"), encoding="utf-8") as f:
        saved_config = json.load(f)

    golden = {
        **golden_provenance(ref),
        "storage_dtype": "bfloat16",
        "expert_layout": "per_expert" if spec["save_original_format"] else "fused",
        "expert_layout_detail": expert_layout_detail,
        "num_parameters": n_params,
        "active_parameters": int(active),
        "active_parameters_rule": "num_parameters - len(moe_layers) * (num_experts - num_experts_per_tok) * 3 * "
        "hidden_size * moe_intermediate_size (router, shared expert and its gate count as active)",
        "config_summary": summary,
        "saved_config_json": saved_config,
        "tensor_names": tensor_listing(fdir),
        "logits": logits_entries,
        "logit_lengths_note": f"lengths {LOGIT_LENGTHS}: make_fixtures' {list(BASE_LOGIT_LENGTHS)} plus {LONG_LEN} "
        f"(> 2 chunks of {CHUNK_SIZE} in torch_chunk_gated_delta_rule); all computed with use_cache=False, i.e. one "
        "chunked-kernel forward per sequence. Tokens are seeded random draws; a draw is rejected (and the next one "
        f"taken, 'draws' counts them) while some token's k-th and (k+1)-th router probabilities differ by less than "
        f"{ROUTER_GAP_MIN} ('router_min_gap': a float32 reader may then pick the other expert) or some DeltaNet head "
        f"output entering the gated RMSNorm has an RMS below {CORE_RMS_MIN} ('deltanet_min_core_output_rms': the "
        "norm, eps 1e-6, then multiplies float32 rounding errors by up to 1000). The greedy prompts are ranked the "
        "same way (ill-conditioned ones last)",
        "kv_cache_vs_full_max_abs_diff": kv_diff,
        "kv_cache_vs_full_note": "19-token case: 10-token cached prefill, then the other 9 tokens in ONE cached "
        "forward (chunked kernel from the cached state), as make_fixtures measures it",
        "recurrent_decode_check": recurrent_decode,
        "manual_float64_check": {
            "what": "manual_forward in make_qwen3_next_fixtures.py: the whole model in float64 from the reloaded "
            "weights, written from config_summary's description (token-by-token recurrence, no chunking)",
            "cases": manual,
            "rel_max_err": "max |float64 - transformers float32| / max |transformers|, the metric of the C++ test "
            "(tolerance 1e-4)",
            "conditioning": "router_min_gap_kth_vs_next_prob: smallest float64 gap between the k-th and (k+1)-th "
            "router probability over all tokens and MoE layers (a near tie would make the expert choice fragile); "
            "deltanet_min_core_output_rms: smallest per-head RMS of the delta-rule output before the gated RMSNorm "
            "(which divides by it)",
        },
        "perturbation": perturbation,
        "greedy": greedy_entries,
        "tokenization": tokenization,
        "tokenizer_check": auto_info,
        "tokenizer_note": "make_fixtures' qwen byte-level BPE (1495 BPE tokens + 5 added tokens = 1500 ids)"
        + ("; its Split regex replaced by Qwen3.5's (transformers.models.qwen3_5.tokenization_qwen3_5."
           "PRETOKENIZE_REGEX: [\\p{L}\\p{M}]+ instead of \\p{L}+, marks excluded from the punctuation class), which "
           "AutoTokenizer (Qwen3_5Tokenizer, forced for model_type qwen3_5_moe_text) applies whatever tokenizer.json "
           "says; with the Qwen2 regex an emoji + variation selector text tokenizes differently"
           if spec.get("qwen3_5_pretokenizer") else ""),
        **extra,
    }
    save_json(golden, os.path.join(gdir, "golden.json"))
    for dp, _, fs in os.walk(fdir):
        for f in fs:
            os.chmod(os.path.join(dp, f), 0o644)  # save_pretrained leaves some files 0600
    size = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(fdir) for f in fs)
    print(
        f"[{name}] vocab={vocab_size} params={n_params} active={active} size={size / 1e6:.2f}MB "
        f"greedy min_margin={[round(g['min_margin'], 5) for g in greedy_entries]} kv_diff={kv_diff:.2e} "
        f"decode_diff={recurrent_decode['max_abs_diff']:.2e} manual_rel={max(m['rel_max_err'] for m in manual):.2e} "
        + (f"chunk_vs_rec={extra['deltanet_kernel']['chunk_vs_recurrent_max_abs_diff_output']:.2e} "
           if "deltanet_kernel" in extra else "")
        + f"auto_tok_ok={auto_info['autotokenizer_matches_tokenizers']}"
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="tests/fixtures", help="output root directory")
    ap.add_argument("--only", nargs="*", help="only build these fixtures")
    args = ap.parse_args(argv)

    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(2)
    os.makedirs(args.out, exist_ok=True)
    tok_json = build_qwen_tokenizer(corpus_texts())
    for spec in FIXTURES:
        if args.only and spec["name"] not in args.only:
            continue
        build_fixture(spec, args.out, tok_json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
