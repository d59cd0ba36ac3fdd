"""The object store interface shared by the S3 and local-directory implementations."""

from __future__ import annotations

import hashlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self

TMP_PREFIX = "_tmp/"
MAX_KEY_BYTES = 1024  # S3's limit, applied to both stores so keys stay portable

KeySpec = str | Callable[[str], str]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredObject:
    key: str
    sha256: str  # hex
    size: int


class StorageError(Exception):
    """Base class for object store failures."""


class ObjectNotFound(StorageError):
    pass


class StorageUnavailable(StorageError):
    """The store cannot be reached or used at all (connectivity, credentials, missing bucket)."""


class ObjectExists(StorageError):
    """`put_new` found an object already at the key (write-once objects are never replaced)."""


def validate_key(key: str) -> str:
    """Return `key` if it is a safe relative key, else raise ValueError.

    Rejected: empty keys or segments (so no leading, trailing or double `/`), `.` and `..`
    segments, backslashes, non-printable characters, keys over 1024 UTF-8 bytes.
    """
    if not isinstance(key, str) or not key:
        raise ValueError("object key must be a non-empty string")
    if "\\" in key:
        raise ValueError(f"object key must not contain a backslash: {key!r}")
    if not key.isprintable():
        raise ValueError(f"object key must be printable: {key!r}")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise ValueError(f"object key is longer than {MAX_KEY_BYTES} bytes")
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            raise ValueError(f"object key has an empty, '.' or '..' segment: {key!r}")
    return key


def validate_prefix(prefix: str) -> str:
    """Validate a `list_keys` prefix: empty, or a key optionally ending in `/`."""
    if prefix:
        validate_key(prefix[:-1] if prefix.endswith("/") else prefix)
    return prefix


def validate_destination(key: str) -> str:
    """Validate a key that data is written to; the temporary area is reserved."""
    validate_key(key)
    if key.startswith(TMP_PREFIX):
        raise ValueError(f"object key must not be under the reserved {TMP_PREFIX!r}: {key!r}")
    return key


class ObjectWriter(ABC):
    """Streams one object into the store; see `commit` and `abort`.

    Nothing is visible under the final key before `commit`. A writer opened on its key
    (`store.writer(key)`) may send data straight there (S3: an uncompleted multipart upload,
    which GET and LIST do not see) and its commit replaces any object at that key, like
    `put_bytes`. One opened without a key (the key depends on the digest, see `commit`) keeps
    its data under a temporary key (`_tmp/<uuid>` under the store's prefix) until commit. Any
    exception raised by `write` or `commit` aborts the writer; used as a context manager it
    aborts unless committed. Not thread-safe.
    """

    def __init__(self, key: str | None = None) -> None:
        self._key = validate_destination(key) if key is not None else None
        self._sha256 = hashlib.sha256()
        self._size = 0
        self._state = "open"  # open | committed | aborted

    @property
    def size(self) -> int:
        """Bytes written so far."""
        return self._size

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the bytes written so far."""
        return self._sha256.hexdigest()

    def write(self, data: bytes) -> None:
        self._check_open()
        if not data:
            return
        try:
            self._write(data)
        except BaseException:
            self._abort_after_error()
            raise
        self._sha256.update(data)
        self._size += len(data)

    def commit(self, key: KeySpec | None = None) -> StoredObject:
        """Make the data visible under `key` (or `key(sha256_hex)`) and return it.

        A writer opened on its key commits to that key (`key` may be left out). Otherwise, if
        an object already exists at the final key it is kept as is (content-addressed keys
        imply equal content), the temporary data is discarded and the existing key returned.
        """
        self._check_open()
        try:
            digest = self._sha256.hexdigest()
            if self._key is not None:
                if key is not None and key != self._key:
                    raise ValueError(f"this writer was opened on {self._key!r}, not {key!r}")
                final_key = self._key
            elif key is None:
                raise ValueError("commit needs a key: the writer was opened without one")
            else:
                final_key = validate_destination(key(digest) if callable(key) else key)
            self._commit(final_key)
        except BaseException:
            self._abort_after_error()
            raise
        self._state = "committed"
        return StoredObject(key=final_key, sha256=digest, size=self._size)

    def abort(self) -> None:
        """Discard temporary data. Idempotent; a no-op after a successful commit."""
        if self._state != "open":
            return
        self._state = "aborted"
        self._abort()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.abort()
        else:
            self._abort_after_error()

    def _abort_after_error(self) -> None:
        # Cleanup must not hide the error that caused it; leftover `_tmp/` data is garbage.
        try:
            self.abort()
        except Exception:
            log.warning("could not clean up an aborted object upload", exc_info=True)

    def _check_open(self) -> None:
        if self._state != "open":
            raise RuntimeError(f"object writer is already {self._state}")

    @abstractmethod
    def _write(self, data: bytes) -> None: ...

    @abstractmethod
    def _commit(self, final_key: str) -> None: ...

    @abstractmethod
    def _abort(self) -> None: ...


class ObjectStore(Protocol):
    """A flat key → bytes store. Keys are validated with `validate_key`."""

    url: str

    def writer(self, key: str | None = None) -> ObjectWriter:
        """A streaming writer; with `key`, data may go straight to it (see ObjectWriter)."""
        ...

    def put_bytes(self, key: str, data: bytes) -> StoredObject:
        """Store `data` under `key`, replacing any existing object (atomically)."""
        ...

    def put_new(self, key: str, data: bytes, *, retain_days: int = 0) -> StoredObject:
        """Store `data` under `key` only if no object is there, else raise ObjectExists.

        Atomic: of two concurrent calls one wins. With `retain_days` and `object_lock()`,
        the object is also locked (S3 Object Lock, COMPLIANCE mode) for that many days.
        """
        ...

    def object_lock(self) -> bool:
        """Whether `put_new` can lock objects against deletion (S3 bucket with Object Lock)."""
        ...

    def get_bytes(self, key: str) -> bytes: ...

    def iter_chunks(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """Stream an object. The object is opened here, so a missing key raises at call time."""
        ...

    def size(self, key: str) -> int | None:
        """Size in bytes, or None if there is no such object."""
        ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None:
        """Delete an object; no error if it does not exist."""
        ...

    def list_keys(self, prefix: str = "") -> Iterator[str]:
        """Keys starting with `prefix` (a plain string prefix), `_tmp/` keys included."""
        ...

    def ping(self) -> None:
        """Raise StorageUnavailable with a human-readable message if the store is unusable."""
        ...
