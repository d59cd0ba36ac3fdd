"""Streaming writes to S3: parts go out, several at a time, while the caller still writes."""

from __future__ import annotations

import logging
import uuid
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any

from registry.storage.base import TMP_PREFIX, ObjectWriter, StorageError
from registry.storage.s3_errors import MAX_PARTS, translate

if TYPE_CHECKING:
    from registry.storage.s3 import S3ObjectStore

log = logging.getLogger(__name__)

_Part = dict[str, Any]


class S3ObjectWriter(ObjectWriter):
    """One object, streamed in parts of `store.part_size`, `store.concurrency` in flight.

    Below one part nothing is sent before commit, which PUTs the object to its key in one
    request (with its SHA-256 as S3's checksum). From the first full part on, a multipart upload
    takes the parts as they fill. Opened on its key (`store.writer(key)`), the upload is on that
    key: invisible to GET and LIST until commit completes it, discarded by an abort, and no
    copy. Opened without one (the key depends on the digest), it is on `_tmp/<uuid>` and copied
    to its key on commit. Memory: at most `concurrency + 1` part buffers.

    With flexible checksums on, S3 checks every part's CRC32 as it arrives, and the object
    carries a composite checksum (a checksum of the part checksums, as boto3's own multipart
    uploads leave), not a full-object one: the whole object's digest is our SHA-256, which the
    caller records (an adapter's manifest, a dataset's row) and readers check.
    """

    def __init__(self, store: S3ObjectStore, key: str | None = None) -> None:
        super().__init__(key)
        self._store = store
        self._object = store.prefix + (self._key or f"{TMP_PREFIX}{uuid.uuid4().hex}")
        # Filled up to one part; full ones go to the pool and come back for reuse (no copies).
        self._buf = bytearray()
        self._fill = 0
        self._spare: list[bytearray] = []
        self._upload_id: str | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._in_flight: deque[Future[tuple[_Part, bytearray]]] = deque()
        self._parts: list[_Part] = []
        self._sent = 0  # parts handed to the pool
        self._written = False  # `_object` may exist: abort deletes it

    def _write(self, data: bytes) -> None:
        view = memoryview(data).cast("B")
        part_size = self._store.part_size
        while view:
            n = min(part_size - self._fill, len(view))
            if self._fill == len(self._buf):
                self._buf += view[:n]
            else:  # through a memoryview: `buf[a:b] = view` would copy `view` first
                with memoryview(self._buf) as target:
                    target[self._fill : self._fill + n] = view[:n]
            self._fill += n
            view = view[n:]
            if self._fill == part_size:
                self._send(self._buf)
                self._buf = self._spare.pop() if self._spare else bytearray()
                self._fill = 0

    def _send(self, body: bytearray) -> None:
        s = self._store
        number = self._sent + 1
        if number > MAX_PARTS:
            raise StorageError(f"upload to {s.bucket}/{self._object}: over {MAX_PARTS} parts")
        if self._upload_id is None:
            self._start()
        while len(self._in_flight) >= s.concurrency:
            self._collect()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(s.concurrency, thread_name_prefix="s3-part")
        self._in_flight.append(self._pool.submit(self._upload_part, number, body))
        self._sent = number
        while self._in_flight and self._in_flight[0].done():  # a failed part fails early
            self._collect()

    def _start(self) -> None:
        s = self._store
        # A full-object CRC32 would be S3's own end-to-end check, but some S3-compatible
        # servers lack it (and moto then copies the whole object once more on completion).
        extra = {"ChecksumAlgorithm": "CRC32"} if s.checksums else {}
        with translate(f"start upload to {s.bucket}/{self._object}"):
            mpu = s.client.create_multipart_upload(Bucket=s.bucket, Key=self._object, **extra)
        self._upload_id = mpu["UploadId"]

    def _upload_part(self, number: int, body: bytearray) -> tuple[_Part, bytearray]:
        """In a pool thread: one part (botocore computes its CRC32; boto3 clients are
        thread-safe)."""
        s = self._store
        extra = {"ChecksumAlgorithm": "CRC32"} if s.checksums else {}
        with translate(f"upload part {number} to {s.bucket}/{self._object}"):
            resp = s.client.upload_part(
                Bucket=s.bucket,
                Key=self._object,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=body,
                **extra,
            )
        part: _Part = {"PartNumber": number, "ETag": resp["ETag"]}
        for name, value in resp.items():
            if name.startswith("Checksum") and name != "ChecksumType":
                part[name] = value
        return part, body

    def _collect(self) -> None:
        part, body = self._in_flight.popleft().result()
        self._parts.append(part)
        if len(body) == self._store.part_size:
            self._spare.append(body)

    def _commit(self, final_key: str) -> None:
        s = self._store
        del self._buf[self._fill :]  # in place; the buffer is not reused after this
        if self._key is None and s.exists(final_key):  # content-addressed: already stored
            self._discard()
            return
        if self._upload_id is None:  # under one part: one PUT, straight to the key
            self._written = self._key is not None
            s._put(s.prefix + final_key, self._buf, self._sha256.digest())
        else:
            if self._fill:
                self._send(self._buf)
            while self._in_flight:
                self._collect()
            self._written = True  # even if completing fails: it may have reached S3
            self._complete()
            if self._key is None:
                self._copy_to(s.prefix + final_key)
        self._release()

    def _complete(self) -> None:
        s = self._store
        with translate(f"complete upload {s.bucket}/{self._object}"):
            s.client.complete_multipart_upload(
                Bucket=s.bucket,
                Key=self._object,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )
        self._upload_id = None

    def _copy_to(self, name: str) -> None:
        """From `_tmp/`, with a new checksum: S3 then carries the object's SHA-256."""
        s = self._store
        with translate(f"copy {s.bucket}/{self._object} to {name}"):
            s.client.copy(
                {"Bucket": s.bucket, "Key": self._object},
                s.bucket,
                name,
                ExtraArgs={"ChecksumAlgorithm": "SHA256"} if s.checksums else None,
                Config=s.copy_config,
            )
        try:
            self._delete_written()
        except StorageError:  # the object is committed; a leftover temp is only garbage
            log.warning("could not delete %s/%s", s.bucket, self._object, exc_info=True)

    def _abort(self) -> None:
        self._discard()
        if self._written:
            self._delete_written()

    def _discard(self) -> None:
        """Stop the parts in flight (waiting for those already sending: a part that lands
        after the abort would keep storage) and abort the multipart upload."""
        for future in self._in_flight:
            future.cancel()
        wait(self._in_flight)
        self._in_flight.clear()
        self._release()
        s = self._store
        if self._upload_id is not None:
            upload_id, self._upload_id = self._upload_id, None
            # NoSuchUpload: it completed after all (a lost response) or was aborted already.
            with translate(f"abort upload {s.bucket}/{self._object}", ignore=("NoSuchUpload",)):
                s.client.abort_multipart_upload(
                    Bucket=s.bucket, Key=self._object, UploadId=upload_id
                )

    def _release(self) -> None:
        self._buf, self._spare = bytearray(), []
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None

    def _delete_written(self) -> None:
        s = self._store
        with translate(f"delete {s.bucket}/{self._object}"):
            s.client.delete_object(Bucket=s.bucket, Key=self._object)
        self._written = False
