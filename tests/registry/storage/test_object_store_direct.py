"""Writers opened on their key (`store.writer(key)`): parts go straight to the final key,
several in flight, with no temporary object and no server-side copy; an abort or a failure
leaves neither an object nor an open multipart upload. S3 tests need
$LORAPLEX_TEST_S3_ENDPOINT (see conftest.py)."""

from __future__ import annotations

import base64
import threading
import time
import zlib
from typing import Any

import pytest
from botocore.exceptions import ClientError

from registry.storage import ObjectStore, S3ObjectStore, StorageError
from tests.registry.storage.conftest import (
    MULTIPART,
    PART_SIZE,
    all_keys,
    blob,
    count_calls,
    pending_uploads,
)


def _write(store: ObjectStore, key: str, data: bytes, chunk: int = 1 << 20) -> Any:
    with store.writer(key) as w:
        for i in range(0, len(data), chunk):
            w.write(data[i : i + chunk])
        return w.commit()


@pytest.mark.parametrize("size", [0, 100, MULTIPART])
def test_keyed_writer_round_trip_without_copies(store: ObjectStore, size: int) -> None:
    copies = count_calls(store, "CopyObject") + count_calls(store, "UploadPartCopy")
    data = blob(size, seed=size)
    stored = _write(store, "v/weights.bin", data)
    assert stored.key == "v/weights.bin" and stored.size == size
    assert store.get_bytes("v/weights.bin") == data  # botocore checks S3's checksum
    assert all_keys(store) == ["v/weights.bin"]  # never a `_tmp/` object
    assert pending_uploads(store) == []
    assert copies == []


@pytest.mark.parametrize("size", [100, MULTIPART])
def test_keyed_writer_shows_nothing_before_commit(store: ObjectStore, size: int) -> None:
    with store.writer("final/key") as w:
        w.write(blob(size))
        assert not store.exists("final/key")
        assert [k for k in store.list_keys() if not k.startswith("_tmp/")] == []
        stored = w.commit("final/key")  # the same key may be named again
    assert all_keys(store) == [stored.key]


def test_keyed_writer_replaces_and_refuses_another_key(store: ObjectStore) -> None:
    store.put_bytes("k", b"old")
    assert _write(store, "k", b"new").sha256
    assert store.get_bytes("k") == b"new"
    with store.writer("k2") as w:
        w.write(b"data")
        with pytest.raises(ValueError, match="opened on 'k2'"):
            w.commit("other")
    assert all_keys(store) == ["k"]
    with pytest.raises(ValueError, match="needs a key"), store.writer() as w:
        w.commit()


def test_s3_small_object_is_one_put_and_large_one_a_multipart_on_its_key(
    s3_store: S3ObjectStore,
) -> None:
    creates = count_calls(s3_store, "CreateMultipartUpload")
    puts = count_calls(s3_store, "PutObject")
    _write(s3_store, "small", blob(PART_SIZE - 1))
    assert (len(creates), len(puts)) == (0, 1)
    seen: list[str] = []
    s3_store.client.meta.events.register(
        "before-parameter-build.s3.UploadPart", lambda params, **_: seen.append(params["Key"])
    )
    data = blob(MULTIPART, seed=5)
    _write(s3_store, "large", data)
    assert (len(creates), len(puts)) == (1, 1)
    assert set(seen) == {s3_store.prefix + "large"}  # the parts went to the final key
    head = s3_store.client.head_object(
        Bucket=s3_store.bucket, Key=s3_store.prefix + "large", ChecksumMode="ENABLED"
    )
    # S3 checked each part's CRC32; the object carries their composite, as boto3's uploads do
    parts = [data[i : i + PART_SIZE] for i in range(0, len(data), PART_SIZE)]
    crcs = b"".join(zlib.crc32(p).to_bytes(4, "big") for p in parts)
    assert base64.b64decode(head["ChecksumCRC32"]) == zlib.crc32(crcs).to_bytes(4, "big")
    assert s3_store.get_bytes("large") == data


def _track_in_flight(store: S3ObjectStore, delay_s: float) -> dict[str, int]:
    """Count UploadPart calls in flight (each held `delay_s`) and the most at once."""
    state = {"now": 0, "max": 0}
    lock = threading.Lock()

    def before(**_: Any) -> None:
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        time.sleep(delay_s)

    def after(**_: Any) -> None:
        with lock:
            state["now"] -= 1

    store.client.meta.events.register("before-call.s3.UploadPart", before)
    store.client.meta.events.register("after-call.s3.UploadPart", after)
    return state


def test_s3_parts_are_in_flight_together_and_bounded(s3_store: S3ObjectStore) -> None:
    state = _track_in_flight(s3_store, delay_s=0.2)
    data = blob(8 * PART_SIZE + 7, seed=9)
    stored = _write(s3_store, "many", data)
    assert s3_store.get_bytes(stored.key) == data
    assert 1 < state["max"] <= s3_store.concurrency


@pytest.mark.parametrize("keyed", [True, False])
def test_s3_bad_file_mid_stream_leaves_nothing(s3_store: S3ObjectStore, keyed: bool) -> None:
    """Parts already sent (some still in flight) when the caller gives up: nothing stays."""
    _track_in_flight(s3_store, delay_s=0.1)
    key = "v/file" if keyed else None
    with pytest.raises(ValueError, match="bad line"), s3_store.writer(key) as w:
        w.write(blob(4 * PART_SIZE + 1))
        raise ValueError("bad line")
    assert all_keys(s3_store) == []
    assert pending_uploads(s3_store) == []


def test_s3_failed_part_fails_the_upload_and_leaves_nothing(s3_store: S3ObjectStore) -> None:
    def fail(params: dict[str, Any], **_: Any) -> None:
        if params["PartNumber"] == 2:
            raise ClientError({"Error": {"Code": "InvalidRequest"}}, "UploadPart")

    s3_store.client.meta.events.register("before-parameter-build.s3.UploadPart", fail)
    with pytest.raises(StorageError, match="part 2"):
        _write(s3_store, "v/file", blob(6 * PART_SIZE))
    assert all_keys(s3_store) == []
    assert pending_uploads(s3_store) == []
