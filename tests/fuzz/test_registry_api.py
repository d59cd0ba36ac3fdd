"""Schemathesis over the registry's OpenAPI, in process, on PostgreSQL + S3, as each role."""

from __future__ import annotations

from functools import partial

import pytest
import schemathesis
from schemathesis.schemas import APIOperation

from tests.conftest import World
from tests.fuzz.conftest import savepoint
from tests.fuzz.harness import fuzz

MAX_EXAMPLES = 4  # per operation, generation mode and path-parameter variant


def _skip(op: APIOperation) -> bool:
    # The token endpoint is form-encoded client credentials (tests/registry/auth); docs pages.
    return op.path in {"/oauth/token"}


@pytest.mark.parametrize("role", ["ops", "auditor", "tenant"])
def test_registry_api(world: World, known: dict[str, str], role: str) -> None:
    headers = {
        "ops": world.ops.headers,
        "auditor": world.auditor.headers,
        "tenant": world.acme.headers,  # type: ignore[attr-defined]
    }[role]
    schema = schemathesis.openapi.from_asgi("/openapi.json", world.stack.app)
    run = fuzz(
        schema,
        headers=headers,
        known=known,
        max_examples=MAX_EXAMPLES,
        isolate=partial(savepoint, world),
        skip=_skip,
    )
    print(f"registry as {role}: {run.summary()}")
    assert not run.failures, "\n\n".join(run.failures)
