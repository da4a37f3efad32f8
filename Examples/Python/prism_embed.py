"""Prism's embedding API from Python, through ctypes (no compiled extension).

A thin, typed layer over SDK/include/prism/embed.h: ``Config``, ``Run``,
``Reward`` and ``Judge`` own their handles; every failing call raises
``PrismError`` carrying the library's code and its one-line message.

    import prism_embed as prism
    lib = prism.Library("/path/to/.build/debug/libPrismEmbed.so")
    config = lib.config_file("tiny.yaml", overrides=["seed=3"])
    with lib.run(config, "runs/tiny") as run:
        run.steps(10, on_step=lambda step, metrics: print(step, metrics["reward"]))
        print(run.evaluate())

Threads: a ``Run`` is used by one thread at a time; ``Run.cancel`` may be
called from any thread (the call in flight raises ``Cancelled``). ctypes
releases the GIL during each library call, so other Python threads run.
"""

from __future__ import annotations

import ctypes
import json
import os
from typing import Any, Callable, Iterable, Optional

VERSION_MAJOR = 1
VERSION_MINOR = 0
VERSION_NUMBER = VERSION_MAJOR * 10000 + VERSION_MINOR * 100

OK = 0
ERROR_INVALID_ARGUMENT = 1
ERROR_CONFIG = 2
ERROR_DATA = 3
ERROR_PLUGIN = 4
ERROR_RUN = 5
ERROR_CANCELLED = 6
ERROR_STATE = 7
ERROR_INTERNAL = 8


class PrismError(Exception):
    """A failed call: ``code`` is one of the ERROR_* values, the message the
    line the ``prism`` command would print."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Cancelled(PrismError):
    """The call was stopped by ``Run.cancel``; the run stands at its last
    completed step and can go on."""


class _Options(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("resume", ctypes.c_int32),
        ("overwrite", ctypes.c_int32),
        ("force", ctypes.c_int32),
        ("log", ctypes.c_void_p),
        ("log_user_data", ctypes.c_void_p),
    ]


class _Sample(ctypes.Structure):
    _fields_ = [
        ("prompt", ctypes.c_char_p),
        ("completion", ctypes.c_char_p),
        ("reference", ctypes.c_char_p),
        ("metadata_json", ctypes.c_char_p),
    ]


_LOG_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int32, ctypes.c_char_p)
_STEP_FN = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_int64, ctypes.c_char_p)

_handle = ctypes.c_void_p
_error_out = ctypes.POINTER(ctypes.c_void_p)
_string_out = ctypes.POINTER(ctypes.c_void_p)  # char ** (freed with prism_string_free)


class Library:
    """libPrismEmbed.so, loaded once; makes the other objects."""

    def __init__(self, path: Optional[str] = None) -> None:
        path = path or os.environ.get("PRISM_EMBED_LIBRARY", "libPrismEmbed.so")
        self._lib = lib = ctypes.CDLL(path)
        signatures: dict[str, tuple[Any, list[Any]]] = {
            "prism_embed_version": (ctypes.c_char_p, []),
            "prism_embed_check_version": (ctypes.c_int32, [ctypes.c_int32]),
            "prism_error_message": (ctypes.c_char_p, [_handle]),
            "prism_error_code": (ctypes.c_int32, [_handle]),
            "prism_error_free": (None, [_handle]),
            "prism_string_free": (None, [ctypes.c_void_p]),
            "prism_config_new": (_handle, []),
            "prism_config_parse": (ctypes.c_int32, [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(_handle), _error_out]),
            "prism_config_load": (ctypes.c_int32, [ctypes.c_char_p, ctypes.POINTER(_handle), _error_out]),
            "prism_config_set": (ctypes.c_int32, [_handle, ctypes.c_char_p, _error_out]),
            "prism_config_yaml": (ctypes.c_int32, [_handle, _string_out, _error_out]),
            "prism_config_free": (None, [_handle]),
            "prism_plugins_list": (ctypes.c_int32, [_string_out, _error_out]),
            "prism_reward_create": (ctypes.c_int32, [_handle, ctypes.POINTER(_handle), _error_out]),
            "prism_reward_score": (ctypes.c_int32, [_handle, ctypes.POINTER(_Sample), ctypes.c_size_t,
                                                    ctypes.POINTER(ctypes.c_double), ctypes.POINTER(ctypes.c_uint8),
                                                    _error_out]),
            "prism_reward_free": (None, [_handle]),
            "prism_judge_create": (ctypes.c_int32, [_handle, ctypes.POINTER(_handle), _error_out]),
            "prism_judge_assess": (ctypes.c_int32, [_handle, ctypes.c_char_p, _string_out, _error_out]),
            "prism_judge_free": (None, [_handle]),
            "prism_run_create": (ctypes.c_int32, [_handle, ctypes.c_char_p, ctypes.POINTER(_Options),
                                                  ctypes.POINTER(_handle), _error_out]),
            "prism_run_steps": (ctypes.c_int32, [_handle, ctypes.c_int64, _STEP_FN, ctypes.c_void_p,
                                                 ctypes.POINTER(ctypes.c_int64), _error_out]),
            "prism_run_step_count": (ctypes.c_int64, [_handle]),
            "prism_run_finished": (ctypes.c_int32, [_handle]),
            "prism_run_evaluate": (ctypes.c_int32, [_handle, _string_out, _error_out]),
            "prism_run_checkpoint": (ctypes.c_int32, [_handle, _error_out]),
            "prism_run_plugins": (ctypes.c_int32, [_handle, _string_out, _error_out]),
            "prism_run_cancel": (None, [_handle]),
            "prism_run_free": (None, [_handle]),
        }
        for name, (restype, argtypes) in signatures.items():
            function = getattr(lib, name)
            function.restype = restype
            function.argtypes = argtypes
        if not lib.prism_embed_check_version(VERSION_NUMBER):
            raise PrismError(ERROR_STATE, f"{path}: version {self.version} cannot serve this module "
                                          f"(built for {VERSION_MAJOR}.{VERSION_MINOR})")

    @property
    def version(self) -> str:
        return self._lib.prism_embed_version().decode()

    # Calls -----------------------------------------------------------------

    def _check(self, status: int, error: ctypes.c_void_p) -> None:
        if status == OK:
            return
        message = self._lib.prism_error_message(error).decode()
        code = self._lib.prism_error_code(error)
        self._lib.prism_error_free(error)
        raise (Cancelled if code == ERROR_CANCELLED else PrismError)(code, message)

    def _call(self, name: str, *args: Any) -> None:
        error = ctypes.c_void_p()
        self._check(getattr(self._lib, name)(*args, ctypes.byref(error)), error)

    def _string(self, name: str, *args: Any) -> str:
        out = ctypes.c_void_p()
        self._call(name, *args, ctypes.byref(out))
        try:
            return ctypes.string_at(out.value).decode()
        finally:
            self._lib.prism_string_free(out)

    # Objects ---------------------------------------------------------------

    def config(self, text: str = "", overrides: Iterable[str] = (), source: str = "config") -> "Config":
        """A config from YAML text (empty: the defaults), then the overrides."""
        handle = _handle()
        self._call("prism_config_parse", text.encode(), source.encode(), ctypes.byref(handle))
        config = Config(self, handle)
        for assignment in overrides:
            config.set(assignment)
        return config

    def config_file(self, path: str, overrides: Iterable[str] = ()) -> "Config":
        """A config read from a YAML file (paths in it relative to its folder)."""
        handle = _handle()
        self._call("prism_config_load", os.fsencode(path), ctypes.byref(handle))
        config = Config(self, handle)
        for assignment in overrides:
            config.set(assignment)
        return config

    def plugins(self) -> list[dict[str, Any]]:
        """The plugins in the search directories."""
        return json.loads(self._string("prism_plugins_list"))

    def run(self, config: "Config", directory: str, resume: bool = False, overwrite: bool = False,
            log: Optional[Callable[[int, str], None]] = None) -> "Run":
        """Opens a run (loads the plugins; warm-starts a fresh one)."""
        return Run(self, config, directory, resume, overwrite, log)

    def reward(self, config: "Config") -> "Reward":
        handle = _handle()
        self._call("prism_reward_create", config._handle, ctypes.byref(handle))
        return Reward(self, handle)

    def judge(self, config: "Config") -> "Judge":
        handle = _handle()
        self._call("prism_judge_create", config._handle, ctypes.byref(handle))
        return Judge(self, handle)


class _Owned:
    _free = ""

    def __init__(self, library: Library, handle: _handle) -> None:
        self._library = library
        self._handle = handle

    def close(self) -> None:
        if getattr(self, "_handle", None):
            getattr(self._library._lib, self._free)(self._handle)
            self._handle = _handle()

    def __del__(self) -> None:
        self.close()

    def __enter__(self):  # type: ignore[no-untyped-def]
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Config(_Owned):
    _free = "prism_config_free"

    def set(self, assignment: str) -> None:
        """One ``key=value`` override, as ``prism train --set``."""
        self._library._call("prism_config_set", self._handle, assignment.encode())

    @property
    def yaml(self) -> str:
        return self._library._string("prism_config_yaml", self._handle)


class Reward(_Owned):
    _free = "prism_reward_free"

    def score(self, samples: list[dict[str, str]]) -> list[tuple[float, bool]]:
        """(reward, correct) per sample; each sample a dict with completion,
        reference, and optionally prompt and metadata_json."""
        n = len(samples)
        array = (_Sample * n)(*[
            _Sample(s.get("prompt", "").encode(), s["completion"].encode(), s.get("reference", "").encode(),
                    s.get("metadata_json", "").encode()) for s in samples])
        rewards = (ctypes.c_double * n)()
        correct = (ctypes.c_uint8 * n)()
        self._library._call("prism_reward_score", self._handle, array, n, rewards, correct)
        return [(rewards[i], bool(correct[i])) for i in range(n)]


class Judge(_Owned):
    _free = "prism_judge_free"

    def assess(self, group: dict[str, Any]) -> dict[str, Any]:
        """The judge's feedback on a group (see embed.h for the fields)."""
        return json.loads(self._library._string("prism_judge_assess", self._handle, json.dumps(group).encode()))


class Run(_Owned):
    _free = "prism_run_free"

    def __init__(self, library: Library, config: Config, directory: str, resume: bool, overwrite: bool,
                 log: Optional[Callable[[int, str], None]]) -> None:
        options = _Options(struct_size=ctypes.sizeof(_Options), resume=int(resume), overwrite=int(overwrite))
        # The callback object must outlive the run: the library calls it until the run is freed.
        self._log = _LOG_FN(lambda _data, level, message: log(level, message.decode())) if log else None
        if self._log:
            options.log = ctypes.cast(self._log, ctypes.c_void_p)
        handle = _handle()
        library._call("prism_run_create", config._handle, os.fsencode(directory), ctypes.byref(options),
                      ctypes.byref(handle))
        super().__init__(library, handle)

    def steps(self, count: int, on_step: Optional[Callable[[int, dict[str, Any]], Optional[bool]]] = None) -> int:
        """Takes up to ``count`` steps; ``on_step(step, metrics)`` may return
        True to stop. Returns the steps taken; raises ``Cancelled`` after a
        cancel (its ``steps_taken`` says how many were)."""
        failure: list[BaseException] = []

        def callback(_data: Any, step: int, metrics: bytes) -> int:
            if on_step is None:
                return 0
            try:
                return 1 if on_step(step, json.loads(metrics)) else 0
            except BaseException as error:  # never let an exception cross the C boundary
                failure.append(error)
                return 1

        completed = ctypes.c_int64()
        error = ctypes.c_void_p()
        status = self._library._lib.prism_run_steps(self._handle, count, _STEP_FN(callback), None,
                                                     ctypes.byref(completed), ctypes.byref(error))
        try:
            self._library._check(status, error)
        except PrismError as raised:
            raised.steps_taken = completed.value  # type: ignore[attr-defined]
            raise
        if failure:
            raise failure[0]
        return completed.value

    @property
    def step(self) -> int:
        return self._library._lib.prism_run_step_count(self._handle)

    @property
    def finished(self) -> bool:
        return bool(self._library._lib.prism_run_finished(self._handle))

    def evaluate(self) -> dict[str, Any]:
        return json.loads(self._library._string("prism_run_evaluate", self._handle))

    def checkpoint(self) -> None:
        self._library._call("prism_run_checkpoint", self._handle)

    def plugins(self) -> dict[str, Optional[str]]:
        return json.loads(self._library._string("prism_run_plugins", self._handle))

    def cancel(self) -> None:
        """Stops the call in flight (or the next) at its next safe point. Any thread."""
        self._library._lib.prism_run_cancel(self._handle)
