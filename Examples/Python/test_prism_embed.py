"""Drives Prism from Python through prism_embed (ctypes): a short run, a
cancel from another thread, errors, and the reward and judge a config names.

    PRISM_EMBED_LIBRARY=$PWD/.build/debug/libPrismEmbed.so \
        python3 -m unittest discover -s Examples/Python -v

(The Swift test suite runs it: Tests/PrismCLITests/EmbeddingTests.swift.)
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import tempfile
import threading
import unittest

import prism_embed as prism

TINY = """
model:
  config: {{vocab: "0123456789+=;#", d_model: 16, layers: 1, heads: 2, d_ff: 32, max_len: 32}}
data: {{train: {data}, eval: {data}, eval_problems: 4}}
grpo: {{group_size: 2, prompts_per_step: 2, max_new_tokens: 8}}
eval: {{k: 0, max_new_tokens: 8}}
run: {{steps: {steps}, eval_every: 0, checkpoint_every: 0}}
"""


def write_problems(path: str, count: int = 30) -> None:
    """One-digit additions, as `prism data arithmetic` writes them."""
    rng = random.Random(5)
    with open(path, "w", encoding="utf-8") as out:
        for _ in range(count):
            a, b = rng.randint(0, 9), rng.randint(0, 9)
            out.write(json.dumps({"prompt": f"{a}+{b}=", "answer": str(a + b), "steps": [f"{a}+{b}={a + b}"]}) + "\n")


class EmbeddingTest(unittest.TestCase):
    lib: prism.Library

    @classmethod
    def setUpClass(cls) -> None:
        cls.lib = prism.Library()

    def setUp(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="prism-python-")
        self.data = os.path.join(self.dir, "problems.jsonl")
        write_problems(self.data)

    def config(self, steps: int, *overrides: str) -> prism.Config:
        return self.lib.config(TINY.format(data=self.data, steps=steps), overrides=overrides)

    def test_short_run(self) -> None:
        seen: list[tuple[int, dict]] = []
        logs: list[str] = []
        directory = os.path.join(self.dir, "run")
        with self.lib.run(self.config(3, "seed=4"), directory, log=lambda level, line: logs.append(line)) as run:
            taken = run.steps(10, on_step=lambda step, metrics: seen.append((step, metrics)))
            self.assertEqual(taken, 3)  # run.steps is 3: the call stops at the run's end
            self.assertTrue(run.finished)
            self.assertEqual([step for step, _ in seen], [1, 2, 3])
            self.assertTrue(all("reward" in metrics and "groups/all_negative" in metrics for _, metrics in seen))
            evaluation = run.evaluate()
            self.assertEqual(evaluation["problems"], 4)
            self.assertTrue(0 <= evaluation["accuracy"] <= 1)
            self.assertTrue(run.plugins()["model"].endswith("libPrismTransformer.so"))
        with open(os.path.join(directory, "metrics.jsonl"), encoding="utf-8") as lines:
            self.assertEqual([json.loads(line)["step"] for line in lines], [1, 2, 3])
        self.assertTrue(os.path.exists(os.path.join(directory, "checkpoints", "step-000003")))
        self.assertTrue(any(line.startswith("step 3/3") for line in logs), logs)

    def test_cancel_from_another_thread_stops_within_one_step(self) -> None:
        directory = os.path.join(self.dir, "long")
        run = self.lib.run(self.config(100000), directory)
        first_step = threading.Event()
        outcome: dict[str, object] = {}
        # The steps the callback has reported; the lock orders them against the cancel.
        reported = [0]
        lock = threading.Lock()

        def on_step(step: int, _: dict) -> None:
            with lock:
                reported[0] = step
            first_step.set()

        def train() -> None:
            try:
                outcome["taken"] = run.steps(100000, on_step=on_step)
            except prism.Cancelled as cancelled:
                outcome["cancelled"] = cancelled

        worker = threading.Thread(target=train)
        worker.start()
        self.assertTrue(first_step.wait(120), "no step completed")
        with lock:  # the run object belongs to the worker now: only cancel may be called on it
            at_cancel = reported[0]
            run.cancel()
        worker.join(120)
        self.assertFalse(worker.is_alive(), "the run did not stop")
        cancelled = outcome.get("cancelled")
        self.assertIsInstance(cancelled, prism.Cancelled, outcome)
        assert isinstance(cancelled, prism.Cancelled)
        self.assertEqual(cancelled.code, prism.ERROR_CANCELLED)
        self.assertLessEqual(run.step, at_cancel + 1)  # the step in flight, at most
        self.assertIn(f"the run stands at step {run.step}", cancelled.message)
        self.assertTrue(os.path.exists(os.path.join(directory, "checkpoints", f"step-{run.step:06d}")))
        # The cancel was consumed: the run goes on from where it stood.
        before = run.step
        self.assertEqual(run.steps(1), 1)
        self.assertEqual(run.step, before + 1)
        run.close()
        # And it resumes from its checkpoint in a new run object.
        again = self.lib.run(self.config(100000), directory, resume=True)
        self.assertEqual(again.step, before + 1)
        again.close()

    def test_errors_keep_the_process_alive(self) -> None:
        with self.assertRaises(prism.PrismError) as bad_key:
            self.lib.config("grpo: {group_sise: 4}\n", source="bad.yaml")
        self.assertEqual(bad_key.exception.code, prism.ERROR_CONFIG)
        self.assertTrue(bad_key.exception.message.startswith("bad.yaml: grpo.group_sise: unknown key; nearest valid names: grpo.group_size"))
        with self.assertRaises(prism.PrismError) as missing:
            self.lib.run(self.config(2, "model.plugin=PrismNoSuchPlugin"), os.path.join(self.dir, "missing"))
        self.assertEqual(missing.exception.code, prism.ERROR_PLUGIN)
        self.assertIn("model.plugin: plugin 'PrismNoSuchPlugin' not found", missing.exception.message)
        with self.assertRaises(prism.PrismError) as failing:
            self.lib.run(self.config(2, "reward.config.verify=nonsense"), os.path.join(self.dir, "failing"))
        self.assertEqual(failing.exception.code, prism.ERROR_PLUGIN)
        self.assertIn("config key 'verify': expected \"final_answer\" or \"process\"", failing.exception.message)
        # A directory holding a run is refused unless resumed or overwritten, as `prism train` does.
        directory = os.path.join(self.dir, "taken")
        self.lib.run(self.config(1), directory).close()
        with self.assertRaises(prism.PrismError) as taken:
            self.lib.run(self.config(1), directory)
        self.assertEqual(taken.exception.code, prism.ERROR_RUN)
        self.assertIn("holds a run already", taken.exception.message)
        # Still alive and working.
        with self.lib.run(self.config(1), directory, overwrite=True) as run:
            self.assertEqual(run.steps(1), 1)

    def test_a_failing_step_is_an_error_and_the_run_keeps_its_checkpoint(self) -> None:
        # The tests' backend fixture, built to abort on its 20th decoding call, in a runner process.
        sdk = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "SDK", "include")
        fixture = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "Tests", "Fixtures",
                               "fixture_sampler_backend.c")
        plugin = os.path.join(self.dir, "libdying_backend.so")
        subprocess.run(["cc", "-std=c11", "-shared", "-fPIC", "-fvisibility=hidden", "-DCRASH_ON_DECODE=20", "-I", sdk,
                        fixture, "-o", plugin, "-lm"], check=True)
        data = os.path.join(self.dir, "ab.jsonl")
        with open(data, "w", encoding="utf-8") as out:
            out.write('{"prompt": "ab", "answer": "b"}\n' * 20)
        config = self.lib.config("", overrides=[
            f"model.plugin={plugin}", "model.isolation=process", f"sampler.plugin={plugin}", f"data.train={data}",
            "grpo.group_size=2", "grpo.prompts_per_step=1", "grpo.max_new_tokens=4", "run.steps=10",
            "run.checkpoint_every=2", "run.eval_every=0", "judge.plugin="])
        directory = os.path.join(self.dir, "dying")
        with self.lib.run(config, directory) as run:
            with self.assertRaises(prism.PrismError) as failed:
                run.steps(10)
            self.assertEqual(failed.exception.code, prism.ERROR_RUN)
            # 3 decoding calls per step: the 20th is in step 7; step 6 has the last checkpoint.
            self.assertIn("step 7 failed: model.plugin libdying_backend.so", failed.exception.message)
            self.assertIn("the last checkpoint is step 6", failed.exception.message)
            self.assertEqual(failed.exception.steps_taken, 6)  # type: ignore[attr-defined]
            with self.assertRaises(prism.PrismError) as again:
                run.steps(1)
            self.assertEqual(again.exception.code, prism.ERROR_STATE)
        self.assertEqual(sorted(os.listdir(os.path.join(directory, "checkpoints")))[-1], "step-000006")

    def test_reward_and_judge_the_config_names(self) -> None:
        config = self.config(1)
        with self.lib.reward(config) as reward:
            scores = reward.score([{"prompt": "3+4=", "completion": "3+4=7;#7", "reference": "7"},
                                   {"prompt": "3+4=", "completion": "3+4=8;#8", "reference": "7"}])
        self.assertEqual(scores, [(1.0, True), (0.0, False)])
        with self.lib.judge(config) as judge:
            feedback = judge.assess({"prompt": "3+4+5=", "reference": "12",
                                     "completions": ["3+4=7;7+5=12;#12", "3+4=8;8+5=13;#13"],
                                     "rewards": [1, 0], "correct": [True, False]})
        self.assertEqual(feedback["first_errors"], [None, 0])
        self.assertEqual(feedback["disposition"], "keep")


if __name__ == "__main__":
    unittest.main()
