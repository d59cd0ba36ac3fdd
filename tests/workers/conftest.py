from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_env
from tests.workers.platform import Platform, tiny_base_model


@pytest.fixture(scope="session")
def tiny_base() -> Path:
    return tiny_base_model()


@pytest.fixture(scope="module")
def platform(pg_admin_url: str, s3_endpoint: str, tiny_base: Path) -> Iterator[Platform]:
    redis_url = require_env("LORAPLEX_TEST_REDIS_URL")
    live = Platform(pg_admin_url, s3_endpoint, redis_url, tiny_base)
    try:
        yield live
    finally:
        live.close()
