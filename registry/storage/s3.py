"""Object store on S3 (or any S3-compatible API) through boto3."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import logging
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.session
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from registry.storage.base import (
    ObjectNotFound,
    StorageError,
    StorageUnavailable,
    StoredObject,
    validate_destination,
    validate_key,
    validate_prefix,
)
from registry.storage.s3_errors import MAX_PART_SIZE, MIN_PART_SIZE
from registry.storage.s3_errors import translate as _translate
from registry.storage.s3_writer import S3ObjectWriter

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
        concurrency: int = 4,
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
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.concurrency = concurrency  # parts of one upload in flight at once
        self.url = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        config = Config(
            signature_version="s3v4",
            connect_timeout=timeout_s,
            read_timeout=timeout_s,
            retries={"max_attempts": 3},
            max_pool_connections=32,  # several uploads, each with parts in flight
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

    def writer(self, key: str | None = None) -> S3ObjectWriter:
        return S3ObjectWriter(self, key)

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
        extra: dict[str, str] = {}
        if self.checksums:  # the algorithm too: without it moto keeps no checksum
            extra = {
                "ChecksumAlgorithm": "SHA256",
                "ChecksumSHA256": base64.b64encode(sha256).decode(),
            }
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
