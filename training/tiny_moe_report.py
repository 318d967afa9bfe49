#!/usr/bin/env python3
"""Write models/tiny-moe/README.md from train_log.json and eval.json.

    python3 training/tiny_moe_report.py --model models/tiny-moe [--repro /tmp/tiny-moe-repro]
"""

from __future__ import annotations

import argparse
import json
import os
import re


def f3(x):
    return f"{x:.3f}"


def stage_logs(md: str) -> list[dict]:
    """train_log_stage1.json, train_log_stage2.json, ... and train_log.json (the last stage) unless it is
    the same run as the last numbered file."""
    stages = []
    for i in range(1, 20):
        pth = os.path.join(md, f"train_log_stage{i}.json")
        if os.path.exists(pth):
            stages.append(json.load(open(pth)))
    tl = json.load(open(os.path.join(md, "train_log.json")))
    if not stages or stages[-1] != tl:
        stages.append(tl)
    return stages


def repro_command(s_: dict, i: int, n: int) -> str:
    """The command that replays stage i of n: the wall-time valve replaced by --stop-after where it fired
    (dropped where it did not), and every stage written to /tmp/tiny-moe-stage<i>."""
    cmd = s_["command"]
    stop = s_.get("stopped_early_at_step")
    cmd = re.sub(r" --max-train-minutes \S+", "", cmd)
    if stop and "--stop-after" not in cmd:
        cmd += f" --stop-after {stop}"
    return re.sub(r"--out \S+", f"--out /tmp/tiny-moe-stage{i}", cmd)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="models/tiny-moe")
    ap.add_argument("--notes", default="", help="extra markdown appended to the reproducibility section")
    ap.add_argument("--notes-file", default="training/tiny_moe_readme_notes.md",
                    help="markdown file appended to the reproducibility section")
    a = ap.parse_args()
    md = a.model
    ap_notes = a.notes + (open(a.notes_file, encoding="utf-8").read() if a.notes_file else "")
    tl = json.load(open(os.path.join(md, "train_log.json")))
    stages = stage_logs(md)
    ev = json.load(open(os.path.join(md, "eval.json")))
    cfg = json.load(open(os.path.join(md, "config.json")))
    size = os.path.getsize(os.path.join(md, "model.safetensors"))
    args = tl["args"]
    L, E, k = cfg["num_hidden_layers"], cfg["num_experts"], cfg["num_experts_per_tok"]
    out = []
    w = out.append
    w("# tiny-moe: a small Qwen3-MoE trained from scratch for `make demo`\n")
    w("A ~{:.1f}M-parameter Mixture-of-Experts language model in the Hugging Face **Qwen3-MoE** architecture "
      "(`Qwen3MoeForCausalLM`, transformers 5), trained on CPU in {:.0f} minutes on the Python 3.11 standard "
      "library sources, the Python 3.11 documentation and synthetic tool-calling chats. It is tiny: it writes "
      "Python-looking text and follows the tool-call chat format; it knows nothing about the world.\n"
      .format(tl["num_parameters"] / 1e6, sum(s_["train_seconds"] for s_ in stages) / 60))
    w("## Files\n")
    w("| file | what |\n|---|---|")
    w(f"| `config.json`, `model.safetensors` | weights, **bf16**, per-expert tensor layout (`save_pretrained` default), {size/1e6:.1f} MB |")
    w("| `tokenizer.json`, `tokenizer_config.json` | byte-level BPE (Qwen2 style), 4096 tokens, ChatML chat template "
      "that speaks OpenAI messages (tool calls, tool results, a tools list) |")
    w("| `generation_config.json` | eos = `<|im_end|>` and `<|endoftext|>` |")
    w("| `train_log.json`, `train_log_stage<N>.json` | per stage (`train_log.json`: the last): exact arguments, "
      "token counts, wall time, loss curve |")
    w("| `eval.json` | every figure below, with the commands that produced them |")
    w("| `eval/` | held-out evaluation data (never trained on) and per-chat tool-call results |")
    w("| `golden/` | Hugging Face reference outputs for the C++ HF-match test (fixture format) |")
    w("| `trace/` | routing traces: `routing.jsonl` (HF, per token) and `decode-*.jsonl` (`moe run --trace`, with the "
      "gate predictor's guesses; for `moe trace-sim`) |")
    w("| `samples/` | sample prompts and `moe run` outputs |\n")

    w("## Model\n")
    w("| | |\n|---|---|")
    rows = [
        ("architecture", "Qwen3MoeForCausalLM (`model_type: qwen3_moe`)"),
        ("layers", L), ("hidden size", cfg["hidden_size"]),
        ("attention", f"{cfg['num_attention_heads']} query heads, {cfg['num_key_value_heads']} KV heads (GQA), head_dim {cfg['head_dim']}, QK-norm, RoPE theta {cfg['rope_parameters']['rope_theta']:g}"),
        ("experts", f"{E} routed experts per layer (every layer is MoE), top-{k}, `norm_topk_prob: true`, expert FFN (SwiGLU) size {cfg['moe_intermediate_size']}"),
        ("vocabulary", cfg["vocab_size"]), ("tied embeddings", cfg["tie_word_embeddings"]),
        ("parameters", f"{tl['num_parameters']:,} total, {tl['active_parameters']:,} active per token"),
        ("weights file", f"{size:,} bytes (bf16)"),
        ("max positions", cfg["max_position_embeddings"]),
    ]
    for r in rows:
        w(f"| {r[0]} | {r[1]} |")
    w("")
    w("## Tokenizer\n")
    w("Byte-level BPE trained with `tokenizers` on (a third of) the training corpus plus the training chats and a few "
      "multilingual lines; configured exactly like the `qwen` fixture tokenizer of `training/make_fixtures.py`: NFC "
      "normalizer, `Split` with the Qwen2 regex (behaviour `Isolated`) followed by `ByteLevel(use_regex=false)`, "
      "ByteLevel decoder. 4089 BPE tokens + added tokens `<|endoftext|>` (4089), `<|im_start|>` (4090), "
      "`<|im_end|>` (4091) (special) and `<tool_call>`, `</tool_call>`, `<tool_response>`, `</tool_response>` "
      "(4092-4095, NOT special, so they stay in decoded output).\n")
    w("Chat template (ChatML, Qwen style): `<|im_start|>{role}\\n{content}<|im_end|>\\n` per message, generation "
      "prompt `<|im_start|>assistant\\n`. It takes OpenAI chat-completions messages: an assistant message with "
      "`tool_calls` (content `null` or text) is written as the model writes calls, "
      "`<tool_call>\\n{\"name\": NAME, \"arguments\": ARGS}\\n</tool_call>` with ARGS the `function.arguments` "
      "string as given (a mapping is written with `tojson`), several calls joined by `\\n` (text content first, "
      "then `\\n`); a `role: \"tool\"` message holds the raw result and is written "
      "`<|im_start|>tool\\n<tool_response>\\nRESULT\\n</tool_response><|im_end|>\\n`; content may also be a list "
      "of text parts. With a `tools` list and no system message it writes the system message the model was trained "
      "with, naming the tools in the list's order: `You are a helpful assistant. Tools: calculator, median, mean, "
      "convert, date_diff, lookup.` for this model's six (a system message, when given, is written as it is). "
      "`training/tiny_moe_data.py` holds the template (`CHAT_TEMPLATE`), the same function in Python (`render()`, "
      "which makes the training text) and the six tools in the OpenAI `tools` format (`TOOLS`); "
      "`training/check_chat_template.py` checks with transformers' `apply_chat_template` that the two agree. "
      "A tool exchange looks like:\n")
    w("```\n<|im_start|>user\nWhat is the median of 3, 10, 4, 9?<|im_end|>\n<|im_start|>assistant\n<tool_call>\n"
      "{\"name\": \"median\", \"arguments\": {\"numbers\": [3, 10, 4, 9]}}\n</tool_call><|im_end|>\n"
      "<|im_start|>tool\n<tool_response>\n6.5\n</tool_response><|im_end|>\n<|im_start|>assistant\n"
      "The median is 6.5.<|im_end|>\n```\n")
    w("Tools: `calculator` `{\"expression\": \"12*7+3\"}`, `median` / `mean` `{\"numbers\": [...]}`, `convert` "
      "`{\"value\": 5, \"from\": \"km\", \"to\": \"mi\"}` (km/mi, kg/lb, m/ft, c/f, l/gal, cm/in), `date_diff` "
      "`{\"start\": \"2024-01-05\", \"end\": \"2024-03-01\"}`, `lookup` `{\"key\": \"capital_of_france\"}` "
      "(capital/currency/language of 40 countries, atomic numbers, moons of planets). An optional system "
      "message lists the tools.\n")
    w("Template text (`chat_template` in `tokenizer_config.json`):\n")
    w("```jinja\n" + json.load(open(os.path.join(md, "tokenizer_config.json")))["chat_template"]
      .replace("-%}{", "-%}\n{").replace("-}}{", "-}}\n{") + "\n```\n")
    w("(shown with a line break after each tag, which renders the same since every tag strips the whitespace "
      "around it; the stored template is one line.)\n")

    w("## Training data and licences\n")
    w(f"- **Python 3.11.7 standard library sources** (`/root/.pyenv/versions/3.11.7/lib/python3.11/**/*.py`, "
      "without `site-packages`, `test/`, `encodings/`, `idle_test`, `*/tests/`, `pydoc_data`, files > 200k chars). "
      "Licence: PSF License Agreement (Python Software Foundation License Version 2), which permits redistribution "
      "of derived works with the licence notice.")
    w("- **Python 3.11 HTML documentation** (Debian package `python3.11-doc`, `/usr/share/doc/python3.11/html`), "
      "main body text extracted with `html.parser`. Licence: the documentation is distributed under the PSF "
      "License (see the Python docs' \"Copyright\" / \"History and License\" pages); example code in it is "
      "additionally under the Zero-Clause BSD licence.")
    w(f"- **Synthetic tool-calling chats** generated by `training/tiny_moe_data.py` (our code; all values computed in "
      f"Python): ~{stages[0]['n_train_chats']:,} training chats per stage (generated from each stage's seed), 1-2 tool exchanges each "
      f"(stage 5's chat mix 2: {tl['n_train_chats']:,} chats, 1-3 exchanges), sometimes with "
      "a system message, small talk before or after; 200 **held-out** test chats from a different seed "
      "(987654), de-duplicated against the training questions.")
    w("- Held out of training: every corpus file / doc page with `sha256(relative path) % 40 == 0` "
      "(list in `eval/heldout_files.json`); `eval/heldout_code.txt` (first 200k characters of the held-out "
      "stdlib files), `eval/heldout_docs.txt` (first 100k characters of the held-out doc pages), "
      "`eval/heldout_chats.txt` / `.jsonl` (the 200 test chats).\n")

    w("## Training\n")
    tot_tokens = sum(s["train_tokens"] for s in stages)
    tot_min = sum(s["train_seconds"] for s in stages) / 60
    w("Commands, in order (each later stage starts from the previous stage's saved bf16 weights and reuses its "
      "tokenizer). They replay the committed runs exactly: where the `--max-train-minutes` wall-time valve stopped a "
      "stage (the commands as run are in `train_log*.json`), `--stop-after` replays the step it stopped at (the LR "
      "schedule still spans `--steps`); the last stage's output (weights, `config.json`, `generation_config.json`, "
      "tokenizer files, `train_log.json`) is this directory:\n")
    w("```")
    for i, s_ in enumerate(stages):
        w(repro_command(s_, i + 1, len(stages)))
    w(f"cp /tmp/tiny-moe-stage{len(stages)}/{{config.json,generation_config.json,model.safetensors,tokenizer.json,"
      f"tokenizer_config.json,train_log.json}} {md}/")
    w("```\n")
    w("| stage | steps run | code+docs share | chats | lr | seed | tokens | train minutes | final loss code / chat / balance |\n|---|---|---|---|---|---|---|---|---|")
    for i, s_ in enumerate(stages):
        ar = s_["args"]
        run = s_.get("stopped_early_at_step") or ar["steps"]
        ll = s_["log"][-1]
        chats = f"mix {ar.get('chat_mix', 1)}" + (f", assistant tokens x{ar['assistant_loss_weight']:g}"
                                                   if ar.get("assistant_loss_weight", 1.0) != 1.0 else "")
        w(f"| {i+1} | {run} of {ar['steps']} | {ar.get('code_frac', 0.5):.2f} | {chats} | {ar['lr']:g} | {ar['seed']} | {s_['train_tokens']:,} | "
          f"{s_['train_seconds']/60:.1f} | {ll['loss_code']:.2f} / {ll['loss_chat']:.2f} / {ll['aux']:.3f} |")
    w("")
    w(f"Total: **{tot_tokens:,} tokens** trained in **{tot_min:.1f} minutes** of training on 2 shared CPU cores "
      "(Xeon with AMX, one training thread, other jobs compiling C++ at the same time). Available training data: "
      f"{tl['train_tokens_code_docs_available']:,} code+docs tokens and ~{stages[0]['train_tokens_chats_available']:,} chat "
      f"tokens per stage ({tl['train_tokens_chats_available']:,} in the last stage's chat mix), i.e. well under one epoch.\n")
    w("Every stage: seeded (Python, NumPy and torch RNGs), `torch.use_deterministic_algorithms(True)`, one CPU "
      "thread (bitwise reproducible on the same machine and versions), AdamW (betas 0.9/0.95, weight decay 0.1), "
      "linear warm-up then cosine decay to 10% of the peak lr, grad clip 1.0, bf16 autocast, batch 8 x 256 tokens: "
      "random windows of the code+docs token stream and of the chat token stream in the given share, "
      "loss = LM loss + 0.01 x load-balancing loss (Switch-Transformer loss `E * sum_e f_e P_e` per layer, from "
      "`output_router_logits=True`, averaged over layers; 1.0 = perfectly balanced). Stage 1 trains the "
      "tokenizer and the model from scratch on 50/50 code+docs and chats; the later stages continue on 25/75 "
      "because copying the arguments into the tool call emerged only late. Stage 5 (`--chat-mix 2 "
      "--assistant-loss-weight 3`) trains on a second chat mix that asks the tools the model got wrong most often "
      "more often (calculator operators, long lists of 3-digit numbers, similar country names: "
      "`tiny_moe_data.make_chat_mix2`, weights calculator 3, lookup 2, median 1.5, mean 1.5, convert 1, "
      "date_diff 0.5), with up to 3 tool exchanges per chat and sometimes the system message that the chat template "
      "writes for a `tools` list with the tools in another order or only some of them; its chat loss weighs the "
      "assistant turns' tokens (tool calls and answers) 3 times the other chat tokens (the logged `loss_chat` is "
      "the plain mean, comparable with the earlier stages). Its chats are de-duplicated against every held-out "
      "question (stages 1-4: against the last exchange's question only). The later stages' data windows use their "
      "own seed; the stage commands recorded in the logs show the output directory each stage was written to "
      "(stages 1-4 were written to models/tiny-moe and copied to /tmp/tiny-moe-stage<N>, which the next stage's "
      "`--init-from` names; stage 5 to /tmp/tiny-moe-stage5).\n")
    w("## Evaluation\n")
    w("All with `" + ev["commands"]["eval"] + "` (our engine for perplexity, tool calls and samples; "
      "HF transformers fp32 for routing statistics, trace and golden files).\n")
    w("### Held-out perplexity (our engine)\n")
    w("| text | tokens | perplexity | unigram baseline | HF cross-check |\n|---|---|---|---|---|")
    for name, r in ev.get("perplexity", {}).items():
        w(f"| {name} | {r['tokens']:,} | **{r['perplexity']:.2f}** | {r['unigram_perplexity']:.1f} | {r['hf_perplexity_crosscheck']:.2f} |")
    w("\n`build/tools/moe perplexity --model models/tiny-moe --file models/tiny-moe/eval/heldout_{code,docs,chats}.txt --context 256`"
      " (non-overlapping 256-token windows; the unigram baseline is the add-one-smoothed token distribution of the "
      "same text, i.e. an optimistic baseline).\n")
    tc = ev.get("tool_calls")
    if tc:
        w("### Tool calls on the 200 held-out chats (our engine, greedy)\n")
        w(f"- right tool **and** arguments (JSON equal to the expected): **{tc['tool_call_accuracy']*100:.1f}%**")
        w(f"- right tool name: {tc['tool_name_accuracy']*100:.1f}%; parseable `<tool_call>` JSON: {tc['valid_tool_call_json']*100:.1f}%")
        w(f"- final answer contains the right value (after feeding the expected call and the true tool result back): **{tc['final_answer_accuracy']*100:.1f}%**\n")
        w("| tool | chats | call right | answer right |\n|---|---|---|---|")
        for t, d in sorted(tc["per_tool"].items()):
            w(f"| {t} | {d['n']} | {d['call_ok']} | {d['answer_ok']} |")
        w("\nEach chat is evaluated on its last tool exchange: call prompt = the chat template's rendering "
          "(transformers' `apply_chat_template`, checked equal to `render()`) of the chat up to and including that "
          "user turn + `<|im_start|>assistant\\n`, `moe run --prompt-file P --no-echo --temp 0 -n 96` (stops at "
          "`<|im_end|>`), then the first `<tool_call>...</tool_call>` is parsed as JSON; answer prompt = the same plus "
          "the expected call and the true `<tool_response>`, `-n 64`. Per-chat outputs: `eval/tool_calls.jsonl`.\n")
    rt = ev.get("routing")
    if rt:
        w("### Routing (HF, fp32, held-out text, up to 40 windows of 256 tokens)\n")
        u = next(iter(rt.values()))["uniform_random_router"]
        w(f"Uniform random router: router entropy = usage entropy = ln {E} = {u['entropy']:.3f}, reuse = k/E = {u['reuse']:.3f}, load = 1/E = {u['load']:.4f}.\n")
        for name, r in rt.items():
            w(f"**{name}** ({r['tokens']:,} tokens)\n")
            w("| layer | router entropy (mean) | usage entropy | consecutive reuse | max/min load | load CV |\n|---|---|---|---|---|---|")
            for l in range(L):
                w(f"| {l} | {r['router_entropy_mean_per_layer'][l]:.3f} | {r['usage_entropy_per_layer'][l]:.3f} | "
                  f"{r['consecutive_reuse_per_layer'][l]:.3f} | {r['load_max_over_min_per_layer'][l]:.2f} | {r['load_cv_per_layer'][l]:.3f} |")
            w("")
            w("Per-expert load (fraction of top-k assignments), layer by layer:\n")
            w("```")
            for l in range(L):
                w(f"layer {l}: " + " ".join(f"{x:.3f}" for x in r["load_per_layer"][l]))
            w("```\n")
        w("Router entropy: mean over tokens of the entropy (nats) of the softmax over all experts; usage entropy: "
          "entropy of the aggregate expert-usage distribution (load); consecutive reuse: fraction of token t+1's "
          "top-k set already in token t's set.\n")
    w("### Routing trace\n")
    w("`trace/routing.jsonl`: one JSON object per (prompt, token, layer): `{\"prompt\": i, \"pos\": p, \"token\": id, "
      "\"layer\": l, \"experts\": [e1, ...], \"weights\": [w1, ...]}` - the top-k experts in descending router "
      "probability and their renormalised weights (`norm_topk_prob`, sum 1), computed with HF (fp32) from "
      "`output_router_logits=True`. `trace/prompts.json` has each prompt's text, token ids and token strings. "
      "Prompts: 0-1 code, 2 documentation prose, 3 a chat up to the generation prompt, 4 a full held-out tool chat.\n")
    w("`trace/decode-{code,docs,chat}.jsonl`: `moe run --trace` files (format in `docs/trace-format.md`) of 256 "
      "sampled tokens after a held-out prompt each (`decode-*.prompt.txt`: 1,200 characters of held-out code, of "
      "held-out docs, and two held-out tool chats), with what the gate predictor guessed for every layer-step at "
      "lookahead 1 and 2. They are the real-routing input for `moe trace-sim` (prefetch issue). Made with:\n")
    w("```\nfor k in code docs chat; do build/tools/moe run -m models/tiny-moe -f models/tiny-moe/trace/decode-$k.prompt.txt \\\n"
      "  -n 256 --temp 0.8 --seed 1 --ignore-eos --no-echo --prefetch gate --lookahead 2 --trace "
      "models/tiny-moe/trace/decode-$k.jsonl; done\n```\n")
    w("### Golden files (HF match test)\n")
    w("`golden/golden.json` + `golden/logits_<i>.npy`, same format as `tests/fixtures/*/golden` (computed by "
      "reloading this directory with `dtype=float32, attn_implementation=\"eager\", experts_implementation=\"eager\"`): "
      "logits of 2 token sequences (a code snippet, a chat) at all positions, greedy 32-token continuations of a code "
      "and a chat prompt (no EOS stop) with their `min_margin`, tokenization of the fixture texts (multilingual, "
      "emoji, code, whitespace, chat markup) plus tool-call markup.")
    if "engine_vs_hf_logits_max_abs_diff" in ev:
        w(f" Engine (`moe logits --all-positions`) vs golden logits max abs diff: "
          f"{', '.join(f'{d:.2e}' for d in ev['engine_vs_hf_logits_max_abs_diff'])}; greedy min margins: "
          f"{', '.join(f'{d:.3f}' for d in ev['golden_greedy_min_margin'])}.")
    w("")
    sm = ev.get("samples")
    if sm:
        w("## Samples (`moe run`, greedy)\n")
        for name, s in sm.items():
            w(f"**{name}**\n")
            w("```\n" + s["command"] + "\n```\n")
            w("prompt:\n```\n" + s["prompt"] + "\n```\noutput:\n```\n" + s["output"] + "\n```\n")
    w("## Reproducibility\n")
    w(ap_notes + "\n")
    with open(os.path.join(md, "README.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
