"""Fixtures and helpers shared by the object store tests.

`store` runs a test against both implementations. The S3 variant talks to a real S3 HTTP server
(moto in CI) at $LORAPLEX_TEST_S3_ENDPOINT, e.g.
    python -m moto.server -H 127.0.0.1 -p 5999 &
    export LORAPLEX_TEST_S3_ENDPOINT=http://127.0.0.1:5999
Without it the S3 tests fail (they do not skip). Each test gets its own bucket.
"""

from __future__ import annotations

import hashlib
import os
import random
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from registry.storage import (
    LocalObjectStore,
    ObjectStore,
    S3ObjectStore,
    StoredObject,
    open_store,
)

S3_ENDPOINT_ENV = "LORAPLEX_TEST_S3_ENDPOINT"


PART_SIZE = 5 << 20  # S3's minimum part size


MULTIPART = 2 * PART_SIZE + 12345  # three parts, the last one short


def s3_endpoint() -> str:
    endpoint = os.environ.get(S3_ENDPOINT_ENV)
    if not endpoint:
        pytest.fail(
            f"{S3_ENDPOINT_ENV} is not set. The S3 tests need an S3 server, e.g. "
            f"`python -m moto.server -H 127.0.0.1 -p 5999 &` and "
            f"`export {S3_ENDPOINT_ENV}=http://127.0.0.1:5999`.",
            pytrace=False,
        )
    return endpoint


def open_s3(bucket: str, *, endpoint: str | None = None, **kwargs: Any) -> S3ObjectStore:
    kwargs.setdefault("part_size", PART_SIZE)
    kwargs.setdefault("timeout_s", 10.0)
    store = open_store(
        f"s3://{bucket}/store-prefix",
        s3_endpoint_url=endpoint or s3_endpoint(),
        s3_region="us-east-1",
        s3_access_key_id="testing",
        s3_secret_access_key="testing",
        **kwargs,
    )
    return cast(S3ObjectStore, store)


def drop_bucket(store: S3ObjectStore) -> None:
    client, bucket = store.client, store.bucket
    for upload in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
        client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            client.delete_object(Bucket=bucket, Key=obj["Key"])
    client.delete_bucket(Bucket=bucket)


@pytest.fixture
def s3_store() -> Iterator[S3ObjectStore]:
    store = open_s3(f"loraplex-test-{uuid.uuid4().hex[:16]}", create_bucket=True)
    yield store
    drop_bucket(store)


@pytest.fixture
def local_store(tmp_path: Path) -> LocalObjectStore:
    return cast(LocalObjectStore, open_store(f"file://{tmp_path}/store", create_bucket=True))


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest) -> ObjectStore:
    return cast(ObjectStore, request.getfixturevalue(f"{request.param}_store"))


def blob(size: int, seed: int = 0) -> bytes:
    """Deterministic data without repeats, so misplaced parts would show."""
    return random.Random(seed).randbytes(size)


def write_in_chunks(
    store: ObjectStore, data: bytes, key: str | Callable[[str], str], chunk: int = 1 << 20
) -> StoredObject:
    with store.writer() as w:
        for i in range(0, len(data), chunk):
            w.write(data[i : i + chunk])
        assert w.size == len(data)
        assert w.sha256 == hashlib.sha256(data).hexdigest()
        return w.commit(key)


def all_keys(store: ObjectStore) -> list[str]:
    return sorted(store.list_keys())


def pending_uploads(store: ObjectStore) -> list[Any]:
    if not isinstance(store, S3ObjectStore):
        return []
    uploads: list[Any] = store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", [])
    return uploads


def count_calls(store: ObjectStore, operation: str) -> list[str]:
    """Record each call of an S3 operation (nothing for the local store)."""
    calls: list[str] = []
    if isinstance(store, S3ObjectStore):
        store.client.meta.events.register(
            f"before-call.s3.{operation}", lambda **_: calls.append(operation)
        )
    return calls
