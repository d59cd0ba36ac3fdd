"""The upload sink of a JSONL file (a dataset, an eval suite): validate, de-duplicate, hash and
store while the file streams. Nothing is visible until `commit`.

What a row must hold is the validator's business and where the rows land is the caller's: an
object key chosen before the first byte (`upload_key`), so the rows stream straight to it (S3:
parts of a multipart upload on that key, several in flight; no temporary object, no copy). The
content's digest is known only at the end and lives in the row (`sha256`); readers follow the
row's `object_key`. One sink serves a tenant's datasets, ops' platform datasets and eval suites.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from registry.datasets.schemas import NAME_PATTERN
from registry.datasets.validation import DatasetValidator, ValidationReport
from registry.errors import PayloadTooLarge, Unprocessable
from registry.storage import ObjectStore, ObjectWriter, StoredObject
from registry.uploads import read_streaming_form

_NAME = re.compile(NAME_PATTERN)


def upload_key(owner: str) -> str:
    """A fresh object key for one upload under `owner` (`tenants/<id>/datasets`, ...).

    Rows stored before uploads streamed to their key sit at `<owner>/sha256/<digest>.jsonl`;
    their rows keep that `object_key`, and later uploads of the same content reuse it."""
    return f"{owner}/uploads/{uuid.uuid4().hex}.jsonl"


def dataset_key(tenant_id: uuid.UUID) -> str:
    return upload_key(f"tenants/{tenant_id}/datasets")


@dataclass(frozen=True)
class IngestLimits:
    """What one upload may keep, and the words its 413s use."""

    max_stored_bytes: int
    max_rows: int
    noun: str = "dataset"  # "the dataset has more than ... rows"
    rows_setting: str = "LORAPLEX_DATASET_MAX_ROWS"
    stored_limit: str = (
        "dataset quota exceeded: this upload is larger than the tenant's whole dataset quota"
    )


class JsonlIngest:
    """A `FileSink` for one JSONL file checked by `validator` and streamed to `key`."""

    def __init__(
        self, store: ObjectStore, *, validator: DatasetValidator, key: str, limits: IngestLimits
    ) -> None:
        self.store, self.validator, self.key, self.limits = store, validator, key, limits
        self.source_hash = hashlib.sha256()
        self.source_bytes = 0
        self.filename = ""
        self.finished = False
        self._writer: ObjectWriter | None = None

    # FileSink
    def begin(self, filename: str, content_type: str) -> None:
        self.filename = filename
        self._writer = self.store.writer(self.key)

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
        lim = self.limits
        if self.validator.report.rows > lim.max_rows:
            raise PayloadTooLarge(
                f"the {lim.noun} has more than {lim.max_rows:,} rows, the limit per {lim.noun} "
                f"({lim.rows_setting}); split it into several {lim.noun}s"
            )

    def _write(self, rows: list[bytes]) -> None:
        if not rows or self.validator.report.invalid:
            return  # an invalid file is refused whole: stop storing at the first bad line
        if self._writer is None:
            raise RuntimeError("the upload was not started")
        self._writer.write(b"".join(rows))
        if self._writer.size > self.limits.max_stored_bytes:
            raise PayloadTooLarge(
                f"{self.limits.stored_limit} of {self.limits.max_stored_bytes:,} bytes"
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

    def summary(self) -> str:
        """Why the file was refused, in one line (the 422's detail; `report` has the rest)."""
        r = self.report
        if not self.finished:
            return "the upload ended before the file was complete"
        if r.invalid:
            first = r.errors[0]
            return (
                f"{r.invalid} of {r.lines} lines are invalid; nothing was stored. "
                f"First: line {first.line}: {first.reason}"
            )
        return r.errors[0].reason if r.errors else "the file has no rows"

    def commit(self) -> StoredObject:
        if self._writer is None:
            raise RuntimeError("the upload was not started")
        if not self.ok:
            raise RuntimeError("an invalid upload cannot be committed")
        return self._writer.commit()

    def abort(self) -> None:
        """Discard what was streamed (S3: abort the multipart upload). Idempotent."""
        if self._writer is not None:
            self._writer.abort()


class DatasetIngest(JsonlIngest):
    """A dataset file: stored under `key`, by default a fresh key among the tenant's datasets."""

    def __init__(
        self,
        store: ObjectStore,
        *,
        max_line_bytes: int,
        max_stored_bytes: int,
        max_rows: int,
        max_tools: int = 128,
        schema_steps: int = 50_000,
        tenant_id: uuid.UUID | None = None,
        key: str | None = None,
    ) -> None:
        if key is None:
            if tenant_id is None:
                raise ValueError("a dataset ingest needs the tenant_id or a key")
            key = dataset_key(tenant_id)
        validator = DatasetValidator(
            max_line_bytes=max_line_bytes, max_tools=max_tools, schema_steps=schema_steps
        )
        super().__init__(
            store,
            validator=validator,
            key=key,
            limits=IngestLimits(max_stored_bytes=max_stored_bytes, max_rows=max_rows),
        )
        self.tenant_id = tenant_id


async def receive(
    ingest: JsonlIngest,
    *,
    content_type: str | None,
    body: AsyncIterator[bytes],
    max_upload_bytes: int,
) -> str:
    """Streams a multipart upload (fields `name` and `file`) into `ingest`; returns the name once
    the whole file is valid. Refusals are 4xx; the caller aborts the ingest on any error."""
    form = await read_streaming_form(
        content_type,
        body,
        sinks={"file": lambda: ingest},
        max_body_bytes=max_upload_bytes + (64 << 10),
    )
    name = form.fields.get("name", "")
    if not _NAME.match(name):
        raise Unprocessable(
            "field 'name' is required: 1-100 characters, letters, digits, '.', '_', '-'"
        )
    if "file" not in form.files:
        raise Unprocessable("field 'file' (the JSONL file) is required")
    if not ingest.ok:
        raise Unprocessable(ingest.summary(), report=ingest.report.to_dict())
    return name
