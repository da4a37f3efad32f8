"""A tiny Hugging Face model folder for the torch backend's tests, made offline.

    make_hf_model.py FOLDER TEXT

writes FOLDER/model (a random 2-layer Llama with a byte-level BPE tokenizer
trained here, saved with save_pretrained) and FOLDER/unknown (a config.json of
an architecture transformers does not know), and prints, as JSON, the ids of
TEXT after BOS and transformers' own log-prob of each token after the first.
"""

import json
import os
import sys

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast


def main() -> None:
    folder, text = sys.argv[1], sys.argv[2]
    torch.manual_seed(0)
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    corpus = ["Mia has 12 shells. She finds 34 more.", "12 + 34 = 46", "Answer: 46"] * 20
    bpe.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=300, special_tokens=["<pad>", "<s>", "</s>"],
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    model = LlamaForCausalLM(config).eval()
    model.save_pretrained(os.path.join(folder, "model"))
    tokenizer.save_pretrained(os.path.join(folder, "model"))
    os.makedirs(os.path.join(folder, "unknown"), exist_ok=True)
    with open(os.path.join(folder, "unknown", "config.json"), "w") as f:
        json.dump({"model_type": "prism-unknown-architecture"}, f)
    ids = [tokenizer.bos_token_id] + tokenizer.encode(text, add_special_tokens=False)
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0]
    logprobs = torch.log_softmax(logits[:-1], dim=-1).gather(-1, torch.tensor(ids[1:]).unsqueeze(-1)).squeeze(-1)
    print(json.dumps({"ids": ids, "logprobs": logprobs.tolist(), "vocab": len(tokenizer),
                      "parameters": sum(p.numel() for p in model.parameters())}))


if __name__ == "__main__":
    main()
