"""The dataset upload sink: validate, de-duplicate, hash and store while the file streams."""

from __future__ import annotations

import hashlib
import uuid

from registry.datasets.validation import DatasetValidator, ValidationReport
from registry.errors import PayloadTooLarge
from registry.storage import ObjectStore, ObjectWriter, StoredObject


def dataset_key(tenant_id: uuid.UUID, sha256: str) -> str:
    return f"tenants/{tenant_id}/datasets/sha256/{sha256}.jsonl"


class DatasetIngest:
    """A `FileSink` for one dataset file. Nothing is visible until `commit`."""

    def __init__(
        self,
        store: ObjectStore,
        *,
        tenant_id: uuid.UUID,
        max_line_bytes: int,
        max_stored_bytes: int,
        max_rows: int,
        max_tools: int = 128,
        schema_steps: int = 50_000,
    ) -> None:
        self.store, self.tenant_id = store, tenant_id
        self.max_stored_bytes, self.max_rows = max_stored_bytes, max_rows
        self.validator = DatasetValidator(
            max_line_bytes=max_line_bytes, max_tools=max_tools, schema_steps=schema_steps
        )
        self.source_hash = hashlib.sha256()
        self.source_bytes = 0
        self.filename = ""
        self.finished = False
        self._writer: ObjectWriter | None = None

    # FileSink
    def begin(self, filename: str, content_type: str) -> None:
        self.filename = filename
        self._writer = self.store.writer()

    def feed(self, data: bytes) -> None:
        self.source_hash.update(data)
        self.source_bytes += len(data)
        self._write(self.validator.feed(data))
        self._check_rows()

    def end(self) -> None:
        self._write(self.validator.finish())
        self._check_rows()
        self.finished = True

    def _check_rows(self) -> None:
        """Kept rows are bounded: de-duplication holds a digest for each."""
        if self.validator.report.rows > self.max_rows:
            raise PayloadTooLarge(
                f"the dataset has more than {self.max_rows:,} rows, the limit per dataset "
                "(LORAPLEX_DATASET_MAX_ROWS); split it into several datasets"
            )

    def _write(self, rows: list[bytes]) -> None:
        if not rows or self.validator.report.invalid:
            return  # an invalid file is refused whole: stop storing at the first bad line
        if self._writer is None:
            raise RuntimeError("the upload was not started")
        self._writer.write(b"".join(rows))
        if self._writer.size > self.max_stored_bytes:
            raise PayloadTooLarge(
                f"dataset quota exceeded: this upload is larger than the tenant's whole "
                f"dataset quota of {self.max_stored_bytes:,} bytes"
            )

    @property
    def report(self) -> ValidationReport:
        return self.validator.report

    @property
    def ok(self) -> bool:
        return self.finished and self.validator.ok

    @property
    def stored_bytes(self) -> int:
        return self._writer.size if self._writer else 0

    @property
    def sha256(self) -> str:
        if self._writer is None:
            raise RuntimeError("the upload was not started")
        return self._writer.sha256

    def commit(self) -> StoredObject:
        if self._writer is None:
            raise RuntimeError("the upload was not started")
        if not self.ok:
            raise RuntimeError("an invalid upload cannot be committed")
        return self._writer.commit(lambda digest: dataset_key(self.tenant_id, digest))

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.abort()
