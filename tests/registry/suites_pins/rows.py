"""EvalSuite rows written straight into the database, for tests of what refers to suites
(pins, a base model's general suite) independently of the suite upload route."""

from __future__ import annotations

import hashlib
import uuid

from registry.db import run_unit_of_work
from registry.models import EvalSuite
from registry.models.enums import SuiteFormat
from tests.conftest import World


def insert_suite(
    world: World,
    name: str,
    version: int = 1,
    *,
    tenant_id: str | None = None,
    rows: int = 3,
    check_counts: dict[str, int] | None = None,
) -> dict[str, object]:
    """One suite version of a tenant (`tenant_id`) or of the platform (None); returns the
    fields the API shows for it."""
    digest = hashlib.sha256(f"{tenant_id}/{name}/{version}".encode()).hexdigest()
    owner = f"tenants/{tenant_id}" if tenant_id else "platform"
    suite = EvalSuite(
        tenant_id=uuid.UUID(tenant_id) if tenant_id else None,
        name=name,
        version=version,
        format=SuiteFormat.CHAT,
        sha256=digest,
        bytes=100 * rows,
        rows=rows,
        duplicates_dropped=0,
        check_counts=check_counts or {"contains": rows},
        source_sha256=digest,
        source_bytes=100 * rows,
        object_key=f"{owner}/eval-suites/sha256/{digest}.jsonl",
        created_by="test",
    )
    for session in run_unit_of_work(world.stack.app.state.sessionmaker):
        session.add(suite)
        session.flush()
        suite_id = str(suite.id)
    return {
        "id": suite_id,
        "name": name,
        "version": version,
        "sha256": digest,
        "rows": rows,
        "check_counts": check_counts or {"contains": rows},
    }
