"""Behaviours specific to the S3 object store: reachability, cleanup of failed multipart
uploads, S3's own checksums and server-side copies. Needs $LORAPLEX_TEST_S3_ENDPOINT (see
conftest.py).
"""

from __future__ import annotations

import base64
import socket
import time
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from registry.storage import S3ObjectStore, StorageError, StorageUnavailable
from tests.registry.storage.conftest import (
    MULTIPART,
    PART_SIZE,
    all_keys,
    blob,
    count_calls,
    open_s3,
    pending_uploads,
    write_in_chunks,
)


def test_ping_s3_unreachable() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = open_s3("some-bucket", endpoint=f"http://127.0.0.1:{port}", timeout_s=2.0)
    start = time.monotonic()
    with pytest.raises(StorageUnavailable, match="unavailable"):
        store.ping()
    assert time.monotonic() - start < 5
    with pytest.raises(StorageUnavailable):
        store.get_bytes("k")


def test_ping_s3_missing_bucket() -> None:
    store = open_s3("loraplex-test-no-such-bucket")
    with pytest.raises(StorageUnavailable, match="does not exist"):
        store.ping()


def test_s3_commit_failure_cleans_up(s3_store: S3ObjectStore) -> None:
    store = s3_store

    def fail(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "InternalError"}}, "CompleteMultipartUpload")

    store.client.meta.events.register("before-call.s3.CompleteMultipartUpload", fail)
    with pytest.raises(StorageError, match="InternalError"), store.writer() as w:
        w.write(blob(MULTIPART))
        w.commit("k")
    assert all_keys(store) == []
    assert pending_uploads(store) == []


def test_s3_object_carries_its_sha256(s3_store: S3ObjectStore) -> None:
    """Committed objects carry S3's own full-object SHA-256, equal to ours (below 1 GiB)."""
    for size in [100, MULTIPART]:
        stored = write_in_chunks(s3_store, blob(size), lambda h: f"cas/{h}")
        head = s3_store.client.head_object(
            Bucket=s3_store.bucket, Key=s3_store.prefix + stored.key, ChecksumMode="ENABLED"
        )
        assert base64.b64decode(head["ChecksumSHA256"]).hex() == stored.sha256


def test_s3_multipart_server_side_copy(s3_store: S3ObjectStore) -> None:
    """Objects over the copy threshold (1 GiB by default) are copied part by part."""
    s3_store.copy_config = TransferConfig(
        multipart_threshold=PART_SIZE, multipart_chunksize=PART_SIZE
    )
    copies = count_calls(s3_store, "UploadPartCopy")
    data = blob(MULTIPART, seed=3)
    stored = write_in_chunks(s3_store, data, lambda h: f"cas/{h}")
    assert len(copies) == 3
    assert s3_store.get_bytes(stored.key) == data  # botocore validates the object's checksum
    assert all_keys(s3_store) == [stored.key]
