"""The baseline a user would write first: FastAPI + uvicorn, one encode per request.

Run by `http_throughput.py` as `uvicorn benchmarks.plain_service:app`.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from fastapi import FastAPI
from pydantic import BaseModel

from features.encoder import Encoder

app = FastAPI()
encoder = Encoder()
encoder.encode(["warm up"])


class Request(BaseModel):
    id: str
    subject: str = ""
    body: str = ""


@app.post("/route")
def route(request: Request) -> dict[str, object]:
    vector = encoder.encode([f"{request.subject}\n{request.body}"])[0]
    return {"ticket_id": request.id, "norm": float((vector**2).sum())}
