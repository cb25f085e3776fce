"""The ONNX embedding backend: export, parity with torch, and a torch-free runtime.

One export per session (module fixture, ~10-20 s: torch trace, fusion, int8 quantization).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rag.embed import SentenceEncoder
from rag.onnx_embed import (
    FP32_FILE,
    INT8_FILE,
    OnnxEncoder,
    default_model_path,
    find_export,
)

ROOT = Path(__file__).resolve().parents[2]

TEXTS = [
    "KubePodCrashLooping: shop/cart restarted 6 times, last state OOMKilled exit code 137\n"
    "java.lang.OutOfMemoryError: Java heap space at com.shop.cart.CacheLoader.load",
    "checkout pods stuck in ImagePullBackOff: Failed to pull image "
    '"registry.example.com/checkout:v1.42.0": manifest unknown',
    "payments 5xx ratio above 5%: dial tcp 10.0.3.12:5432: connect: connection refused",
    "x509: certificate has expired or is not yet valid for api.partner.example.com",
    "0/5 nodes are available: 3 Insufficient memory, 2 node(s) had untolerated taint",
    "sqlite3.OperationalError: database is locked (orders worker, 12 retries)",
]


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled model's files, linked into a directory of its own: an install-time export
    in the real ``<model_dir>/onnx/`` cannot stand in for the one these tests make."""
    copy = tmp_path_factory.mktemp("model")
    for entry in default_model_path().iterdir():
        if entry.name != "onnx":
            (copy / entry.name).symlink_to(entry)
    return copy


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory: pytest.TempPathFactory, model: Path) -> Path:
    """The one export of the session, made the way the bot makes it: on first use, by
    ``export_onnx`` in a child process (``python -m rag.onnx_embed export``)."""
    out = tmp_path_factory.mktemp("onnx")
    assert find_export(model, cache_dir=out) is None
    encoder = OnnxEncoder(model, cache_dir=out)
    encoder.load()
    assert encoder.onnx_path == out / INT8_FILE
    return out


@pytest.fixture(scope="module")
def int8(model: Path, onnx_dir: Path) -> OnnxEncoder:
    return OnnxEncoder(model, cache_dir=onnx_dir)


@pytest.fixture(scope="module")
def fp32(model: Path, onnx_dir: Path) -> OnnxEncoder:
    return OnnxEncoder(model, cache_dir=onnx_dir, quantized=False)


@pytest.fixture(scope="module")
def torch_model() -> Any:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(default_model_path()), device="cpu")


def _torch(model: Any, texts: list[str]) -> np.ndarray:
    return np.asarray(model.encode(texts, normalize_embeddings=True, show_progress_bar=False))


def test_export_writes_both_models_with_fingerprints(onnx_dir: Path) -> None:
    for name in (FP32_FILE, INT8_FILE):
        meta = json.loads((onnx_dir / f"{name}.meta.json").read_text())
        assert meta["quantized"] is (name == INT8_FILE)
        assert meta["source"] == SentenceEncoder().model_id
    # int8 weights: a fraction of the fp32 file (the embedding table dominates both)
    assert (onnx_dir / INT8_FILE).stat().st_size < (onnx_dir / FP32_FILE).stat().st_size / 2
    assert not [p for p in onnx_dir.iterdir() if p.name.startswith(".export-")]


def test_vectors_are_unit_float32_rows(int8: OnnxEncoder) -> None:
    vectors = int8.encode(TEXTS)
    assert vectors.shape == (len(TEXTS), 384) == (len(TEXTS), int8.dim)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # different incidents do not collapse onto one vector
    assert (vectors @ vectors.T)[np.triu_indices(len(TEXTS), 1)].max() < 0.9


def test_no_texts_gives_empty_matrix_without_loading(model: Path, onnx_dir: Path) -> None:
    encoder = OnnxEncoder(model, cache_dir=onnx_dir)
    empty = encoder.encode([])
    assert empty.shape == (0, 384) and empty.dtype == np.float32
    assert encoder.onnx_path is None  # nothing was loaded for nothing


def test_int8_matches_torch(int8: OnnxEncoder, torch_model: Any) -> None:
    cosines = (int8.encode(TEXTS) * _torch(torch_model, TEXTS)).sum(axis=1)
    assert cosines.min() >= 0.99, cosines


def test_fp32_matches_torch(fp32: OnnxEncoder, torch_model: Any) -> None:
    cosines = (fp32.encode(TEXTS) * _torch(torch_model, TEXTS)).sum(axis=1)
    assert cosines.min() >= 0.9999, cosines


def test_padding_in_a_batch_does_not_change_vectors(fp32: OnnxEncoder) -> None:
    # TEXTS differ in length, so the batch is padded; each row must equal its solo encoding.
    batch = fp32.encode(TEXTS)
    solo = np.vstack([fp32.encode([text]) for text in TEXTS])
    assert (batch * solo).sum(axis=1).min() >= 0.99999


def test_batches_are_length_sorted_and_capped_in_padded_tokens() -> None:
    encoder = OnnxEncoder(batch_size=3, max_batch_tokens=256)
    assert list(encoder._batches([10, 200, 5, 150, 7, 8])) == [[2, 4, 5], [0], [3], [1]]


def test_batch_limits_do_not_change_vectors(model: Path, onnx_dir: Path, fp32: OnnxEncoder) -> None:
    tight = OnnxEncoder(
        model, cache_dir=onnx_dir, quantized=False, batch_size=2, max_batch_tokens=48
    )
    assert (tight.encode(TEXTS) * fp32.encode(TEXTS)).sum(axis=1).min() >= 0.99999


def test_long_texts_are_truncated_at_256_tokens(fp32: OnnxEncoder, torch_model: Any) -> None:
    head = " ".join(f"pod cart-{i} OOMKilled" for i in range(120))  # > 256 tokens
    a, b = head + " then the disk filled up", head + " certificate expired at midnight"
    vectors = fp32.encode([a, b])
    assert float(vectors[0] @ vectors[1]) >= 0.99999  # the tails were cut off
    assert float((vectors * _torch(torch_model, [a, b])).sum(axis=1).min()) >= 0.9999


def test_model_id_never_equals_the_torch_backends() -> None:
    torch_id = SentenceEncoder().model_id
    ids = {OnnxEncoder().model_id, OnnxEncoder(quantized=False).model_id}
    assert ids == {f"{torch_id}+onnx-int8", f"{torch_id}+onnx-fp32"}
    assert OnnxEncoder(base_id="minilm").model_id == "minilm+onnx-int8"


def test_concurrent_first_use_loads_once_and_agrees(model: Path, onnx_dir: Path) -> None:
    encoder = OnnxEncoder(model, cache_dir=onnx_dir)
    results: list[np.ndarray] = []
    sessions: set[int] = set()

    def work() -> None:
        results.append(encoder.encode(TEXTS[:3]))
        sessions.add(id(encoder._session))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4 and len(sessions) == 1
    for vectors in results[1:]:
        np.testing.assert_allclose(vectors, results[0], atol=1e-6)


def test_export_for_other_weights_is_not_used(model: Path, onnx_dir: Path, tmp_path: Path) -> None:
    (tmp_path / INT8_FILE).symlink_to(onnx_dir / INT8_FILE)
    meta = json.loads((onnx_dir / f"{INT8_FILE}.meta.json").read_text())
    (tmp_path / f"{INT8_FILE}.meta.json").write_text(json.dumps({**meta, "source": "x@0"}))
    assert find_export(model, cache_dir=tmp_path) is None
    assert find_export(model, cache_dir=onnx_dir) == onnx_dir / INT8_FILE


@pytest.mark.parametrize(
    ("modules", "pooling", "error"),
    [
        (["Transformer", "Pooling", "Dense", "Normalize"], "mean", "Dense"),
        (["Transformer", "Pooling", "Normalize"], "cls", "not mean pooling"),
    ],
)
def test_pipelines_it_cannot_reproduce_are_refused(
    tmp_path: Path, modules: list[str], pooling: str, error: str
) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 8, "num_attention_heads": 2}))
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    entries = [
        {"idx": i, "name": str(i), "path": f"{i}_{kind}", "type": f"sentence_transformers.{kind}"}
        for i, kind in enumerate(modules)
    ]
    (tmp_path / "modules.json").write_text(json.dumps(entries))
    (tmp_path / "1_Pooling").mkdir()
    modes = {"pooling_mode_mean_tokens": pooling == "mean", "pooling_mode_cls_token": True}
    if pooling == "mean":
        modes["pooling_mode_cls_token"] = False
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps(modes))
    with pytest.raises(ValueError, match=error):
        OnnxEncoder(tmp_path)


def test_runtime_never_imports_torch(model: Path, onnx_dir: Path) -> None:
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from rag.onnx_embed import OnnxEncoder\n"
        f"encoder = OnnxEncoder({str(model)!r}, cache_dir=Path({str(onnx_dir)!r}))\n"
        "vectors = encoder.encode(['pod OOMKilled'])\n"
        "heavy = [m for m in ('torch', 'transformers', 'sentence_transformers', 'onnx')"
        " if m in sys.modules]\n"
        "print(vectors.shape, heavy)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(1, 384) []"
