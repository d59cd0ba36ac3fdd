"""The S3 writer as it was before uploads went straight to their key (git b5bcbe7,
registry/storage/s3.py), kept for bench/upload_bench.py only: one part at a time to
`_tmp/<uuid>`, then complete, server-side copy to the final key, delete. Not used by the app."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from registry.storage import S3ObjectStore
from registry.storage.base import TMP_PREFIX, ObjectWriter, StorageError
from registry.storage.s3_errors import MAX_PARTS, translate

log = logging.getLogger(__name__)


class LegacyS3ObjectWriter(ObjectWriter):
    """Buffers at most one part; the multipart upload starts when the first part is full."""

    def __init__(self, store: S3ObjectStore) -> None:
        super().__init__()
        self._store = store
        self._tmp_name = f"{store.prefix}{TMP_PREFIX}{uuid.uuid4().hex}"
        # Grows up to one part, then is reused for every further part (no per-part copies).
        self._buf = bytearray()
        self._fill = 0
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._tmp_written = False

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
                self._upload_part(self._buf)
                self._fill = 0

    def _upload_part(self, body: bytearray) -> None:
        s, client = self._store, self._store.client
        what = f"upload to {s.bucket}/{self._tmp_name}"
        number = len(self._parts) + 1
        if number > MAX_PARTS:
            raise StorageError(f"{what}: more than {MAX_PARTS} parts; raise part_size")
        with translate(what):
            if self._upload_id is None:
                extra: dict[str, str] = {}
                if s.checksums:
                    extra["ChecksumAlgorithm"] = "CRC32"  # as boto3's managed transfers do
                mpu = client.create_multipart_upload(Bucket=s.bucket, Key=self._tmp_name, **extra)
                self._upload_id = mpu["UploadId"]
            resp = client.upload_part(
                Bucket=s.bucket,
                Key=self._tmp_name,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=body,
            )
        part = {"PartNumber": number, "ETag": resp["ETag"]}
        for name, value in resp.items():
            if name.startswith("Checksum") and name != "ChecksumType":
                part[name] = value
        self._parts.append(part)

    def _commit(self, final_key: str) -> None:
        s, client = self._store, self._store.client
        del self._buf[self._fill :]  # in place; the buffer is not reused after this
        self._tmp_written = True  # even if the next call fails: it may have reached S3
        if self._upload_id is None:
            s._put(self._tmp_name, self._buf, self._sha256.digest())
        else:
            if self._fill:
                self._upload_part(self._buf)
            with translate(f"complete upload {s.bucket}/{self._tmp_name}"):
                client.complete_multipart_upload(
                    Bucket=s.bucket,
                    Key=self._tmp_name,
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": self._parts},
                )
            self._upload_id = None
        self._buf = bytearray()
        final_name = s.prefix + final_key
        if not s.exists(final_key):
            with translate(f"copy {s.bucket}/{self._tmp_name} to {final_name}"):
                # A new checksum for the copy: the temp object's may be composite (multipart),
                # and moto would pass that off as a full-object checksum, failing every GET.
                client.copy(
                    {"Bucket": s.bucket, "Key": self._tmp_name},
                    s.bucket,
                    final_name,
                    ExtraArgs={"ChecksumAlgorithm": "SHA256"} if s.checksums else None,
                    Config=s.copy_config,
                )
        try:
            self._delete_tmp()
        except StorageError:  # the object is committed; a leftover temp is only garbage
            log.warning("could not delete %s/%s", s.bucket, self._tmp_name, exc_info=True)

    def _abort(self) -> None:
        self._buf = bytearray()
        s = self._store
        if self._upload_id is not None:
            upload_id, self._upload_id = self._upload_id, None
            # NoSuchUpload: it completed after all (a lost response) or was aborted already.
            with translate(f"abort upload {s.bucket}/{self._tmp_name}", ignore=("NoSuchUpload",)):
                s.client.abort_multipart_upload(
                    Bucket=s.bucket, Key=self._tmp_name, UploadId=upload_id
                )
        if self._tmp_written:
            self._delete_tmp()

    def _delete_tmp(self) -> None:
        s = self._store
        with translate(f"delete {s.bucket}/{self._tmp_name}"):
            s.client.delete_object(Bucket=s.bucket, Key=self._tmp_name)
        self._tmp_written = False
