"""A real third-party OpenAI-compatible upstream for the test suite.

``make_tiny_gguf`` writes a random-weight, llama-architecture GGUF model (a few hundred KB) and
``LlamaServer`` serves it with llama-cpp-python's own server (``python -m llama_cpp.server``), so
gateway tests talk to an independent implementation of the OpenAI wire format rather than to a
mock written by us.

Usage from a ``conftest.py`` (session scoped, the model lives in a pytest tmp dir)::

    from tests.support.llama_server import llama_server  # noqa: F401  (re-exported fixture)

or by hand::

    model = make_tiny_gguf(tmp_path / "tiny-llama.gguf")
    with LlamaServer(model) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="unused")
        client.chat.completions.create(model=server.model, messages=[...], max_tokens=8)

Properties of the generated model that tests may rely on:

* Generated text only ever consists of plain printable-ASCII vocabulary entries: the byte-fallback,
  control and special tokens are pushed to logits far below -100 through a constant residual
  dimension, so no sampler setting realistically emits them.  In particular EOS is never
  produced, so a completion stops only on ``max_tokens`` (``finish_reason == "length"``), on a
  ``stop`` string (``"stop"``) or when the context is full.
* Any input text tokenizes (all 256 ``<0xNN>`` byte tokens exist), so non-ASCII prompts are fine.
* Weights are seeded; with ``temperature=0`` the output is deterministic.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import json
import os
import pathlib
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Any, Self

import numpy as np
import pytest

__all__ = [
    "DEFAULT_ALIAS",
    "LlamaServer",
    "LlamaServerError",
    "llama_server",
    "make_tiny_gguf",
    "require_llama_cpp_server",
    "tiny_llama_server",
]

DEFAULT_ALIAS = "tiny-llama"

# Sizes: big enough to exercise every llama.cpp code path (GQA, rope, 2 blocks), small enough
# that a token costs well under a millisecond and the file stays around 200 KB.
_N_EMBD = 64
_N_HEAD = 4
_N_HEAD_KV = 2
_N_FF = 128
_N_LAYER = 2
_N_CTX_TRAIN = 2048

# Residual dimension 0 carries a constant, which gives the (bias-free) output layer a bias term;
# that is how non-text tokens are suppressed without touching the sampler.
_CONST = 8.0
_SUPPRESS = 30.0

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
IM_START, IM_END = "<|im_start|>", "<|im_end|>"

# ChatML, tolerant of the content shapes the OpenAI API allows (string, list of parts, null), so
# the gateway may forward multi-part or tool-call messages without breaking the upstream.
# A final assistant message is left open, to be continued: what llama.cpp's own server
# (llama-server) does by default ("assistant prefill"), while llama-cpp-python's server renders
# whatever template the model carries, and ChatML alone would close the turn and start anew.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% set prefill = loop.last and message['role'] == 'assistant' %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% elif message['content'] %}"
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}"
    "{% endif %}"
    "{% if not prefill %}{{ '<|im_end|>' + '\\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt and messages[-1]['role'] != 'assistant' %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# Kept as one string: as a literal list it would be formatted to 500 lines.
_WORD_TEXT = (
    "the of and to in is it you that he was for on are with as his they be at one have this "
    "from or had by hot word but what some we can out other were all there when up use your how "
    "said an each she which do their time if will way about many then them write would like so "
    "these her long make thing see him two has look more day could go come did number sound no "
    "most people my over know water than call first who may down side been now find any new work "
    "part take get place made live where after back little only round man year came show every "
    "good me give our under name very through just form sentence great think say help low line "
    "differ turn cause much mean before move right boy old too same tell does set three want air "
    "well also play small end put home read hand port large spell add even land here must big "
    "high such follow act why ask men change went light kind off need house picture try us again "
    "animal point mother world near build self earth father head stand own page should country "
    "found answer school grow study still learn plant cover food sun four between state keep eye "
    "never last let thought city tree cross farm hard start might story saw far sea draw left late "
    "run while press close night real life few north open seem together next white children begin "
    "got walk example ease paper group always music those both mark often letter until mile river "
    "car feet care second book carry took science eat room friend began idea fish mountain stop "
    "once base hear horse cut sure watch color face wood main enough plain girl usual young ready "
    "above ever red list though feel talk bird soon body dog family direct pose leave song measure "
    "door product black short numeral class wind question happen complete ship area half rock "
    "order fire south problem piece told knew pass since top whole king space heard best hour "
    "better true during hundred five remember step early hold west ground interest reach fast verb "
    "sing listen six table travel less morning ten simple several vowel toward war lay against "
    "pattern slow center love person money serve appear road map rain rule govern pull cold notice "
    "voice unit power town fine certain fly fall lead cry dark machine note wait plan figure star "
    "box noun field rest correct able pound done beauty drive stood contain front teach week final "
    "gave green oh quick develop ocean warm free minute strong special mind behind clear tail "
    "produce fact street inch multiply nothing course stay wheel full force blue object decide "
    "surface deep moon island foot system busy test record boat common gold possible plane stead "
    "dry wonder laugh thousand ago ran check game shape equate miss brought heat snow tire bring "
    "yes distant fill east paint language among"
)
_WORDS = _WORD_TEXT.split()


def _vocab() -> tuple[list[str], list[float], list[int]]:
    """SentencePiece-style vocab: specials, ChatML markers, byte fallback, ASCII chars, words."""
    tokens: list[str] = [UNK, BOS, EOS, IM_START, IM_END]
    types: list[int] = [2, 3, 3, 3, 3]  # gguf.TokenType: UNKNOWN, CONTROL x4
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [6] * 256  # BYTE
    # U+2581 is SentencePiece's space marker; llama.cpp turns it back into " " when decoding.
    chars = ["\u2581"] + [chr(c) for c in range(0x21, 0x7F)]
    words = list(dict.fromkeys(f"\u2581{w}" for w in _WORDS))
    tokens += chars + words
    types += [1] * (len(chars) + len(words))  # NORMAL
    # SPM merges prefer higher scores, but no multi-character token is reachable by merging
    # single characters here, so the values only need to be finite.
    scores = [0.0] * (5 + 256) + [-1000.0 - i for i in range(len(chars))]
    scores += [-float(i) for i in range(len(words))]
    return tokens, scores, types


def make_tiny_gguf(path: pathlib.Path, *, seed: int = 0) -> pathlib.Path:
    """Write a tiny random llama GGUF (f16 matrices, f32 norms) to ``path`` and return it."""
    import gguf  # local import: only the test suite needs it

    tokens, scores, types = _vocab()
    n_vocab = len(tokens)
    head_dim = _N_EMBD // _N_HEAD
    rng = np.random.default_rng(seed)

    def normal(shape: tuple[int, int], std: float) -> np.ndarray[Any, np.dtype[np.float32]]:
        return rng.normal(0.0, std, size=shape).astype(np.float32)

    def norm_weight(*, read_const: bool) -> np.ndarray[Any, np.dtype[np.float32]]:
        weight = np.ones(_N_EMBD, dtype=np.float32)
        if not read_const:
            # Blocks must not see the constant dimension, else it would dominate every layer.
            weight[0] = 0.0
        return weight

    # numpy shapes are (out, in); gguf reverses them into ggml's (ne0=in, ne1=out) order.
    tensors: dict[str, np.ndarray[Any, Any]] = {}
    embd = normal((n_vocab, _N_EMBD), 1.0)
    embd[:, 0] = _CONST
    tensors["token_embd.weight"] = embd
    for i in range(_N_LAYER):
        attn_out = normal((_N_EMBD, _N_EMBD), _N_EMBD**-0.5)
        ffn_down = normal((_N_EMBD, _N_FF), _N_FF**-0.5)
        # Blocks never write dimension 0, so it stays exactly _CONST in the residual stream.
        attn_out[0, :] = 0.0
        ffn_down[0, :] = 0.0
        tensors |= {
            f"blk.{i}.attn_norm.weight": norm_weight(read_const=False),
            f"blk.{i}.attn_q.weight": normal((_N_HEAD * head_dim, _N_EMBD), _N_EMBD**-0.5),
            f"blk.{i}.attn_k.weight": normal((_N_HEAD_KV * head_dim, _N_EMBD), _N_EMBD**-0.5),
            f"blk.{i}.attn_v.weight": normal((_N_HEAD_KV * head_dim, _N_EMBD), _N_EMBD**-0.5),
            f"blk.{i}.attn_output.weight": attn_out,
            f"blk.{i}.ffn_norm.weight": norm_weight(read_const=False),
            f"blk.{i}.ffn_gate.weight": normal((_N_FF, _N_EMBD), _N_EMBD**-0.5),
            f"blk.{i}.ffn_up.weight": normal((_N_FF, _N_EMBD), _N_EMBD**-0.5),
            f"blk.{i}.ffn_down.weight": ffn_down,
        }
    tensors["output_norm.weight"] = norm_weight(read_const=True)
    output = normal((n_vocab, _N_EMBD), 1.0)
    output[:, 0] = [0.0 if t == 1 else -_SUPPRESS for t in types]
    tensors["output.weight"] = output

    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(path, arch="llama")
    writer.add_name("polyroute tiny random llama")
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    writer.add_vocab_size(n_vocab)
    writer.add_context_length(_N_CTX_TRAIN)
    writer.add_embedding_length(_N_EMBD)
    writer.add_block_count(_N_LAYER)
    writer.add_feed_forward_length(_N_FF)
    writer.add_head_count(_N_HEAD)
    writer.add_head_count_kv(_N_HEAD_KV)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(10000.0)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_unk_token_id(tokens.index(UNK))
    writer.add_bos_token_id(tokens.index(BOS))
    writer.add_eos_token_id(tokens.index(EOS))
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_chat_template(CHAT_TEMPLATE)
    for name, array in tensors.items():
        # ggml wants 1-D tensors (norms) in f32; matrices in f16 halve the file size.
        writer.add_tensor(name, array if array.ndim == 1 else array.astype(np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


class LlamaServerError(RuntimeError):
    """The llama.cpp server could not be started (or its dependencies are missing)."""


# What `pip install 'llama-cpp-python[server]'` provides; checked up front so a missing extra
# fails loudly with an install hint instead of as a child-process traceback.
_SERVER_MODULES = (
    "llama_cpp",
    "uvicorn",
    "fastapi",
    "sse_starlette",
    "starlette_context",
    "pydantic_settings",
)


def require_llama_cpp_server() -> None:
    """Raise ``LlamaServerError`` unless ``python -m llama_cpp.server`` can run."""
    missing = [m for m in _SERVER_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise LlamaServerError(
            f"llama.cpp server dependencies missing ({', '.join(missing)}); "
            "install them with: pip install 'llama-cpp-python[server]'"
        )


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class LlamaServer:
    """``python -m llama_cpp.server`` on a loopback port, as a context manager.

    ``base_url`` is the OpenAI-style base (``http://127.0.0.1:PORT/v1``) and ``model`` the id
    the server reports in ``/v1/models`` (the alias).  Server output goes to ``log_path`` (next
    to the model by default) and its tail is included in start-up errors.
    """

    def __init__(
        self,
        model_path: pathlib.Path,
        *,
        alias: str = DEFAULT_ALIAS,
        n_ctx: int = 512,
        host: str = "127.0.0.1",
        startup_timeout: float = 60.0,
        extra_args: Sequence[str] = (),
        log_path: pathlib.Path | None = None,
    ) -> None:
        self.model_path = model_path
        self.alias = alias
        self.n_ctx = n_ctx
        self.host = host
        self.startup_timeout = startup_timeout
        self.extra_args = tuple(extra_args)
        self.log_path = log_path or model_path.with_suffix(".server.log")
        self.port = 0
        self.model = ""
        self.startup_seconds = 0.0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(self.model_path),
            "--model_alias", self.alias,
            "--host", self.host,
            "--port", str(self.port),
            "--n_ctx", str(self.n_ctx),
            # One thread: the model is tiny, and the CI box has 2 cores shared with the gateway.
            "--n_threads", "1",
            "--n_threads_batch", "1",
            "--n_gpu_layers", "0",
            "--seed", "0",
            # Otherwise llama.cpp dumps model metadata and per-request timings to stderr.
            "--verbose", "false",
            # By default a new request cuts any in-flight stream short (a bare [DONE] with no
            # finish_reason); gateway tests issue concurrent requests, so queue them instead.
            "--interrupt_requests", "false",
            *self.extra_args,
        ]  # fmt: skip

    def start(self) -> Self:
        if self._proc is not None:
            raise LlamaServerError("server already started")
        require_llama_cpp_server()
        if not self.model_path.is_file():
            raise LlamaServerError(f"model file not found: {self.model_path}")
        started = time.monotonic()
        # The free-port probe can race with other processes; a bind failure is worth a retry.
        for attempt in range(3):
            self.port = _free_port(self.host)
            try:
                self._spawn_and_wait()
                break
            except LlamaServerError:
                log = self._log_tail()
                self.close()
                if attempt == 2 or "address already in use" not in log.lower():
                    raise
        self.startup_seconds = time.monotonic() - started
        return self

    def _spawn_and_wait(self) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with self.log_path.open("wb") as log:
            self._proc = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=env,
            )  # fmt: skip
        atexit.register(self.close)  # never leak a server if the test run dies without teardown
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self._proc.poll() is not None:
                raise LlamaServerError(
                    f"llama.cpp server exited with {self._proc.returncode} during start-up:\n"
                    + self._log_tail()
                )
            models = self._get_models()
            if models is not None:
                self.model = models[0] if models else self.alias
                return
            if time.monotonic() > deadline:
                raise LlamaServerError(
                    f"llama.cpp server not ready after {self.startup_timeout:.0f}s:\n"
                    + self._log_tail()
                )
            time.sleep(0.1)

    def _get_models(self) -> list[str] | None:
        try:
            with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as resp:
                body = json.load(resp)
        except (OSError, urllib.error.URLError, ValueError):
            return None
        return [str(entry["id"]) for entry in body.get("data", [])]

    def _log_tail(self, n_bytes: int = 4000) -> str:
        try:
            return self.log_path.read_bytes()[-n_bytes:].decode("utf-8", "replace")
        except OSError:
            return "(no server log)"

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        atexit.unregister(self.close)
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@contextlib.contextmanager
def tiny_llama_server(workdir: pathlib.Path, **kwargs: Any) -> Iterator[LlamaServer]:
    """Generate the tiny model in ``workdir`` and serve it for the duration of the block."""
    model = make_tiny_gguf(workdir / "tiny-llama.gguf")
    with LlamaServer(model, **kwargs) as server:
        yield server


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """Session-wide llama.cpp upstream; import this name into a conftest.py to share it."""
    with tiny_llama_server(tmp_path_factory.mktemp("llama")) as server:
        yield server
