"""Processes started together on a fresh home (`loraplex up`: registry and gateway) must end up
with one signing key; a gateway holding another key answers every token 401 "No key for kid"."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from threading import Barrier

import pytest

from registry.auth.keys import load_signing_keys
from registry.settings import Settings


def kid(settings: Settings, barrier: Barrier | None = None) -> str:
    if barrier is not None:
        barrier.wait()
    return str(load_signing_keys(settings).jwks()["keys"][0]["kid"])


@pytest.mark.parametrize("attempt", range(3))
def test_concurrent_first_loads_agree_on_one_key(tmp_path: Path, attempt: int) -> None:
    settings = Settings(home=tmp_path / "home")
    barrier = Barrier(4)
    with ThreadPoolExecutor(4) as pool:
        kids = set(pool.map(lambda _: kid(settings, barrier), range(4)))
    assert kids == {kid(settings)}  # one key, and the one on disk
    leftovers = [p.name for p in settings.resolved_jwt_key_file.parent.iterdir()]
    assert not [n for n in leftovers if n.endswith(".tmp")], leftovers
