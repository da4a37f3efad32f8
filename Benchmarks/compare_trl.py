"""The TRL side of `compare-trl.sh`: TRL's GRPOTrainer on the model shape,
group size, prompt and completion lengths of `prism bench grpo`, offline, in
this process, then `prism bench grpo` in the same run; prints both and the
ratio. A GPT-2 model built from its config (pre-LayerNorm, learned
positions, tanh-GELU: the transformer plugin's architecture) and a
character tokenizer built in code; nothing is downloaded.
"""
import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1",
                  TOKENIZERS_PARALLELISM="false")

import torch  # noqa: E402
from datasets import Dataset  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers  # noqa: E402
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast, TrainerCallback  # noqa: E402
from trl import GRPOConfig, GRPOTrainer  # noqa: E402

VOCAB = "0123456789+-*=;#abcdefghijklm"  # + 3 special tokens = 32, as the Prism benchmark


class StepTimes(TrainerCallback):
    """Wall time of every optimizer step (generation included)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.start = 0.0

    def on_step_begin(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        self.start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        self.times.append(time.perf_counter() - self.start)


def trl_step(a: argparse.Namespace, folder: str) -> dict[str, float]:
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    words = {"<pad>": 0, "<bos>": 1, "<eos>": 2} | {c: i + 3 for i, c in enumerate(VOCAB)}
    core = Tokenizer(models.WordLevel(words, unk_token="<pad>"))
    core.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    core.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", bos_token="<bos>",
                                        eos_token="<eos>", padding_side="left")
    config = GPT2Config(vocab_size=32, n_positions=a.prompt_tokens + a.new_tokens + 1, n_embd=a.d_model,
                        n_layer=a.layers, n_head=a.heads, n_inner=4 * a.d_model, bos_token_id=1, eos_token_id=2,
                        pad_token_id=0, activation_function="gelu_new")
    model = GPT2LMHeadModel(config)
    rng = random.Random(1)
    prompts = ["".join(rng.choice(VOCAB) for _ in range(a.prompt_tokens)) for _ in range(a.prompts * (a.steps + 1))]
    data = Dataset.from_list([{"prompt": p} for p in prompts])

    def reward(completions, **kwargs):  # type: ignore[no-untyped-def]
        return [float(len(c) % 3) for c in completions]  # varied, so every group has an advantage

    args = GRPOConfig(output_dir=folder, use_cpu=True, report_to=[], num_generations=a.group_size,
                      per_device_train_batch_size=a.prompts * a.group_size, max_completion_length=a.new_tokens,
                      beta=0.0, num_iterations=1, save_strategy="no", bf16=False, disable_tqdm=True,
                      max_steps=a.steps + 1, learning_rate=1e-4, temperature=1.0, logging_steps=1000,
                      dataloader_num_workers=0)
    times = StepTimes()
    trainer = GRPOTrainer(model=model, reward_funcs=reward, args=args, train_dataset=data,
                          processing_class=tokenizer, callbacks=[times])
    trainer.train()
    measured = times.times[1:]  # the first step warms up
    return {"best_s": min(measured), "median_s": statistics.median(measured), "steps": len(measured)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prism", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--prompt-tokens", type=int, default=16)
    parser.add_argument("--new-tokens", type=int, default=16)
    a = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        trl = trl_step(a, folder)
    prism = json.loads(subprocess.run(
        [a.prism, "bench", "grpo", "--json", "--threads", str(a.threads), "--steps", str(a.steps),
         "--d-model", str(a.d_model), "--layers", str(a.layers), "--heads", str(a.heads), "--prompts", str(a.prompts),
         "--group-size", str(a.group_size), "--prompt-tokens", str(a.prompt_tokens), "--new-tokens", str(a.new_tokens)],
        check=True, capture_output=True, text=True).stdout)
    print(f"GRPO step: d_model {a.d_model}, {a.layers} layers, {a.heads} heads, {a.prompts} prompts x {a.group_size}, "
          f"prompt {a.prompt_tokens} tokens, <= {a.new_tokens} new, {a.threads} threads, torch {torch.__version__}")
    print(f"{'':28}{'best ms':>10}{'median ms':>11}")
    print(f"{'TRL GRPOTrainer':28}{1000 * trl['best_s']:10.1f}{1000 * trl['median_s']:11.1f}")
    print(f"{'Prism (prism bench grpo)':28}{1000 * prism['step_s']:10.1f}{1000 * prism['median_step_s']:11.1f}"
          f"   generation {1000 * prism['generation_s']:.1f}, update {1000 * prism['update_s']:.1f}")
    print(f"Prism / TRL: best {prism['step_s'] / trl['best_s']:.2f}, median {prism['median_step_s'] / trl['median_s']:.2f}"
          f" (target <= 0.33)")
    print(f"physical floor {1000 * prism['floor_s']:.1f} ms ({prism['flops'] / 1e9:.2f} GFLOP at "
          f"{prism['fma_peak_gflops']:.1f} GFLOP/s): Prism = {prism['step_s'] / prism['floor_s']:.2f}x floor (target <= 2)")
    print(f"  counting every row's prompt (the issue's count): {1000 * prism['floor_every_prompt_s']:.1f} ms "
          f"({prism['flops_every_prompt'] / 1e9:.2f} GFLOP): Prism = {prism['step_s'] / prism['floor_every_prompt_s']:.2f}x")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
