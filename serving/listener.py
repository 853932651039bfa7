"""The ingress replica's own HTTP listener on the service port.

On one machine the Ray Serve proxy is a hop of its own: every request is
parsed in the proxy actor and sent on to the ingress replica, which on two
cores costs more than deciding the ticket. `switchboard serve` therefore
starts the proxy-less way: the ingress replica runs uvicorn over its FastAPI
app on the service port, and calls the router through deployment handles as
before. `serve deploy` of the config file keeps Ray's proxy (no `listen`).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import time
from collections.abc import Iterator
from typing import Any

import uvicorn

log = logging.getLogger(__name__)


class ListenerError(RuntimeError):
    """The service port could not be bound."""


class HttpListener:
    """uvicorn serving one ASGI app on the replica's event loop."""

    def __init__(self, server: Any, task: asyncio.Task, sock: socket.socket) -> None:
        self.server = server
        self.task = task
        self.socket = sock

    @classmethod
    async def start(
        cls,
        app: Any,
        host: str,
        port: int,
        *,
        bind_timeout_s: float = 30.0,
    ) -> HttpListener:
        """Bind `host:port` and serve `app` there; return once it listens.

        A port still held by the replica this one replaces is retried until
        `bind_timeout_s`, so a redeploy does not fail on its predecessor.

        Raises:
            ListenerError: the port stayed taken, or uvicorn did not start.
        """
        sock = await _bind(host, port, bind_timeout_s)
        config = uvicorn.Config(
            app,
            # The Serve replica already ran the app's lifespan.
            lifespan="off",
            log_level="warning",
            access_log=False,
            timeout_keep_alive=90,
            # When the replica stops, requests in flight get this long.
            timeout_graceful_shutdown=5,
        )
        server = _ReplicaServer(config)
        task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
        while not server.started:
            if task.done():
                sock.close()
                error = task.exception()
                raise ListenerError(f"HTTP listener on {host}:{port} failed: {error}")
            await asyncio.sleep(0.01)
        log.info("ingress listening", extra={"host": host, "port": port})
        return cls(server, task, sock)

    async def stop(self) -> None:
        """Stop accepting, finish requests in flight, close the port."""
        self.server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.task, timeout=10)
        self.socket.close()

    def close_now(self) -> None:
        """From a finaliser: no loop to wait on, just release the port."""
        self.server.should_exit = True
        self.socket.close()


class _ReplicaServer(uvicorn.Server):
    """uvicorn that leaves signals alone: they are the Ray worker's."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def _bind(host: str, port: int, timeout_s: float) -> socket.socket:
    deadline = time.monotonic() + timeout_s
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    while True:
        sock = socket.socket(family, socket.SOCK_STREAM)
        # REUSEADDR only: never share the port with a live process.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            sock.listen(2048)
            sock.setblocking(False)
            return sock
        except OSError as err:
            sock.close()
            if err.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                raise ListenerError(
                    f"cannot listen on {host}:{port}: {err.strerror}"
                ) from err
        await asyncio.sleep(0.25)
