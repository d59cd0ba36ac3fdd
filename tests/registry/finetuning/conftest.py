"""The OpenAI-compatible routes in-process, on the test's registry state (its rolled-back
PostgreSQL transaction, its S3 prefix, its recording task queue), driven by the official client.

`OpenAI(http_client=TestClient(app))`: the official client's requests go to the routes without a
socket. The real gateway process serves the same router (tests/serving/test_openai_finetuning.py).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from openai import OpenAI

from registry.finetuning import errors
from registry.finetuning.endpoints import router
from tests.conftest import Caller, World


@pytest.fixture
def openai_app(world: World) -> FastAPI:
    app = FastAPI()
    app.state = world.stack.app.state  # sessionmaker, verifier, store, tasks, settings
    app.include_router(router)
    errors.install(app)
    return app


@pytest.fixture
def openai_for(openai_app: FastAPI) -> Callable[[Caller], OpenAI]:
    """`openai_for(caller)`: the official client with `caller`'s token, no retries."""

    def make(caller: Caller) -> OpenAI:
        token = caller.headers["Authorization"].removeprefix("Bearer ")
        http = TestClient(openai_app, base_url="http://testserver")
        return OpenAI(
            api_key=token, base_url="http://testserver/v1", http_client=http, max_retries=0
        )

    return make
