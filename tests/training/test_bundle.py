"""The model bundle's files: what a saved version keeps of its encoder."""

from __future__ import annotations

import json

import numpy as np

from training.bundle import ModelBundle
from training.head import LinearHead
from training.thresholds import RoutingThresholds


def _bundle(backend: str) -> ModelBundle:
    return ModelBundle(
        head=LinearHead(
            labels=["billing", "identity_access"],
            weights=np.zeros((2, 4), dtype=np.float32),
            bias=np.zeros(2, dtype=np.float32),
        ),
        temperature=1.0,
        thresholds=RoutingThresholds(
            target_precision=0.95, global_threshold=0.5, queues={}
        ),
        encoder="all-MiniLM-L6-v2",
        encoder_identity=f"all-MiniLM-L6-v2#abc+{backend}",
        index_embeddings=np.eye(2, 4, dtype=np.float32),
        index_labels=["billing", "identity_access"],
        index_ids=["t1", "t2"],
        encoder_backend=backend,
    )


def test_the_encoder_backend_survives_save_and_load(tmp_path):
    folder = _bundle("onnx-int8").save(tmp_path / "bundle")

    assert ModelBundle.load(folder).encoder_backend == "onnx-int8"


def test_a_bundle_saved_before_backends_existed_runs_on_torch(tmp_path):
    folder = _bundle("onnx").save(tmp_path / "bundle")
    manifest = json.loads((folder / "bundle.json").read_text())
    del manifest["encoder_backend"]
    (folder / "bundle.json").write_text(json.dumps(manifest))

    assert ModelBundle.load(folder).encoder_backend == "torch"
