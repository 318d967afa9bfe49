#!/usr/bin/env python3
"""Write a random-weight GGUF with the shape of a `moe synth` pack (Qwen3-MoE, Qwen3.5-MoE, Mixtral or OLMoE).

The peer (ik_llama.cpp / llama.cpp) then runs the same model shape, reading the same bytes per
decode token, as `moe` on the pack:

    moe synth --shape qwen3-30b-a3b --experts int4 --group-size 32 --dense int8 -o q30.moepack
    python3 bench/peers/make_gguf.py --pack q30.moepack --out q30.gguf

Formats (defaults): routed experts Q4_0 (fp16 scale + 16 bytes of nibbles per 32 weights, the bytes
of moe's INT4 g32), attention / LM head / embedding Q8_0 (fp16 scale + 32 int8 per 32 weights,
against moe's int8 with one f32 scale per row: 6% more), router F16 (moe: BF16), norms F32.

Weights are drawn as `moe synth` draws them (tools/cmd_synth.cpp): matrices N(0, 1/cols) in
distribution (uniform codes with a constant scale giving that std), embedding std 1, router std
1.5/sqrt(hidden), norms 1; seeded per tensor, so the same seed writes the same file.

Architectures: a Qwen3-MoE shape is written as `qwen3moe`, a Qwen3.5-MoE shape as `qwen35moe`
(gated DeltaNet and gated attention layers, shared expert), a Mixtral shape as `llama` with 8
experts (llama.cpp's Mixtral layout). ik_llama.cpp has no `olmoe` architecture, so an OLMoE shape is
written as `qwen3moe` with OLMoE's dimensions: every matrix, and so every byte a token reads, is the
same; what differs is negligible work (q/k RMSNorm per head instead of over the whole projection,
top-k weights renormalised).

Vocabulary: byte-level (GPT-2 byte-to-unicode) tokens for the 256 bytes first, then filler tokens
up to the config's vocab size, the last one `<|endoftext|>` (eos, control); tokenizer model `gpt2`
with no usable merges, so every prompt byte is one token.

Needs numpy and the PyPI `gguf` package (pip install -r bench/peers/requirements.txt).
"""
import argparse
import json
import os
import struct
import sys
import time

try:
    import numpy as np
except ImportError:
    sys.exit("make_gguf.py needs numpy and gguf: pip install -r bench/peers/requirements.txt")
try:
    import gguf
except ImportError:
    sys.exit("make_gguf.py needs the PyPI 'gguf' package: pip install -r bench/peers/requirements.txt")

Q = gguf.GGMLQuantizationType
TYPES = {"q4_0": Q.Q4_0, "q8_0": Q.Q8_0, "f16": Q.F16, "bf16": Q.BF16, "f32": Q.F32}
FILE_TYPE = {"q4_0": 2, "q8_0": 7, "f16": 1, "bf16": 32, "f32": 0}  # llama_ftype
Q4_CODE_STD = (2.0 * 140.0 / 16.0) ** 0.5  # codes -7..7, 0 twice as likely (moe synth's)
I8_CODE_STD = 127.0 / 3.0 ** 0.5  # uniform codes in [-127, 127]
ROUTER_LOGIT_STD = 1.5
CHUNK_ELEMS = 1 << 25  # generate and write 32 Mi weights at a time


def read_pack_config(path):
    """config.json embedded in a .moepack's manifest (docs/pack-format.md)."""
    with open(path, "rb") as f:
        head = f.read(128)
        if len(head) < 128 or head[:8] != b"MOEPACK\x00":
            sys.exit(f"{path}: not a .moepack (bad magic)")
        version, = struct.unpack_from("<I", head, 8)
        if version != 1:
            sys.exit(f"{path}: pack format version {version} is not supported")
        man_off, man_len = struct.unpack_from("<QQ", head, 24)
        f.seek(man_off)
        manifest = json.loads(f.read(man_len))
    files = manifest.get("files", {})
    if "config.json" not in files:
        sys.exit(f"{path}: the manifest has no config.json")
    return json.loads(files["config.json"]), manifest


def bytes_to_unicode():
    """GPT-2's byte -> printable unicode map (the byte-level BPE alphabet)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def tensor_nbytes(qtype, n_elems):
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    assert n_elems % block == 0, (qtype, n_elems)
    return n_elems // block * size


class Plan:
    """The tensors in file order: (name, numpy-order shape, type, kind, std)."""

    def __init__(self, cfg, a):
        self.cfg = cfg
        H = cfg["hidden_size"]
        V = cfg["vocab_size"]
        L = cfg["num_hidden_layers"]
        nh = cfg["num_attention_heads"]
        nkv = cfg.get("num_key_value_heads", nh)
        hd = cfg.get("head_dim") or H // nh
        E = cfg.get("num_experts") or cfg["num_local_experts"]
        # Qwen3-MoE's intermediate_size is its (unused) dense FFN; Mixtral's and OLMoE's is the expert's
        F = cfg.get("moe_intermediate_size") or cfg["intermediate_size"]
        self.arch = a.arch
        self.dims = dict(H=H, V=V, L=L, nh=nh, nkv=nkv, hd=hd, E=E, F=F, K=cfg["num_experts_per_tok"])
        et, dt, rt, mt = TYPES[a.expert_type], TYPES[a.dense_type], TYPES[a.router_type], TYPES[a.embd_type]
        ot = TYPES[a.output_type or a.dense_type]
        t = []
        t.append(("token_embd.weight", (V, H), mt, "embd", 1.0))
        for i in range(L):
            p = f"blk.{i}."
            if a.arch == "qwen35moe":
                t += self.hybrid_layer(cfg, i, p, dt, rt)
            else:
                t += [(p + "attn_norm.weight", (H,), Q.F32, "norm", 1.0)]
                t += self.attention(p, dt, qk_norm=a.arch == "qwen3moe")
                t += [(p + "ffn_norm.weight", (H,), Q.F32, "norm", 1.0)]
            t += [
                (p + "ffn_gate_inp.weight", (E, H), rt, "router", ROUTER_LOGIT_STD * H ** -0.5),
                (p + "ffn_gate_exps.weight", (E, F, H), et, "exps", H ** -0.5),
                (p + "ffn_up_exps.weight", (E, F, H), et, "exps", H ** -0.5),
                (p + "ffn_down_exps.weight", (E, H, F), et, "exps", F ** -0.5),
            ]
            if a.arch == "qwen35moe":
                S = cfg["shared_expert_intermediate_size"]
                t += [
                    (p + "ffn_gate_inp_shexp.weight", (H,), Q.F32, "router", H ** -0.5),
                    (p + "ffn_gate_shexp.weight", (S, H), dt, "attn", H ** -0.5),
                    (p + "ffn_up_shexp.weight", (S, H), dt, "attn", H ** -0.5),
                    (p + "ffn_down_shexp.weight", (H, S), dt, "attn", S ** -0.5),
                ]
        t.append(("output_norm.weight", (H,), Q.F32, "norm", 1.0))
        t.append(("output.weight", (V, H), ot, "output", H ** -0.5))
        self.tensors = t

    def attention(self, p, dt, qk_norm, gated=False):
        """Softmax attention's matrices (Qwen3.5's query projection also gives the output gate)."""
        d = self.dims
        H, nh, nkv, hd = d["H"], d["nh"], d["nkv"], d["hd"]
        t = [
            (p + "attn_q.weight", ((2 if gated else 1) * nh * hd, H), dt, "attn", H ** -0.5),
            (p + "attn_k.weight", (nkv * hd, H), dt, "attn", H ** -0.5),
            (p + "attn_v.weight", (nkv * hd, H), dt, "attn", H ** -0.5),
            (p + "attn_output.weight", (H, nh * hd), dt, "attn", (nh * hd) ** -0.5),
        ]
        if qk_norm:
            t += [(p + "attn_q_norm.weight", (hd,), Q.F32, "norm", 1.0),
                  (p + "attn_k_norm.weight", (hd,), Q.F32, "norm", 1.0)]
        return t

    def hybrid_layer(self, cfg, i, p, dt, rt):
        """A Qwen3.5-MoE layer before its MoE: gated attention every full_attention_interval-th
        layer, else a gated DeltaNet (llama.cpp's names: attn_qkv, attn_gate = z, ssm_beta / ssm_alpha =
        the b / a projections, ssm_a = -exp(A_log), ssm_dt.bias, ssm_conv1d, ssm_norm, ssm_out).
        Norms are stored with Qwen's (1 + w) already added, as llama.cpp's converter does."""
        H = self.dims["H"]
        t = [(p + "attn_norm.weight", (H,), Q.F32, "norm", 1.0),
             (p + "post_attention_norm.weight", (H,), Q.F32, "norm", 1.0)]
        if (i + 1) % cfg.get("full_attention_interval", 4) == 0:
            return t + self.attention(p, dt, qk_norm=True, gated=True)
        nk, nv = cfg["linear_num_key_heads"], cfg["linear_num_value_heads"]
        kd, vd = nk * cfg["linear_key_head_dim"], nv * cfg["linear_value_head_dim"]
        K = cfg["linear_conv_kernel_dim"]
        return t + [
            (p + "attn_qkv.weight", (2 * kd + vd, H), dt, "attn", H ** -0.5),
            (p + "attn_gate.weight", (vd, H), dt, "attn", H ** -0.5),
            (p + "ssm_conv1d.weight", (2 * kd + vd, K), Q.F32, "conv", K ** -0.5),
            (p + "ssm_dt.bias", (nv,), Q.F32, "zero", 0.0),
            (p + "ssm_a", (nv,), Q.F32, "minus_one", 0.0),  # A_log = 0, as moe synth writes it
            (p + "ssm_beta.weight", (nv, H), rt, "router", H ** -0.5),
            (p + "ssm_alpha.weight", (nv, H), rt, "router", H ** -0.5),
            (p + "ssm_norm.weight", (cfg["linear_value_head_dim"],), Q.F32, "norm", 1.0),
            (p + "ssm_out.weight", (H, vd), dt, "attn", vd ** -0.5),
        ]

    def nbytes(self, name):
        for n, shape, qt, _, _ in self.tensors:
            if n == name:
                return tensor_nbytes(qt, int(np.prod(shape)))
        raise KeyError(name)

    def total_bytes(self):
        return sum(tensor_nbytes(qt, int(np.prod(s))) for _, s, qt, _, _ in self.tensors)

    def decode_bytes_per_token(self):
        """Weight bytes one decode token reads: per layer attention, norms, router and top-k experts;
        the output norm and LM head; one embedding row."""
        d = self.dims
        per = {"attn": 0, "router": 0, "norm": 0, "experts": 0, "output": 0, "embd_row": 0}
        for n, shape, qt, kind, _ in self.tensors:
            b = tensor_nbytes(qt, int(np.prod(shape)))
            if kind == "exps":
                per["experts"] += b * d["K"] // d["E"]
            elif kind == "embd":
                per["embd_row"] += b // d["V"]
            else:
                per["attn" if kind == "conv" else "norm" if kind in ("zero", "minus_one") else kind] += b
        return sum(per.values()), per


def fill_q4_0(rng, n_elems, std):
    nb = n_elems // 32
    out = np.empty((nb, 18), dtype=np.uint8)
    out[:, :2] = np.frombuffer(np.float16(std / Q4_CODE_STD).tobytes(), dtype=np.uint8)
    q = np.frombuffer(rng.bytes(nb * 16), dtype=np.uint8).reshape(nb, 16)
    # a nibble 0 (code -8) becomes 8 (code 0): symmetric codes -7..7, as moe synth writes them
    q = q | ((q & 0x0F) == 0).view(np.uint8) << 3 | ((q & 0xF0) == 0).view(np.uint8) << 7
    out[:, 2:] = q
    return out


def fill_q8_0(rng, n_elems, std):
    nb = n_elems // 32
    out = np.empty((nb, 34), dtype=np.uint8)
    out[:, :2] = np.frombuffer(np.float16(std / I8_CODE_STD).tobytes(), dtype=np.uint8)
    q = np.frombuffer(rng.bytes(nb * 32), dtype=np.uint8).reshape(nb, 32)
    out[:, 2:] = q + (q == 0x80).view(np.uint8)  # -128 -> -127: uniform in [-127, 127]
    return out


def fill_float(rng, n_elems, std, qt):
    x = rng.standard_normal(n_elems, dtype=np.float32) * np.float32(std)
    if qt == Q.F32:
        return x
    if qt == Q.F16:
        return x.astype(np.float16)
    return (x.view(np.uint32) >> 16).astype(np.uint16)  # bf16 (truncated)


def gen_chunk(rng, qt, n_elems, kind, std):
    if kind in ("norm", "zero", "minus_one"):
        return np.full(n_elems, {"norm": 1.0, "zero": 0.0, "minus_one": -1.0}[kind], dtype=np.float32)
    if qt == Q.Q4_0:
        return fill_q4_0(rng, n_elems, std)
    if qt == Q.Q8_0:
        return fill_q8_0(rng, n_elems, std)
    return fill_float(rng, n_elems, std, qt)


def gguf_arch(cfg):
    """(llama.cpp architecture, note) for a config, or exit with what is supported."""
    mt, archs = cfg.get("model_type"), cfg.get("architectures") or []
    if mt == "qwen3_moe" or "Qwen3MoeForCausalLM" in archs:
        if cfg.get("mlp_only_layers") or cfg.get("decoder_sparse_step", 1) != 1:
            sys.exit("mlp_only_layers / decoder_sparse_step != 1: llama.cpp's qwen3moe has MoE in every layer")
        return "qwen3moe", None
    if mt in ("qwen3_5_moe", "qwen3_5_moe_text") or "Qwen3_5MoeForCausalLM" in archs:
        if cfg.get("mlp_only_layers") or cfg.get("decoder_sparse_step", 1) != 1:
            sys.exit("mlp_only_layers / decoder_sparse_step != 1: llama.cpp's qwen35moe has MoE in every layer")
        return "qwen35moe", None
    if mt == "mixtral" or "MixtralForCausalLM" in archs:
        return "llama", None
    if mt == "olmoe" or "OlmoeForCausalLM" in archs:
        return "qwen3moe", ("OLMoE written as qwen3moe (ik_llama.cpp has no olmoe): same matrices and bytes, "
                            "q/k norm per head, top-k renormalised")
    sys.exit(f"make_gguf.py writes Qwen3-MoE, Qwen3.5-MoE, Mixtral and OLMoE shapes; this config is {archs or mt}")


def hybrid_keys(w, cfg, d):
    """Qwen3.5-MoE's extra hyperparameters: the shared expert, partial multi-section RoPE (text
    positions are equal in every section, so it is plain RoPE over the first dims) and the DeltaNet."""
    arch = "qwen35moe"
    w.add_uint32(f"{arch}.expert_shared_feed_forward_length", cfg["shared_expert_intermediate_size"])
    w.add_uint32(f"{arch}.rope.dimension_count", int(d["hd"] * cfg.get("partial_rotary_factor", 1.0)))
    w.add_array(f"{arch}.rope.dimension_sections", [11, 11, 10, 0])  # Qwen3.5's mrope_section
    w.add_uint32(f"{arch}.ssm.conv_kernel", cfg["linear_conv_kernel_dim"])
    w.add_uint32(f"{arch}.ssm.inner_size", cfg["linear_num_value_heads"] * cfg["linear_value_head_dim"])
    w.add_uint32(f"{arch}.ssm.state_size", cfg["linear_key_head_dim"])
    w.add_uint32(f"{arch}.ssm.time_step_rank", cfg["linear_num_value_heads"])
    w.add_uint32(f"{arch}.ssm.group_count", cfg["linear_num_key_heads"])
    w.add_uint32(f"{arch}.full_attention_interval", cfg.get("full_attention_interval", 4))


def human(b):
    for u in ["B", "KB", "MB", "GB", "TB"]:
        if b < 1000 or u == "TB":
            return f"{b:.2f} {u}" if u != "B" else f"{b} B"
        b /= 1000


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Example:\n  python3 make_gguf.py --pack q30.moepack --out /work/peers/q30.gguf")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--config", help="Hugging Face config.json of a Qwen3-MoE, Qwen3.5-MoE, Mixtral or OLMoE shape")
    src.add_argument("--pack", help="a .moepack: its embedded config.json is used")
    ap.add_argument("--out", "-o", help="output .gguf (omit with --dry-run)")
    ap.add_argument("--layers", type=int, default=0, help="keep the first N decoder layers (as moe synth --layers)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--expert-type", default="q4_0", choices=TYPES)
    ap.add_argument("--dense-type", default="q8_0", choices=TYPES, help="attention matrices (and LM head)")
    ap.add_argument("--output-type", default=None, choices=TYPES, help="LM head (default: --dense-type)")
    ap.add_argument("--embd-type", default="q8_0", choices=TYPES)
    ap.add_argument("--router-type", default="f16", choices=TYPES)
    ap.add_argument("--ctx", type=int, default=0, help="context_length (default: max_position_embeddings)")
    ap.add_argument("--dry-run", action="store_true", help="print sizes and bytes per token only")
    a = ap.parse_args()

    if a.pack:
        cfg, manifest = read_pack_config(a.pack)
        q = manifest.get("quantization", {})
        print(f"pack {a.pack}: {manifest.get('architecture')}, experts {q.get('experts')}, dense {q.get('dense')}")
    else:
        with open(a.config) as f:
            cfg = json.load(f)
    a.arch, note = gguf_arch(cfg)
    if note:
        print("note: " + note)
    elif a.arch == "qwen3moe" and not cfg.get("norm_topk_prob", False):
        print("warning: norm_topk_prob is false, llama.cpp's qwen3moe renormalises the top-k weights", file=sys.stderr)
    if a.layers:
        if a.layers > cfg["num_hidden_layers"]:
            sys.exit(f"--layers {a.layers}: the config has {cfg['num_hidden_layers']} layers")
        cfg["num_hidden_layers"] = a.layers
    if cfg["vocab_size"] < 257:
        sys.exit("vocab_size must exceed 256 (byte tokens + eos)")

    plan = Plan(cfg, a)
    d = plan.dims
    total = plan.total_bytes()
    per_tok, parts = plan.decode_bytes_per_token()
    print(f"architecture: {a.arch}; shape: {d['L']} layers, hidden {d['H']}, vocab {d['V']}, heads {d['nh']}/{d['nkv']} x {d['hd']}, "
          f"{d['E']} experts (top-{d['K']}) x {d['F']}")
    print(f"types: experts {a.expert_type}, attention {a.dense_type}, output {a.output_type or a.dense_type}, "
          f"embedding {a.embd_type}, router {a.router_type}, norms f32")
    print(f"file tensor bytes: {total} ({human(total)})")
    print("decode bytes per token: " + str(per_tok) + f" ({human(per_tok)}; "
          + ", ".join(f"{k} {human(v)}" for k, v in parts.items()) + ")")
    print(json.dumps({"gguf_decode_bytes_per_token": per_tok, "gguf_tensor_bytes": total}))
    if a.dry_run:
        return
    if not a.out:
        sys.exit("--out is required (or --dry-run)")

    w = gguf.GGUFWriter(a.out, a.arch)
    w.add_name(f"moe-synth-{d['L']}l")
    w.add_context_length(a.ctx or cfg.get("max_position_embeddings", 4096))
    w.add_embedding_length(d["H"])
    w.add_block_count(d["L"])
    if a.arch == "llama":  # Mixtral: the expert width is the FFN width
        w.add_feed_forward_length(d["F"])
    else:
        w.add_feed_forward_length(cfg.get("intermediate_size", d["F"]))
        w.add_expert_feed_forward_length(d["F"])
    w.add_head_count(d["nh"])
    w.add_head_count_kv(d["nkv"])
    w.add_key_length(d["hd"])
    w.add_value_length(d["hd"])
    w.add_rope_freq_base(float(cfg.get("rope_theta", 10000.0)))
    w.add_layer_norm_rms_eps(float(cfg.get("rms_norm_eps", 1e-6)))
    if a.arch == "qwen35moe":
        hybrid_keys(w, cfg, d)
    w.add_expert_count(d["E"])
    w.add_expert_used_count(d["K"])
    w.add_file_type(FILE_TYPE[a.expert_type])
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)

    # byte-level vocabulary: 256 byte tokens, fillers, eos last
    b2u = bytes_to_unicode()
    V = d["V"]
    tokens = [b2u[b] for b in range(256)] + [f"<|filler_{i}|>" for i in range(256, V - 1)] + ["<|endoftext|>"]
    types = [gguf.TokenType.NORMAL] * (V - 1) + [gguf.TokenType.CONTROL]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(types)
    # gpt2 needs a merges array and gguf-py writes no empty one: one merge of two multi-character
    # fillers, which never meet (BPE starts from single characters), so every byte stays one token
    w.add_token_merges([f"{tokens[256]} {tokens[257]}"])
    w.add_eos_token_id(V - 1)
    w.add_bos_token_id(V - 1)
    w.add_add_bos_token(False)
    w.add_add_eos_token(False)

    for name, shape, qt, _, _ in plan.tensors:
        n = int(np.prod(shape))
        w.add_tensor_info(name, shape, np.dtype(np.float32), tensor_nbytes(qt, n), raw_dtype=qt)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()

    # tensor data, written in chunks (the writer's write_tensor_data wants whole arrays)
    fout = w.fout[0]
    align = w.data_alignment
    fout.write(b"\0" * (-fout.tell() % align))
    t0 = time.time()
    done = 0
    last = 0.0
    for idx, (name, shape, qt, kind, std) in enumerate(plan.tensors):
        n = int(np.prod(shape))
        rng = np.random.default_rng([a.seed, idx])
        start = fout.tell()
        left = n
        while left:
            m = min(left, CHUNK_ELEMS)
            gen_chunk(rng, qt, m, kind, std).tofile(fout)
            left -= m
        nb = fout.tell() - start
        assert nb == tensor_nbytes(qt, n), (name, nb)
        fout.write(b"\0" * (-nb % align))
        done += nb
        now = time.time()
        if now - last > 2 or idx == len(plan.tensors) - 1:
            last = now
            el = now - t0
            print(f"\r  {100.0 * done / total:5.1f}% {human(done)} / {human(total)}  {human(done / max(el, 1e-9))}/s",
                  end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    w.close()
    el = time.time() - t0
    print(f"wrote {a.out}: {human(os.path.getsize(a.out))} in {el:.1f} s")


if __name__ == "__main__":
    main()
