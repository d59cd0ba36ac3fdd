"""Object store on S3 (or any S3-compatible API) through boto3."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import botocore.session
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError, NoCredentialsError
from botocore.exceptions import ConnectionError as BotoConnectionError

from registry.storage.base import (
    TMP_PREFIX,
    ObjectExists,
    ObjectNotFound,
    ObjectWriter,
    StorageError,
    StorageUnavailable,
    StoredObject,
    validate_destination,
    validate_key,
    validate_prefix,
)

MIN_PART_SIZE = 5 << 20  # S3's minimum for every part but the last
MAX_PART_SIZE = 5 << 30
MAX_PARTS = 10_000
_NOT_FOUND = ("404", "NoSuchKey", "NotFound")
# A conditional put lost: the object exists (412), or a concurrent conditional put won (409).
_EXISTS = ("PreconditionFailed", "412", "ConditionalRequestConflict")
_OUTAGE = ("InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "500", "503")
_UNUSABLE = ("NoSuchBucket", "403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch")

log = logging.getLogger(__name__)

_loader_lock = threading.Lock()
_loader: Any = None  # botocore's cache of parsed service models, shared by all clients


def _session() -> boto3.session.Session:
    """A fresh session (own credentials and config) that reuses parsed service models.

    Parsing the models costs ~100 ms a client; tests open a store per test.
    """
    global _loader
    session = botocore.session.get_session()
    with _loader_lock:
        if _loader is None:
            _loader = session.get_component("data_loader")
        else:
            session.register_component("data_loader", _loader)
    return boto3.session.Session(botocore_session=session)


@contextmanager
def _translate(what: str, *, ignore: tuple[str, ...] = ()) -> Iterator[None]:
    """Turn botocore exceptions into StorageError subclasses; swallow error codes in `ignore`."""
    try:
        yield
    except ClientError as e:
        code = str(e.response.get("Error", {}).get("Code", ""))
        if code in ignore:
            return
        if code in _EXISTS:
            raise ObjectExists(f"{what}: an object already exists there") from e
        if code in _NOT_FOUND:
            raise ObjectNotFound(f"{what}: no such object") from e
        status = int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        # 5xx (after botocore's retries) and throttling: the store is down, not our request.
        unusable = code in _UNUSABLE or code in _OUTAGE or status >= 500
        error = StorageUnavailable if unusable else StorageError
        raise error(f"{what}: {code} {e.response['Error'].get('Message', '')}".strip()) from e
    except (BotoConnectionError, HTTPClientError, NoCredentialsError) as e:
        raise StorageUnavailable(f"{what}: {e}") from e
    except BotoCoreError as e:
        raise StorageError(f"{what}: {e}") from e


class S3ObjectStore:
    """Objects under `s3://<bucket>/<prefix>/`. `client`, `bucket` and `prefix` are public."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        part_size: int = 8 << 20,
        timeout_s: float = 30.0,
    ) -> None:
        if not bucket:
            raise ValueError("S3 bucket name is empty")
        if not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
            raise ValueError(f"part_size must be between {MIN_PART_SIZE} and {MAX_PART_SIZE}")
        prefix = prefix.strip("/")
        self.bucket = bucket
        self.prefix = validate_key(prefix) + "/" if prefix else ""
        self.part_size = part_size
        self.url = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        config = Config(
            signature_version="s3v4",
            connect_timeout=timeout_s,
            read_timeout=timeout_s,
            retries={"max_attempts": 3},
            # Custom endpoints (MinIO, moto, Ceph) rarely resolve virtual-host bucket names.
            s3={"addressing_style": "path" if endpoint_url else "auto"},
        )
        self.client: Any = _session().client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            config=config,
        )
        # Flexible checksums, unless turned off (AWS_REQUEST_CHECKSUM_CALCULATION=when_required)
        # for S3-compatible servers that do not support them.
        self.checksums = self.client.meta.config.request_checksum_calculation == "when_supported"
        self._object_lock: bool | None = None  # the bucket's setting, read once
        # Server-side copies up to the threshold are one CopyObject, larger ones multipart.
        self.copy_config = TransferConfig(
            multipart_threshold=1 << 30, multipart_chunksize=256 << 20
        )

    def _name(self, key: str) -> str:
        return self.prefix + validate_key(key)

    def writer(self) -> S3ObjectWriter:
        return S3ObjectWriter(self)

    def put_bytes(self, key: str, data: bytes) -> StoredObject:
        name = self.prefix + validate_destination(key)
        digest = hashlib.sha256(data).digest()
        self._put(name, data, digest)
        return StoredObject(key=key, sha256=digest.hex(), size=len(data))

    def put_new(self, key: str, data: bytes, *, retain_days: int = 0) -> StoredObject:
        """A conditional PUT (`If-None-Match: *`): S3 refuses it with 412 if the key exists."""
        name = self.prefix + validate_destination(key)
        digest = hashlib.sha256(data).digest()
        # Content-MD5 too: Object Lock puts need it (or an SDK checksum-algorithm header).
        md5 = hashlib.md5(data, usedforsecurity=False).digest()
        extra: dict[str, Any] = {"IfNoneMatch": "*", "ContentMD5": base64.b64encode(md5).decode()}
        if self.checksums:
            extra["ChecksumSHA256"] = base64.b64encode(digest).decode()
        if retain_days and self.object_lock():
            until = dt.datetime.now(dt.UTC) + dt.timedelta(days=retain_days)
            extra |= {"ObjectLockMode": "COMPLIANCE", "ObjectLockRetainUntilDate": until}
        with _translate(f"put {self.bucket}/{name}"):
            self.client.put_object(Bucket=self.bucket, Key=name, Body=data, **extra)
        return StoredObject(key=key, sha256=digest.hex(), size=len(data))

    def object_lock(self) -> bool:
        if self._object_lock is None:
            conf: dict[str, Any] = {}
            # No configuration: no lock. Servers without the API, or a role without the
            # permission to read it: say no lock (the anchors are then write-once only).
            no_lock = ("ObjectLockConfigurationNotFoundError", "NotImplemented", "AccessDenied")
            with _translate(f"get object lock configuration of {self.bucket}", ignore=no_lock):
                conf = self.client.get_object_lock_configuration(Bucket=self.bucket)
            enabled = conf.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled")
            self._object_lock = enabled == "Enabled"
        return self._object_lock

    def _put(self, name: str, data: bytes | bytearray, sha256: bytes) -> None:
        extra = {"ChecksumSHA256": base64.b64encode(sha256).decode()} if self.checksums else {}
        with _translate(f"put {self.bucket}/{name}"):
            # S3 checks the digest we computed; the object then carries it as its checksum.
            self.client.put_object(Bucket=self.bucket, Key=name, Body=data, **extra)

    def get_bytes(self, key: str) -> bytes:
        name = self._name(key)
        with _translate(f"get {self.bucket}/{name}"):
            body = self.client.get_object(Bucket=self.bucket, Key=name)["Body"]
            try:
                data: bytes = body.read()
            finally:
                body.close()
        return data

    def iter_chunks(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        name = self._name(key)
        with _translate(f"get {self.bucket}/{name}"):
            body = self.client.get_object(Bucket=self.bucket, Key=name)["Body"]
        return self._stream(body, chunk_size, name)

    def _stream(self, body: Any, chunk_size: int, name: str) -> Iterator[bytes]:
        try:
            with _translate(f"read {self.bucket}/{name}"):
                yield from body.iter_chunks(chunk_size)
        finally:
            body.close()

    def size(self, key: str) -> int | None:
        name = self._name(key)
        try:
            with _translate(f"head {self.bucket}/{name}"):
                head = self.client.head_object(Bucket=self.bucket, Key=name)
        except ObjectNotFound:
            return None
        return int(head["ContentLength"])

    def exists(self, key: str) -> bool:
        return self.size(key) is not None

    def delete(self, key: str) -> None:
        name = self._name(key)
        with _translate(f"delete {self.bucket}/{name}"):
            self.client.delete_object(Bucket=self.bucket, Key=name)

    def list_keys(self, prefix: str = "") -> Iterator[str]:
        full = self.prefix + validate_prefix(prefix)
        paginator = self.client.get_paginator("list_objects_v2")
        with _translate(f"list {self.bucket}/{full}"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
                for obj in page.get("Contents", []):
                    yield obj["Key"][len(self.prefix) :]

    def ping(self) -> None:
        try:
            with _translate("HeadBucket"):
                self.client.head_bucket(Bucket=self.bucket)
        except ObjectNotFound as e:  # a missing bucket is a bare 404 here
            raise StorageUnavailable(f"S3 bucket {self.bucket!r} does not exist") from e
        except StorageError as e:
            raise StorageUnavailable(f"S3 store {self.url} is unavailable ({e})") from e

    def create_bucket(self) -> None:
        """Create the bucket if it does not exist (development and tests)."""
        try:
            return self.ping()
        except StorageUnavailable:
            pass
        kwargs: dict[str, Any] = {"Bucket": self.bucket}
        if self.client.meta.region_name not in (None, "us-east-1"):
            location = {"LocationConstraint": self.client.meta.region_name}
            kwargs["CreateBucketConfiguration"] = location
        with _translate(f"create bucket {self.bucket}", ignore=("BucketAlreadyOwnedByYou",)):
            self.client.create_bucket(**kwargs)


class S3ObjectWriter(ObjectWriter):
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
        with _translate(what):
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
            with _translate(f"complete upload {s.bucket}/{self._tmp_name}"):
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
            with _translate(f"copy {s.bucket}/{self._tmp_name} to {final_name}"):
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
            with _translate(f"abort upload {s.bucket}/{self._tmp_name}", ignore=("NoSuchUpload",)):
                s.client.abort_multipart_upload(
                    Bucket=s.bucket, Key=self._tmp_name, UploadId=upload_id
                )
        if self._tmp_written:
            self._delete_tmp()

    def _delete_tmp(self) -> None:
        s = self._store
        with _translate(f"delete {s.bucket}/{self._tmp_name}"):
            s.client.delete_object(Bucket=s.bucket, Key=self._tmp_name)
        self._tmp_written = False
