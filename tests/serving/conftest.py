from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.serving.stack import ServingStack, make_peft_adapter
from tests.workers.platform import tiny_base_model


@dataclass
class Adapters:
    """Local folders of the adapters uploaded at start: acme orders v1, v2; globex support v1."""

    orders_v1: Path
    orders_v2: Path
    support_v1: Path
    spare: Path  # not uploaded at start


@pytest.fixture(scope="session")
def tiny_base() -> Path:
    return tiny_base_model()


@pytest.fixture(scope="session")
def adapters(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> Adapters:
    root = tmp_path_factory.mktemp("adapters")
    return Adapters(
        *(make_peft_adapter(tiny_base, root / f"a{seed}", seed=seed) for seed in (1, 2, 3, 4))
    )


@pytest.fixture(scope="session")
def serving(
    pg_admin_url: str, s3_endpoint: str, tiny_base: Path, adapters: Adapters
) -> Iterator[ServingStack]:
    stack = ServingStack(
        pg_admin_url,
        s3_endpoint,
        tiny_base,
        extra_env={
            "LORAPLEX_TRAFFIC_SAMPLE_RATE": "1.0",
            "LORAPLEX_GATEWAY_AUTH_CACHE_SECONDS": "1",
            "LORAPLEX_USAGE_FLUSH_SECONDS": "0.2",
            # three of the test adapters fit: the fourth evicts the least recently used
            "LORAPLEX_RESOLVER_CACHE_BYTES": str(
                3 * (adapters.orders_v1 / "adapter_model.safetensors").stat().st_size + 100_000
            ),
        },
    )
    try:
        stack.create_adapter("acme", "orders")
        stack.create_adapter("globex", "support")
        stack.upload("acme", "orders", adapters.orders_v1)
        stack.upload("acme", "orders", adapters.orders_v2)
        stack.upload("globex", "support", adapters.support_v1)
        stack.promote("acme", "orders", 1)
        stack.promote("globex", "support", 1)
        yield stack
    finally:
        stack.close()
