from __future__ import annotations

import pytest

from tests.registry.audit.calls import restart_seq


@pytest.fixture(autouse=True)
def _seq_from_one(request: pytest.FixtureRequest) -> None:
    if "stack" in request.fixturenames:
        restart_seq(request.getfixturevalue("stack"))
