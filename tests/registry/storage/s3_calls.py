"""What a test's S3 store asks the server: the store and a recorder of named operations."""

from __future__ import annotations

from registry.storage import ObjectStore, S3ObjectStore


def s3_store(store: ObjectStore) -> S3ObjectStore:
    assert isinstance(store, S3ObjectStore)
    return store


def record_calls(store: S3ObjectStore, *operations: str) -> list[str]:
    """A list that gets each of `operations` (e.g. "CopyObject") as the client sends it."""
    seen: list[str] = []
    for op in operations:
        store.client.meta.events.register(
            f"before-parameter-build.s3.{op}", lambda params, op=op, **_: seen.append(op)
        )
    return seen
