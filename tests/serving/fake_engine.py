"""A fake engine (an ASGI app answering as vLLM's API would) on a real loopback socket, for
gateway tests that need an answer at the HTTP boundary: the gateway's forward speaks HTTP/1.1
over TCP (serving/gateway/upstream.py), so the fake is served by uvicorn in a thread.

    fake = attach(gateway_app, engine_app)   # the gateway's engines now point at it
    ...
    stop_all()                               # in the fixture's teardown
"""

from __future__ import annotations

import asyncio
import threading
import time

import uvicorn
from fastapi import FastAPI

from serving.gateway.proxy import EngineClient
from tests.services import free_port

_RUNNING: list[FakeEngine] = []


class FakeEngine:
    def __init__(self, app: FastAPI) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", loop="asyncio"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve()), daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the fake engine did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def attach(gateway: FastAPI, engine: FastAPI) -> FakeEngine:
    """Serve `engine` and point every engine of `gateway`'s pool at it."""
    fake = FakeEngine(engine)
    _RUNNING.append(fake)
    pool = gateway.state.engine_client
    for known in pool.engines.values():
        known.client = EngineClient(fake.url, pool.api_key, pool.timeout)
    return fake


def stop_all() -> None:
    while _RUNNING:
        _RUNNING.pop().stop()
