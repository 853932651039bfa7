"""The ingress replica's own HTTP listener, on real sockets."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest
from fastapi import FastAPI

from serving.listener import HttpListener, ListenerError


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        return {"pong": "yes"}

    return app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _hold(port: int) -> socket.socket:
    holder = socket.socket()
    holder.bind(("127.0.0.1", port))
    holder.listen(1)
    return holder


def test_it_serves_the_app_and_frees_the_port_when_stopped():
    port = free_port()

    async def run() -> int:
        listener = await HttpListener.start(_app(), "127.0.0.1", port)
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{port}/ping")
        await listener.stop()
        return response.status_code

    assert asyncio.run(run()) == 200
    _hold(port).close()  # bindable again: nothing is left listening


def test_a_port_that_stays_taken_fails_naming_host_and_port():
    port = free_port()
    holder = _hold(port)
    try:
        with pytest.raises(ListenerError, match=f"127.0.0.1:{port}"):
            asyncio.run(
                HttpListener.start(_app(), "127.0.0.1", port, bind_timeout_s=0.5)
            )
    finally:
        holder.close()


def test_a_port_freed_while_waiting_is_taken_over():
    """A redeploy's new replica waits for the replica it replaces to let go."""
    port = free_port()
    holder = _hold(port)

    async def run() -> int:
        loop = asyncio.get_running_loop()
        loop.call_later(0.5, holder.close)
        listener = await HttpListener.start(
            _app(), "127.0.0.1", port, bind_timeout_s=10
        )
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{port}/ping")
        await listener.stop()
        return response.status_code

    assert asyncio.run(run()) == 200
