"""rag.embed: hash encoder, model identity without torch, backends, async, the real model."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import threading
import types
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from rag import embed
from rag.embed import Encoder, HashEncoder, SentenceEncoder, encode_async, make_encoder

ROOT = Path(__file__).resolve().parents[2]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b)


# ------------------------------------------------------------------------- hash encoder


def test_hash_encoder_shape_norm_and_empty_input() -> None:
    encoder = HashEncoder(64)
    assert encoder.model_id == "hash-64" and encoder.dim == 64
    assert isinstance(encoder, Encoder)
    vectors = encoder.encode(["pod OOMKilled", "", "!!!", "a a a"])
    assert vectors.dtype == np.float32 and vectors.shape == (4, 64)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    assert np.array_equal(vectors[1], vectors[2])  # no words: one fixed vector
    assert encoder.encode([]).shape == (0, 64)
    assert encoder.encode([]).dtype == np.float32


def test_hash_encoder_is_deterministic_across_processes() -> None:
    texts = ["Memory leak in backend", "TLS certificate expired for api.shop"]
    here = HashEncoder().encode(texts)
    code = (
        "import sys, json; from rag.embed import HashEncoder; "
        f"print(json.dumps(HashEncoder().encode({texts!r}).tolist()))"
    )
    other = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert np.array_equal(np.array(json.loads(other.stdout), dtype=np.float32), here)


def test_hash_encoder_similar_texts_are_closer() -> None:
    encoder = HashEncoder()
    oom, oom2, tls = encoder.encode(
        [
            "pod cart OOMKilled: memory limit 256Mi exceeded",
            "cart container OOMKilled, memory limit exceeded again",
            "TLS certificate expired for ingress api.shop",
        ]
    )
    assert cosine(oom, oom2) > 0.3
    assert cosine(oom, oom2) > cosine(oom, tls) + 0.2
    assert encoder.encode(["Pod OOMKilled"])[0] == pytest.approx(
        encoder.encode(["pod oomkilled"])[0]
    )


def test_hash_encoder_rejects_bad_dimension() -> None:
    with pytest.raises(ValueError, match="positive"):
        HashEncoder(0)


# ------------------------------------------------------------------------ model identity


def fake_model(root: Path, *, dim: int = 123, weights: bytes = b"weights-v1") -> Path:
    """A model directory with config files but no usable weights (never loaded here)."""
    (root / "1_Pooling").mkdir(parents=True)
    (root / "modules.json").write_text(
        json.dumps(
            [
                {
                    "idx": 0,
                    "name": "0",
                    "path": "",
                    "type": "sentence_transformers.models.Transformer",
                },
                {
                    "idx": 1,
                    "name": "1",
                    "path": "1_Pooling",
                    "type": "sentence_transformers.models.Pooling",
                },
            ]
        )
    )
    (root / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": dim}))
    (root / "config.json").write_text(json.dumps({"hidden_size": dim}))
    (root / "model.safetensors").write_bytes(weights)
    return root


def test_model_identity_from_files(tmp_path: Path) -> None:
    model = fake_model(tmp_path / "my-minilm", weights=b"abc")
    encoder = SentenceEncoder(model)
    digest = hashlib.sha256(b"abc").hexdigest()[:12]
    assert encoder.model_id == f"my-minilm@{digest}"
    assert encoder.dim == 123 and not encoder.loaded()
    (model / "model.safetensors").write_bytes(b"abcd")  # fine-tuned: another id
    assert (
        SentenceEncoder(model).model_id == f"my-minilm@{hashlib.sha256(b'abcd').hexdigest()[:12]}"
    )


def test_model_identity_uses_card_title_and_dense_dimension(tmp_path: Path) -> None:
    model = fake_model(tmp_path / "model", dim=384)
    (model / "README.md").write_text(
        "---\ntags: [x]\n---\n\n# tiny-encoder\n\n'acme/tiny-encoder'\n"
    )
    modules = json.loads((model / "modules.json").read_text())
    modules.append(
        {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}
    )
    (model / "modules.json").write_text(json.dumps(modules))
    (model / "2_Dense").mkdir()
    (model / "2_Dense" / "config.json").write_text(json.dumps({"out_features": 96}))
    model_id, dim = embed.model_identity(model)
    assert model_id.startswith("acme/tiny-encoder@") and dim == 96


def test_hidden_size_fallback(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 512}))
    assert SentenceEncoder(tmp_path).dim == 512
    assert SentenceEncoder(tmp_path).model_id == f"{tmp_path.name}@unhashed"


@pytest.mark.parametrize("kind", ["missing", "empty dir", "a file"])
def test_bad_model_path_fails_at_construction(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "model"
    if kind == "empty dir":
        path.mkdir()
    elif kind == "a file":
        path.write_text("not a model")
    with pytest.raises(ValueError, match=f"embedding model not found at {path}: "):
        SentenceEncoder(path)
    with pytest.raises(ValueError, match="embedding model not found"):
        make_encoder(str(path), "torch")


def test_unreadable_config_is_a_value_error(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{broken")
    with pytest.raises(ValueError, match="unreadable config"):
        SentenceEncoder(tmp_path)


def test_default_encoder_does_not_import_torch() -> None:
    """model_id and dim of the bundled model come from its files: CLI start-up stays fast."""
    code = (
        "import sys; from rag.embed import make_encoder; e = make_encoder(); "
        "print(e.model_id, e.dim, e.loaded(), 'torch' in sys.modules, "
        "'sentence_transformers' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    model_id, dim, loaded, torch_imported, st_imported = out.stdout.split()
    name, digest = model_id.split("@")
    assert name == "sentence-transformers/all-MiniLM-L6-v2"
    assert len(digest) == 12 and int(digest, 16) >= 0
    assert (dim, loaded, torch_imported, st_imported) == ("384", "False", "False", "False")


# --------------------------------------------------------------------------- backends


def test_make_encoder_hash_choices() -> None:
    assert make_encoder(backend="hash").model_id == "hash-256"
    assert make_encoder("hash-64", "hash").dim == 64
    assert make_encoder("32", "hash").model_id == "hash-32"
    with pytest.raises(ValueError, match="hash-256"):
        make_encoder("minilm", "hash")
    with pytest.raises(ValueError, match="unknown embedding backend 'gpu'"):
        make_encoder(backend="gpu")


def test_make_encoder_onnx_delegates(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    made: list[object] = []

    class FakeOnnx(HashEncoder):
        def __init__(self, model_dir: object) -> None:
            super().__init__(16)
            made.append(model_dir)

    module = types.ModuleType("rag.onnx_embed")
    module.OnnxEncoder = FakeOnnx  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "rag.onnx_embed", module)
    assert isinstance(make_encoder(backend="onnx"), FakeOnnx)
    make_encoder(str(tmp_path), "onnx")
    assert made == [None, str(tmp_path)]


def test_make_encoder_onnx_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "rag.onnx_embed", None)  # makes the import fail
    with pytest.raises(ValueError, match="ONNX embedding backend unavailable"):
        make_encoder(backend="onnx")


# ------------------------------------------------------------------------------ async


class GatedEncoder(HashEncoder):
    """encode() announces itself to the loop, then blocks until the loop releases it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(8)
        self.loop = loop
        self.started = asyncio.Event()
        self.gate = threading.Event()
        self.thread: int | None = None

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.thread = threading.get_ident()
        self.loop.call_soon_threadsafe(self.started.set)
        if not self.gate.wait(timeout=10):
            raise TimeoutError("the event loop was blocked")
        return super().encode(texts)


async def test_encode_async_runs_off_the_event_loop() -> None:
    encoder = GatedEncoder(asyncio.get_running_loop())
    task = asyncio.create_task(encode_async(encoder, ("a", "b")))
    # Only reachable if the loop keeps running while encode() is blocked.
    await asyncio.wait_for(encoder.started.wait(), timeout=10)
    encoder.gate.set()
    vectors = await task
    assert vectors.shape == (2, 8)
    assert encoder.thread != threading.get_ident()
    assert np.array_equal(vectors, HashEncoder(8).encode(["a", "b"]))


# --------------------------------------------------------------------- the real model


async def test_real_sentence_encoder() -> None:
    """The one test that loads all-MiniLM-L6-v2 (~5-8 s): dimension, norms, meaning."""
    encoder = SentenceEncoder()
    assert encoder.dim == 384 and not encoder.loaded()
    assert encoder.encode([]).shape == (0, 384) and not encoder.loaded()
    texts = ["pod OOMKilled memory limit", "container killed out of memory"]
    # Two concurrent first calls: the lock makes them share one load.
    first, second = await asyncio.gather(
        encode_async(encoder, texts), encode_async(encoder, ["TLS certificate expired"])
    )
    assert encoder.loaded()
    assert first.dtype == np.float32 and first.shape == (2, 384) and second.shape == (1, 384)
    assert np.allclose(np.linalg.norm(np.vstack([first, second]), axis=1), 1.0, atol=1e-5)
    oom, killed, tls = first[0], first[1], second[0]
    assert cosine(oom, killed) > cosine(oom, tls) + 0.2
    again = encoder.encode(texts)
    assert np.allclose(again, first, atol=1e-5)
