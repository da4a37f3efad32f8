"""The PyTorch side of `compare-pytorch.sh`: the reference transformer shape
(2 layers, d_model 128, 4 heads, MLP 512, vocab 32, pre-LayerNorm, learned
positions, tanh-GELU, untied LM head), batch 64, prompt 16 + 16 new tokens.

Prints one JSON object: forward+backward tokens/s, KV-cache generation new
tokens/s (multinomial sampling), GEMM GFLOP/s on the model's shapes.
Written for this comparison; no model code is downloaded.
"""
import json
import math
import sys
import time

import torch
import torch.nn.functional as F

THREADS = int(sys.argv[1]) if len(sys.argv) > 1 else 2
REPEATS = int(sys.argv[2]) if len(sys.argv) > 2 else 5
torch.set_num_threads(THREADS)
torch.manual_seed(0)

V, D, L, H, FF, T = 32, 128, 2, 4, 512, 64
B, PROMPT, NEW = 64, 16, 16


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1 = torch.nn.LayerNorm(D)
        self.qkv = torch.nn.Linear(D, 3 * D)
        self.proj = torch.nn.Linear(D, D)
        self.ln2 = torch.nn.LayerNorm(D)
        self.fc = torch.nn.Linear(D, FF)
        self.fcp = torch.nn.Linear(FF, D)

    def forward(self, x, cache=None):
        b, t, _ = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(D, dim=2)
        q, k, v = (z.view(b, t, H, D // H).transpose(1, 2) for z in (q, k, v))
        if cache is not None:
            if cache.get("k") is not None:
                k = torch.cat([cache["k"], k], dim=2)
                v = torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
        causal = cache is None or q.shape[2] > 1
        y = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, D))
        return x + self.fcp(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = torch.nn.Embedding(V, D)
        self.wpe = torch.nn.Embedding(T, D)
        self.blocks = torch.nn.ModuleList(Block() for _ in range(L))
        self.lnf = torch.nn.LayerNorm(D)
        self.head = torch.nn.Linear(D, V, bias=False)

    def forward(self, idx, caches=None, offset=0):
        pos = torch.arange(offset, offset + idx.shape[1])
        x = self.wte(idx) + self.wpe(pos)
        for i, block in enumerate(self.blocks):
            x = block(x, None if caches is None else caches[i])
        return self.head(self.lnf(x))


def best(fn, repeats=REPEATS):
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


model = Model()
tokens = torch.randint(3, V, (B, PROMPT + NEW))


def fwd_bwd():
    # All 32 positions through the model, the last one's logits dropped:
    # what Prism computes for a 32-token sequence, what TRL's GRPOTrainer
    # does (the whole sequence in, `logits_to_keep + 1`, the last excluded),
    # and the 32 tokens both sides count. (Until 2026-11-27 this ran
    # model(tokens[:, :-1]), 31 positions, counted as 32.)
    logits = model(tokens)[:, :-1]
    logp = F.log_softmax(logits, dim=-1).gather(2, tokens[:, 1:, None]).squeeze(2)
    (-logp.mean()).backward()


fwd_bwd_time = best(fwd_bwd)


@torch.no_grad()
def generate():
    caches = [dict() for _ in range(L)]
    logits = model(tokens[:, :PROMPT], caches)[:, -1]
    for step in range(NEW):
        nxt = torch.multinomial(F.softmax(logits, dim=-1), 1)
        if step < NEW - 1:
            logits = model(nxt, caches, offset=PROMPT + step)[:, -1]


generate_time = best(generate)

# (name, trans_a, trans_b, M, N, K): the model's GEMMs, forward, backward
# (dW = Aᵀ·dY, dX = dY·Wᵀ) and decoding; the names match `prism bench transformer`.
SHAPES = [("qkv", 0, 0, 2048, 384, 128), ("proj", 0, 0, 2048, 128, 128), ("ffn1", 0, 0, 2048, 512, 128),
          ("ffn2", 0, 0, 2048, 128, 512), ("head", 0, 0, 2048, 32, 128),
          ("dW qkv", 1, 0, 128, 384, 2048), ("dW ffn1", 1, 0, 128, 512, 2048), ("dW ffn2", 1, 0, 512, 128, 2048),
          ("dX qkv", 0, 1, 2048, 128, 384), ("dX ffn1", 0, 1, 2048, 128, 512), ("dX ffn2", 0, 1, 2048, 512, 128),
          ("decode qkv", 0, 0, 64, 384, 128), ("decode proj", 0, 0, 64, 128, 128),
          ("decode ffn1", 0, 0, 64, 512, 128), ("decode ffn2", 0, 0, 64, 128, 512)]
# As `prism bench transformer` times them: REPEATS rounds over every shape
# in turn, one warm-up and one timed run of each per round; a shape's figure
# is its best round, with the median round beside it.
operands = []
for label, ta, tb, m, n, k in SHAPES:
    a = torch.randn(k, m).t() if ta else torch.randn(m, k)
    b = torch.randn(n, k).t() if tb else torch.randn(k, n)
    operands.append((f"{label} {m}x{k}x{n}", a, b, 2 * m * n * k, max(1, 200_000_000 // (2 * m * n * k))))
rates: dict[str, list[float]] = {name: [] for name, *_ in operands}
for _ in range(REPEATS):
    for name, a, b, flops, calls in operands:
        for _ in range(2):  # warm-up, then timed
            start = time.perf_counter()
            for _ in range(calls):
                torch.mm(a, b)
            elapsed = time.perf_counter() - start
        rates[name].append(flops * calls / elapsed / 1e9)
gemm = {name: max(r) for name, r in rates.items()}
gemm_median = {name: sorted(r)[len(r) // 2] for name, r in rates.items()}

print(json.dumps({
    "threads": THREADS,
    "torch": torch.__version__,
    "fwd_bwd_tokens_per_s": B * (PROMPT + NEW) / fwd_bwd_time,
    "generation_tokens_per_s": B * NEW / generate_time,
    "gemm_gflops": gemm,
    "gemm_gflops_median": gemm_median,
}))
