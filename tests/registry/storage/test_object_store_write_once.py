"""`put_new`: write-once objects (audit anchors), on both stores; S3 Object Lock where enabled."""

from __future__ import annotations

import datetime as dt
import os
import uuid

import pytest

from registry.storage import LocalObjectStore, ObjectExists, ObjectStore
from tests.registry.storage.conftest import all_keys, open_s3


def test_put_new_refuses_a_second_put(store: ObjectStore) -> None:
    stored = store.put_new("audit/anchors/1.json", b"first")
    assert stored.size == 5 and store.get_bytes("audit/anchors/1.json") == b"first"
    with pytest.raises(ObjectExists, match="already exists"):
        store.put_new("audit/anchors/1.json", b"second")
    assert store.get_bytes("audit/anchors/1.json") == b"first"
    assert all_keys(store) == ["audit/anchors/1.json"]  # no temporary data left behind


def test_put_new_refuses_to_replace_an_ordinary_object(store: ObjectStore) -> None:
    store.put_bytes("k", b"old")
    with pytest.raises(ObjectExists):
        store.put_new("k", b"new")
    assert store.get_bytes("k") == b"old"


def test_put_new_rejects_bad_keys(store: ObjectStore) -> None:
    for key in ("../x", "_tmp/x", ""):
        with pytest.raises(ValueError):
            store.put_new(key, b"x")


def test_local_write_once_file_is_read_only(local_store: LocalObjectStore) -> None:
    local_store.put_new("a/b", b"x")
    assert os.stat(local_store.path("a/b")).st_mode & 0o222 == 0
    assert local_store.object_lock() is False


def test_s3_without_object_lock_says_so(store: ObjectStore) -> None:
    assert store.object_lock() is False
    store.put_new("k", b"x", retain_days=30)  # no lock to apply: still write-once
    assert store.get_bytes("k") == b"x"


def test_s3_object_lock_bucket_locks_each_object() -> None:
    bucket = f"loraplex-lock-{uuid.uuid4().hex[:16]}"
    store = open_s3(bucket)
    store.client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    assert store.object_lock() is True
    store.put_new("audit/anchors/7.json", b"anchor", retain_days=30)
    name = store.prefix + "audit/anchors/7.json"
    head = store.client.head_object(Bucket=bucket, Key=name)
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert head["ObjectLockRetainUntilDate"] > dt.datetime.now(dt.UTC) + dt.timedelta(days=29)
    with pytest.raises(ObjectExists):
        store.put_new("audit/anchors/7.json", b"forged", retain_days=30)
    assert store.get_bytes("audit/anchors/7.json") == b"anchor"
    # the locked version cannot be deleted (the bucket is left behind in the test server)
    with pytest.raises(store.client.exceptions.ClientError, match="AccessDenied"):
        store.client.delete_object(Bucket=bucket, Key=name, VersionId=head["VersionId"])
