"""The Gated DeltaNet kernel goldens and the check of which kernel path transformers takes.

Holds `KernelRecorder`, which wraps the module-level kernels that the Qwen3-Next / Qwen3.5-MoE
DeltaNet layers look up at call time (torch_chunk_gated_delta_rule, torch_recurrent_gated_delta_rule,
causal_conv1d_fn, causal_conv1d_update), records every call and can capture one layer's exact
chunked-kernel arguments; `decode_check` (golden.json "recurrent_decode_check": a full forward
against a cached prefill followed by single-token cached steps, asserting chunked kernel for
multi-token and recurrent kernel for cached decode); and `deltanet_kernel_golden` (golden.json
"deltanet_kernel" and golden/deltanet_*.npy: the captured q, k, v, g, beta and the chunked,
two-call chunked and recurrent outputs and states, against `f64_gated_delta_rule`, the rule in float64).
"""

from __future__ import annotations

import os

import fixture_env  # noqa: F401  (offline, quiet Hugging Face libraries)
import numpy as np
import torch
from transformers.models.qwen3_5_moe import modeling_qwen3_5_moe as modeling_q35
from transformers.models.qwen3_next import modeling_qwen3_next as modeling_qn

from qwen3_next_specs import CHUNK_SIZE, DECODE_PREFIX, LOGIT_LENGTHS, gdn_modules


# ----------------------------------------------------------------------------------------------
# recording which DeltaNet kernels transformers calls
# ----------------------------------------------------------------------------------------------


class KernelRecorder:
    """Wraps the module-level kernels that Qwen3NextGatedDeltaNet.forward / Qwen3_5MoeGatedDeltaNet.forward
    look up at call time, records each call (layer, kernel, sequence length, initial state given) and can
    capture the exact arguments of one layer's chunked call."""

    NAMES = ("torch_chunk_gated_delta_rule", "torch_recurrent_gated_delta_rule", "causal_conv1d_fn",
             "causal_conv1d_update")

    def __init__(self, module, model):
        self.module = module
        self.calls = []
        self.layer = None
        self.capture_layer = None
        self.captured = None
        self.originals = {n: getattr(module, n) for n in self.NAMES}
        self.hooks = []
        for i, la in gdn_modules(model).items():
            self.hooks.append(la.register_forward_pre_hook(lambda mod, args, i=i: setattr(self, "layer", i)))

    def _wrap(self, name):
        orig = self.originals[name]

        def wrapped(*args, **kwargs):
            out = orig(*args, **kwargs)
            seq = args[0].shape[1] if "delta" in name else args[0].shape[-1]
            entry = {"layer": self.layer, "kernel": name, "seq_len": int(seq)}
            if "delta" in name:
                entry["initial_state"] = kwargs.get("initial_state") is not None
            self.calls.append(entry)
            if name == "torch_chunk_gated_delta_rule" and self.layer == self.capture_layer and self.captured is None:
                q, k, v = args[:3]
                self.captured = {
                    "query": q.detach().clone(), "key": k.detach().clone(), "value": v.detach().clone(),
                    "g": kwargs["g"].detach().clone(), "beta": kwargs["beta"].detach().clone(),
                    "kwargs": {kk: vv for kk, vv in kwargs.items() if kk not in ("g", "beta")},
                    "output": out[0].detach().clone(),
                }
            return out

        return wrapped

    def __enter__(self):
        for n in self.NAMES:
            setattr(self.module, n, self._wrap(n))
        return self

    def __exit__(self, *exc):
        for n, f in self.originals.items():
            setattr(self.module, n, f)
        for h in self.hooks:
            h.remove()
        return False

    def take(self):
        c, self.calls = self.calls, []
        return c


def modeling_module(kind: str):
    return modeling_qn if kind == "qwen3_next" else modeling_q35


# ----------------------------------------------------------------------------------------------
# the cached-decode path check and the kernel goldens
# ----------------------------------------------------------------------------------------------


@torch.no_grad()
def decode_check(ref, kind, ids):
    """(a) full forward of ids vs (b) cached prefill of DECODE_PREFIX tokens + single-token cached steps."""
    with KernelRecorder(modeling_module(kind), ref) as rec:
        full = ref(input_ids=torch.tensor([ids]), use_cache=False).logits[0]
        full_calls = rec.take()
        out = ref(input_ids=torch.tensor([ids[:DECODE_PREFIX]]), use_cache=True)
        prefill_calls = rec.take()
        cache = out.cache
        steps = [out.logits[0]]
        step_calls = []
        for t in range(DECODE_PREFIX, len(ids)):
            o = ref(input_ids=torch.tensor([[ids[t]]]), cache=cache, use_cache=True)
            cache = o.cache
            steps.append(o.logits[0])
            step_calls.append(rec.take())
    inc = torch.cat(steps)
    n_lin = len(gdn_modules(ref))

    def kernels(calls):
        return sorted({c["kernel"] for c in calls})

    # The paths the C++ side mirrors: multi-token forward = chunked kernel, cached decode = recurrent one.
    assert [c["kernel"] for c in full_calls].count("torch_chunk_gated_delta_rule") == n_lin
    assert not any(c.get("initial_state") for c in full_calls)
    assert kernels(prefill_calls) == ["causal_conv1d_fn", "torch_chunk_gated_delta_rule"]
    for sc in step_calls:
        assert kernels(sc) == ["causal_conv1d_update", "torch_recurrent_gated_delta_rule"], sc
        assert all(c["initial_state"] for c in sc if "delta" in c["kernel"])
        assert len(sc) == 2 * n_lin
    diff = (inc - full[:len(inc)]).abs()
    return {
        "sequence_length": len(ids),
        "tokens": "the tokens of the logits entry of length %d" % len(ids),
        "prefix_tokens": DECODE_PREFIX,
        "decoded_tokens": len(ids) - DECODE_PREFIX,
        "max_abs_diff": float(diff.max()),
        "max_abs_diff_prefix": float(diff[:DECODE_PREFIX].max()),
        "max_abs_diff_decoded": float(diff[DECODE_PREFIX:].max()),
        "max_abs_logit": float(full.abs().max()),
        "paths_seen": {
            "full_forward_use_cache_false": "per linear-attention layer: causal_conv1d_fn (F.conv1d, left pad K-1) + "
            f"torch_chunk_gated_delta_rule(chunk_size={CHUNK_SIZE}, initial_state=None); "
            f"{len(full_calls)} kernel calls over {n_lin} DeltaNet layers",
            "cached_prefill": "causal_conv1d_fn + torch_chunk_gated_delta_rule with initial_state None, "
            "output_final_state True (cache stores the last conv inputs and the final state)",
            "cached_single_token_step": "causal_conv1d_update (conv state) + torch_recurrent_gated_delta_rule with "
            "initial_state = cached state, in every step and every DeltaNet layer",
        },
    }


def kernel_inputs_for(ref, kind, layer, ids):
    with KernelRecorder(modeling_module(kind), ref) as rec:
        rec.capture_layer = layer
        with torch.no_grad():
            ref(input_ids=torch.tensor([ids]), use_cache=False)
        return rec.captured


def f64_gated_delta_rule(q, k, v, g, beta):
    """The gated delta rule token by token in float64, written from the formulas (not transformers')."""
    q, k, v, g, beta = (t.double() for t in (q, k, v, g, beta))
    B, T, nk, dk = q.shape
    nv, dv = v.shape[2:]
    q = q / torch.sqrt(q.pow(2).sum(-1, keepdim=True) + 1e-6) * dk ** -0.5
    k = k / torch.sqrt(k.pow(2).sum(-1, keepdim=True) + 1e-6)
    kh = torch.arange(nv) // (nv // nk)
    S = torch.zeros(B, nv, dk, dv, dtype=torch.float64)
    out = torch.zeros(B, T, nv, dv, dtype=torch.float64)
    for t in range(T):
        qt, kt = q[:, t, kh], k[:, t, kh]
        S = S * g[:, t].exp()[..., None, None]
        delta = (v[:, t] - torch.einsum("bhk,bhkv->bhv", kt, S)) * beta[:, t, :, None]
        S = S + kt[..., None] * delta[..., None, :]
        out[:, t] = torch.einsum("bhk,bhkv->bhv", qt, S)
    return out, S


def deltanet_kernel_golden(ref, kind, layer, ids, gdir) -> dict:
    cap = kernel_inputs_for(ref, kind, layer, ids)
    if cap is None:
        raise RuntimeError("no chunked DeltaNet call captured")
    chunk = modeling_module(kind).torch_chunk_gated_delta_rule
    recur = modeling_module(kind).torch_recurrent_gated_delta_rule
    q, k, v, g, beta = cap["query"], cap["key"], cap["value"], cap["g"], cap["beta"]
    args = dict(initial_state=None, output_final_state=True, use_qk_l2norm_in_kernel=True)
    with torch.no_grad():
        c_out, c_state = chunk(q, k, v, g=g, beta=beta, chunk_size=CHUNK_SIZE, **args)
        r_out, r_state = recur(q, k, v, g=g, beta=beta, **args)
        # The same chunked kernel in two calls (prefix, then the rest from its final state).
        n1 = DECODE_PREFIX
        a_out, a_state = chunk(q[:, :n1], k[:, :n1], v[:, :n1], g=g[:, :n1], beta=beta[:, :n1],
                               chunk_size=CHUNK_SIZE, **args)
        b_out, b_state = chunk(q[:, n1:], k[:, n1:], v[:, n1:], g=g[:, n1:], beta=beta[:, n1:],
                               chunk_size=CHUNK_SIZE, initial_state=a_state, output_final_state=True,
                               use_qk_l2norm_in_kernel=True)
    if not torch.equal(c_out, cap["output"]):
        raise RuntimeError("re-running the chunked kernel does not reproduce the model's call")
    f_out, f_state = f64_gated_delta_rule(q, k, v, g, beta)
    arrays = {
        "deltanet_query.npy": q, "deltanet_key.npy": k, "deltanet_value.npy": v, "deltanet_g.npy": g,
        "deltanet_beta.npy": beta,
        "deltanet_chunk_output.npy": c_out, "deltanet_chunk_final_state.npy": c_state,
        "deltanet_recurrent_output.npy": r_out, "deltanet_recurrent_final_state.npy": r_state,
    }
    files = {}
    for fn, t in arrays.items():
        a = t.detach().float().numpy().astype(np.float32)
        np.save(os.path.join(gdir, fn), a)
        files[fn] = {"shape": list(a.shape), "dtype": "float32"}
    cat_out = torch.cat([a_out, b_out], dim=1)
    return {
        "layer": layer,
        "module": f"model.layers.{layer}.linear_attn",
        "sequence": f"the {len(ids)}-token logits entry (tokens in logits[{LOGIT_LENGTHS.index(len(ids))}])",
        "files": files,
        "inputs": "query [B, T, num_k_heads, k_head_dim], key [B, T, num_k_heads, k_head_dim], value [B, T, "
        "num_v_heads, v_head_dim], g [B, T, num_v_heads], beta [B, T, num_v_heads]: exactly the tensors the layer "
        "passed to torch_chunk_gated_delta_rule in the use_cache=False forward (after conv1d + SiLU, NOT "
        "l2-normalised, q NOT scaled: the kernel does both because use_qk_l2norm_in_kernel=True; g = -exp(A_log) * "
        "softplus(a + dt_bias) <= 0 in log space; beta = sigmoid(b))",
        "chunk_call": f"torch_chunk_gated_delta_rule(query, key, value, g=g, beta=beta, chunk_size={CHUNK_SIZE}, "
        "initial_state=None, output_final_state=True, use_qk_l2norm_in_kernel=True) -> (deltanet_chunk_output "
        "[B, T, num_v_heads, v_head_dim], deltanet_chunk_final_state [B, num_v_heads, k_head_dim, v_head_dim]); "
        "the model's own call had output_final_state=False and gave a bit-identical output",
        "recurrent_call": "torch_recurrent_gated_delta_rule(query, key, value, g=g, beta=beta, initial_state=None, "
        "output_final_state=True, use_qk_l2norm_in_kernel=True) -> (deltanet_recurrent_output, "
        "deltanet_recurrent_final_state)",
        "kernel_semantics": "grouped values: value head h uses query/key head h // (num_v_heads / num_k_heads) "
        "(repeat_interleave); q <- q / sqrt(sum(q^2) + 1e-6) / sqrt(k_head_dim); k <- k / sqrt(sum(k^2) + 1e-6); per "
        "value head, state S [k_head_dim, v_head_dim] starts at 0 and for each token t: S <- S * exp(g_t); "
        "delta = (v_t - k_t^T S) * beta_t; S <- S + k_t delta^T (outer product); o_t = q_t^T S (read AFTER the "
        "update). Everything in float32",
        "chunk_vs_recurrent_max_abs_diff_output": float((c_out - r_out).abs().max()),
        "chunk_vs_recurrent_max_abs_diff_final_state": float((c_state - r_state).abs().max()),
        "chunk_two_calls_vs_one_max_abs_diff_output": float((cat_out - c_out).abs().max()),
        "chunk_two_calls_vs_one_max_abs_diff_final_state": float((b_state - c_state).abs().max()),
        "chunk_two_calls": f"tokens [0, {DECODE_PREFIX}) then [{DECODE_PREFIX}, {len(ids)}) with initial_state = the "
        "first call's final state (the cached-prefill continuation path)",
        "float64_reference": "f64_gated_delta_rule in this script: the per-token formula above in float64",
        "chunk_vs_float64_max_abs_diff_output": float((c_out.double() - f_out).abs().max()),
        "recurrent_vs_float64_max_abs_diff_output": float((r_out.double() - f_out).abs().max()),
        "chunk_vs_float64_max_abs_diff_final_state": float((c_state.double() - f_state).abs().max()),
        "recurrent_vs_float64_max_abs_diff_final_state": float((r_state.double() - f_state).abs().max()),
        "max_abs_output": float(f_out.abs().max()),
        "max_abs_final_state": float(f_state.abs().max()),
        "g_range": [float(g.min()), float(g.max())],
        "per_step_decay_exp_g_range": [float(g.exp().min()), float(g.exp().max())],
        "beta_range": [float(beta.min()), float(beta.max())],
    }
