"""A plain PyTorch reference of one GRPO/SGPO update, for the parity test
(Tests/PrismTrainerTests/ParityTests.swift). Not part of the product.

Given a fixed batch of groups (token ids, completion texts, rewards, the
judge's scores and first-error byte spans) and the initial weights of the
transformer plugin's model, it computes, independently of Prism: the
advantages (GRPO, or SGPO's graded rewards in all-negative groups), the
per-token advantages of a credit rule, the log-probs, the gradient of the
token-mean clipped objective with respect to them, the global gradient norm,
and the weights after one clipped AdamW step. It prints, per case, the
largest differences from what Prism computed.

    python grpo_reference.py INPUT.json      (prints one JSON object)
"""
from __future__ import annotations

import json
import math
import struct
import sys
import warnings
from typing import Any

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")  # torch without numpy: not needed here
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

# Tensors AdamW decays (Prism: "matrices only", embeddings included).
DECAYED = ("wte", "wpe", "attn.qkv.weight", "attn.proj.weight", "mlp.fc.weight", "mlp.proj.weight", "lm_head.weight")


def read_safetensors(path: str) -> dict[str, torch.Tensor]:
    """The model's tensors of a checkpoint (the plugin also stores the
    reference model and AdamW's moments, under prefixes, left out here)."""
    with open(path, "rb") as f:
        data = f.read()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__" or name.startswith(("reference.", "adam.")):
            continue
        assert entry["dtype"] == "F32", f"{name}: dtype {entry['dtype']}"
        begin, end = entry["data_offsets"]
        raw = bytearray(data[8 + length + begin : 8 + length + end])
        tensors[name] = torch.frombuffer(raw, dtype=torch.float32).reshape(entry["shape"]).clone()
    return tensors


def logprobs(w: dict[str, torch.Tensor], tokens: torch.Tensor, layers: int, heads: int) -> torch.Tensor:
    """log p(tokens[:, t] | tokens[:, :t]) for t >= 1, [B, T-1]: the GPT-2
    layout of the plugin (pre-LayerNorm, learned positions, tanh-GELU,
    untied head, weights stored [in, out])."""
    b, t = tokens.shape
    d = w["wte"].shape[1]
    e = d // heads
    x = w["wte"][tokens] + w["wpe"][:t]
    causal = torch.ones(t, t, dtype=torch.bool).tril()
    for layer in range(layers):
        p = f"h.{layer}."
        a = F.layer_norm(x, (d,), w[p + "ln_1.weight"], w[p + "ln_1.bias"], eps=1e-5)
        q, k, v = (a @ w[p + "attn.qkv.weight"] + w[p + "attn.qkv.bias"]).split(d, dim=2)
        q, k, v = (z.view(b, t, heads, e).transpose(1, 2) for z in (q, k, v))
        scores = (q @ k.transpose(2, 3)) / math.sqrt(e)
        attention = torch.softmax(scores.masked_fill(~causal, float("-inf")), dim=-1) @ v
        x = x + attention.transpose(1, 2).reshape(b, t, d) @ w[p + "attn.proj.weight"] + w[p + "attn.proj.bias"]
        m = F.layer_norm(x, (d,), w[p + "ln_2.weight"], w[p + "ln_2.bias"], eps=1e-5)
        hidden = F.gelu(m @ w[p + "mlp.fc.weight"] + w[p + "mlp.fc.bias"], approximate="tanh")
        x = x + hidden @ w[p + "mlp.proj.weight"] + w[p + "mlp.proj.bias"]
    x = F.layer_norm(x, (d,), w["ln_f.weight"], w["ln_f.bias"], eps=1e-5)
    logp = torch.log_softmax(x @ w["lm_head.weight"], dim=-1)
    return logp[:, :-1].gather(2, tokens[:, 1:].unsqueeze(2)).squeeze(2)


def group_advantages(rewards: list[float], epsilon: float) -> list[float]:
    n = len(rewards)
    mean = sum(rewards) / n
    std = math.sqrt(sum((r - mean) ** 2 for r in rewards) / (n - 1))
    return [(r - mean) / (std + epsilon) for r in rewards]


def first_error_token(text: str, span: list[int] | None) -> int | None:
    """The plugin's tokenizer has one token per character: the byte offset
    of an ASCII text is the token index; the end of the text is the end
    token's index."""
    if span is None:
        return None
    assert text.isascii()
    return span[0]


def credit(rule: str, advantage: float, length: int, error: int | None) -> list[float]:
    if rule == "sequence" or error is None:
        return [advantage] * length
    e = min(max(error, 0), length)
    if rule == "prefix":
        return [advantage if t < e else 0.0 for t in range(length)]
    assert rule == "split"
    return [advantage if (t < e) == (advantage > 0) else 0.0 for t in range(length)]


def case(setup: dict[str, Any], spec: dict[str, Any], initial: dict[str, torch.Tensor]) -> dict[str, Any]:
    groups = setup["groups"]
    # Advantages: SGPO replaces the rewards of the wrong answers of
    # all-negative groups by sigmoid(5 (score - 0.5)), capped at 0.999.
    advantages, token_advantages = [], []
    for g in groups:
        rewards = list(g["rewards"])
        diversified = spec["strategy"] == "sgpo" and not any(g["correct"])
        if diversified:
            rewards = [min(1 / (1 + math.exp(-5 * (s - 0.5))), 0.999) for s in g["scores"]]
        a = group_advantages(rewards, setup["advantage_epsilon"])
        advantages.append(a)
        rows = []
        for i, text in enumerate(g["texts"]):
            length = len(g["completion_tokens"][i])
            located = diversified and g["first_errors"][i] >= 0
            error = first_error_token(text, g["spans"][i]) if located else None
            rows.append(credit(spec["credit"], a[i], length, error))
        token_advantages.append(rows)

    # The objective: token-mean over every completion token of
    # -min(ratio * A, clip(ratio) * A), ratio = exp(logp - logp_old); on the
    # first pass the policy is the sampling one, so ratio = 1.
    weights = {name: tensor.clone().requires_grad_(True) for name, tensor in initial.items()}
    opt = setup["optimizer"]
    all_logp, all_grad, flat_adv = [], [], []
    loss = torch.zeros((), dtype=torch.float64)
    total = sum(len(c) for g in groups for c in g["completion_tokens"])
    for gi, g in enumerate(groups):
        for i, (prompt, completion) in enumerate(zip(g["prompt_tokens"], g["completion_tokens"])):
            tokens = torch.tensor([prompt + completion])
            logp = logprobs(weights, tokens, setup["layers"], setup["heads"])[0, len(prompt) - 1 :]
            ratio = torch.exp(logp - logp.detach()).double()
            adv = torch.tensor(token_advantages[gi][i], dtype=torch.float64)
            clipped = torch.clamp(ratio, 1 - 0.2, 1 + 0.2)
            loss = loss - torch.minimum(ratio * adv, clipped * adv).sum() / total
            all_logp += logp.tolist()
            all_grad += (-adv / total).tolist()  # d loss / d logp at ratio 1
            flat_adv += adv.tolist()
    loss.backward()
    norm = math.sqrt(sum(float((w.grad.double() ** 2).sum()) for w in weights.values()))
    decayed = [w for n, w in weights.items() if n.endswith(DECAYED)]
    plain = [w for n, w in weights.items() if not n.endswith(DECAYED)]
    optimizer = torch.optim.AdamW(
        [{"params": decayed, "weight_decay": opt["weight_decay"]}, {"params": plain, "weight_decay": 0.0}],
        lr=opt["lr"], betas=(opt["beta1"], opt["beta2"]), eps=opt["eps"])
    if opt["max_grad_norm"] > 0:
        torch.nn.utils.clip_grad_norm_(list(weights.values()), opt["max_grad_norm"])
    optimizer.step()

    prism = spec["prism"]
    after = read_safetensors(prism["weights_after"])
    update_error = 0.0
    for name, w in weights.items():
        ours = w.detach() - initial[name]
        theirs = after[name] - initial[name]
        update_error = max(update_error, float((theirs - ours).norm() / ours.norm().clamp_min(1e-30)))

    def largest(a: list[float], b: list[float]) -> float:
        assert len(a) == len(b), f"{len(a)} values against {len(b)}"
        return max((abs(x - y) for x, y in zip(a, b)), default=0.0)

    flat_prism_adv = [x for g in prism["token_advantages"] for row in g for x in row]
    return {
        "advantages": largest([x for g in advantages for x in g], [x for g in prism["advantages"] for x in g]),
        "token_advantages": largest(flat_adv, flat_prism_adv),
        "logprobs": largest(all_logp, prism["logprobs"]),
        "grad_logprob": largest(all_grad, prism["grad_logprob"]),
        "grad_norm_relative": abs(norm - prism["grad_norm"]) / norm,
        "clipped": opt["max_grad_norm"] > 0 and norm > opt["max_grad_norm"],
        "update_relative": update_error,
        "credited_tokens": sum(1 for x in flat_adv if x != 0),
    }


def main() -> None:
    with open(sys.argv[1]) as f:
        setup = json.load(f)
    initial = read_safetensors(setup["weights"])
    print(json.dumps({spec["name"]: case(setup, spec, initial) for spec in setup["cases"]}))


if __name__ == "__main__":
    main()
