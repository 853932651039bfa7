"""The MLflow pyfunc flavour of a Switchboard model version.

`mlflow.pyfunc.load_model("models:/switchboard-router@champion")` gives a
model whose `predict` takes a DataFrame with a `text` column (or `subject`
and `body`) and returns the proposed queue, its calibrated confidence and
whether the version would auto-route it.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
from mlflow.pyfunc import PythonModel

OUTPUT_COLUMNS = [
    "queue",
    "confidence",
    "margin",
    "similarity",
    "may_route",
    "top_queues",
]


class RouterModel(PythonModel):
    """Encoder + head + thresholds, loaded from the logged bundle."""

    def load_context(self, context: Any) -> None:
        from features.encoder import Encoder
        from training.bundle import ModelBundle

        self.bundle = ModelBundle.load(context.artifacts["bundle"])
        self.encoder = Encoder(self.bundle.encoder, backend=self.bundle.encoder_backend)

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict | None = None
    ) -> pd.DataFrame:
        from features.text import build_texts

        if "text" in model_input.columns:
            texts = model_input["text"].fillna("").astype(str).tolist()
        else:
            texts = build_texts(
                model_input["subject"].fillna("").astype(str).tolist(),
                model_input["body"].fillna("").astype(str).tolist(),
            )
        predictions = self.bundle.predict(self.encoder.encode(texts))
        thresholds = self.bundle.thresholds
        rows = []
        for i, queue in enumerate(predictions.queues):
            confidence = float(predictions.confidence[i])
            similarity = float(predictions.similarity[i])
            rows.append(
                {
                    "queue": queue,
                    "confidence": confidence,
                    "margin": float(predictions.margin[i]),
                    "similarity": similarity,
                    "may_route": thresholds.may_route(queue, confidence, similarity),
                    "top_queues": json.dumps(predictions.top_queues(i)),
                }
            )
        return pd.DataFrame(rows, columns=OUTPUT_COLUMNS)
