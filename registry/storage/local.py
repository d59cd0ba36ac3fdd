"""Object store in a local directory (development, single-node installs, tests)."""

from __future__ import annotations

import contextlib
import errno
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

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

# The disk or mount is unusable (full, read-only, I/O or network-filesystem failure).
_OUTAGE = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.ESTALE, errno.ENOTCONN}


@contextmanager
def _translate(what: str, *, missing: bool = True) -> Iterator[None]:
    """OS errors to StorageError; with `missing`, a missing file is ObjectNotFound."""
    _missing = (FileNotFoundError, IsADirectoryError, NotADirectoryError) if missing else ()
    try:
        yield
    except _missing as e:
        raise ObjectNotFound(f"{what}: no such object") from e
    except OSError as e:
        error = StorageUnavailable if e.errno in _OUTAGE else StorageError
        raise error(f"{what}: {e}") from e


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalObjectStore:
    """Objects as files under `root`; key `a/b/c` is the file `<root>/a/b/c`."""

    def __init__(self, root: str, *, create: bool = False) -> None:
        if not os.path.isabs(root):
            raise ValueError(f"local store root must be an absolute path: {root!r}")
        if create:
            os.makedirs(root, exist_ok=True)
        self.root = os.path.realpath(root)
        self.url = "file://" + self.root

    def path(self, key: str) -> str:
        """The file for `key`; raises ValueError if it would resolve outside the root."""
        path = os.path.realpath(os.path.join(self.root, *validate_key(key).split("/")))
        if os.path.commonpath([self.root, path]) != self.root or path == self.root:
            raise ValueError(f"object key resolves outside the store: {key!r}")
        return path

    def _check_root(self) -> None:
        if not os.path.isdir(self.root):
            raise StorageUnavailable(f"local store directory {self.root} does not exist")

    def writer(self, key: str | None = None) -> LocalObjectWriter:
        self._check_root()
        # Opened on its key, a writer replaces what is there (as S3's would); the rename is
        # atomic, so nothing partial is ever visible.
        return LocalObjectWriter(self, key=key, replace=key is not None)

    def put_bytes(self, key: str, data: bytes) -> StoredObject:
        validate_destination(key)
        self._check_root()
        with LocalObjectWriter(self, replace=True) as w:
            w.write(data)
            return w.commit(key)

    def put_new(self, key: str, data: bytes, *, retain_days: int = 0) -> StoredObject:
        """Write a temporary file, then hard-link it into place: the link fails if the key
        exists, and readers never see a partial file. Read-only afterwards (no lock here)."""
        final = self.path(validate_destination(key))
        self._check_root()
        with LocalObjectWriter(self) as w:
            w.write(data)
            digest = w.sha256
            tmp = w._detach()
        try:
            with _translate(f"put {key}", missing=False):
                os.makedirs(os.path.dirname(final), exist_ok=True)
                os.chmod(tmp, 0o444)
                try:
                    os.link(tmp, final)
                except FileExistsError:
                    raise ObjectExists(f"put {key}: an object already exists there") from None
                _fsync_dir(os.path.dirname(final))
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
        return StoredObject(key=key, sha256=digest, size=len(data))

    def object_lock(self) -> bool:
        return False

    def get_bytes(self, key: str) -> bytes:
        path = self.path(key)
        with _translate(f"get {key}"), open(path, "rb") as f:
            return f.read()

    def iter_chunks(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        path = self.path(key)
        with _translate(f"get {key}"):
            f = open(path, "rb")  # noqa: SIM115 - closed by the generator
        return self._stream(f, chunk_size, key)

    @staticmethod
    def _stream(f: BinaryIO, chunk_size: int, key: str) -> Iterator[bytes]:
        with f, _translate(f"read {key}"):
            while chunk := f.read(chunk_size):
                yield chunk

    def size(self, key: str) -> int | None:
        path = self.path(key)
        try:
            with _translate(f"stat {key}"):
                st = os.stat(path)
        except ObjectNotFound:
            return None
        return st.st_size if os.path.isfile(path) else None

    def exists(self, key: str) -> bool:
        return self.size(key) is not None

    def delete(self, key: str) -> None:
        path = self.path(key)
        if os.path.isdir(path):
            return
        with _translate(f"delete {key}"), contextlib.suppress(FileNotFoundError):
            os.remove(path)

    def list_keys(self, prefix: str = "") -> Iterator[str]:
        directory = validate_prefix(prefix).rpartition("/")[0]
        start = self.path(directory) if directory else self.root
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames.sort()
            rel = os.path.relpath(dirpath, self.root).replace(os.sep, "/")
            for name in sorted(filenames):
                key = name if rel == "." else f"{rel}/{name}"
                if key.startswith(prefix):
                    yield key

    def ping(self) -> None:
        self._check_root()
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise StorageUnavailable(f"local store directory {self.root} is not writable")


class LocalObjectWriter(ObjectWriter):
    """Writes `<root>/_tmp/<uuid>`; commit fsyncs it and renames it into place."""

    def __init__(
        self, store: LocalObjectStore, *, key: str | None = None, replace: bool = False
    ) -> None:
        super().__init__(key)
        self._replace = replace  # put_bytes: overwrite an existing object instead of keeping it
        self._store = store
        tmp_dir = os.path.join(store.root, TMP_PREFIX.rstrip("/"))
        with _translate("create temporary file", missing=False):
            os.makedirs(tmp_dir, exist_ok=True)
            self._tmp_path = os.path.join(tmp_dir, uuid.uuid4().hex)
            self._file: BinaryIO | None = open(self._tmp_path, "xb")  # noqa: SIM115

    def _write(self, data: bytes) -> None:
        if self._file is None:
            raise RuntimeError("the temporary file is not open")
        with _translate("write temporary file", missing=False):
            self._file.write(data)

    def _commit(self, final_key: str) -> None:
        if self._file is None:
            raise RuntimeError("the temporary file is not open")
        final = self._store.path(final_key)
        with _translate(f"commit {final_key}", missing=False):
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
            if not self._replace and os.path.isfile(final):
                os.remove(self._tmp_path)
                return
            parent = os.path.dirname(final)
            os.makedirs(parent, exist_ok=True)
            os.replace(self._tmp_path, final)
            _fsync_dir(parent)

    def _detach(self) -> str:
        """Fsync and close the temporary file and hand it over to the caller (`put_new`)."""
        self._check_open()
        if self._file is None:
            raise RuntimeError("the temporary file is not open")
        with _translate("flush temporary file", missing=False):
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
        self._file = None
        self._state = "committed"
        return self._tmp_path

    def _abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        with contextlib.suppress(FileNotFoundError):
            os.remove(self._tmp_path)
