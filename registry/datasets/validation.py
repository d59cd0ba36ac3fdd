"""Streaming validation of training-data JSONL uploads.

The upload arrives in arbitrary byte chunks; a chunk may end mid-line or inside a UTF-8
sequence. `DatasetValidator` holds at most one partial line (bounded by `max_line_bytes`)
plus an 8-byte digest per kept row in a flat table (`DigestSet`: 16-32 bytes a row; a
Python set of 16-byte `bytes` took ~78), so memory does not grow with the size of the rows.
Two different rows share an 8-byte digest with odds ~n²/2⁶⁵ (3e-6 for 10M rows): the later
one would be dropped as a duplicate, an accepted risk.

Contract decisions:

* A chat row must end with an assistant message. Loss is taken on assistant turns, so
  trailing user/system turns are never trained on; they almost always mean a truncated or
  misaligned export, and rejecting them at upload is cheaper than a wasted training run.
* Once a line is invalid the upload will be aborted, so `feed`/`finish` stop returning
  rows: the rows they return are the kept rows before the first invalid line. Validation
  and counting go on to the end, so the report gives totals for the whole file.
* Line length is measured without its "\\n" or "\\r\\n" terminator.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from hashlib import blake2b
from typing import Any, ClassVar

import orjson

from registry.datasets.chat_rows import ChatRows
from registry.datasets.tool_schemas import json_type as _json_type
from registry.datasets.tool_schemas import show as _show

CHAT = "chat"
PROMPT_COMPLETION = "prompt_completion"

_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class LineError:
    line: int  # 1-based line number in the upload; 0 for a file-level problem
    reason: str


@dataclass
class ValidationReport:
    format: str | None = None  # CHAT, PROMPT_COMPLETION, or None while undetermined
    lines: int = 0  # lines seen, blank ones included
    rows: int = 0  # valid rows kept (duplicates dropped)
    duplicates: int = 0  # valid rows dropped as exact duplicates of an earlier row
    invalid: int = 0  # invalid lines (all of them, not only those in `errors`)
    blank: int = 0  # blank or whitespace-only lines, skipped
    tool_rows: int = 0  # kept chat rows with a `tools` list or a tool call
    errors: list[LineError] = field(default_factory=list)  # the first `max_errors` only

    def to_dict(self) -> dict[str, object]:
        return {
            "format": self.format,
            "lines": self.lines,
            "rows": self.rows,
            "duplicates": self.duplicates,
            "invalid": self.invalid,
            "blank": self.blank,
            "tool_rows": self.tool_rows,
            "errors": [{"line": e.line, "reason": e.reason} for e in self.errors],
        }


class DigestSet:
    """A set of non-zero 64-bit ints in one open-addressing table (linear probing).

    8 bytes a slot, kept at most half full, so 16-32 bytes per member; growing briefly holds
    the old and the new table (48 bytes per member at the peak).
    """

    def __init__(self, capacity: int = 1 << 10) -> None:
        self._slots = array("Q", bytes(8 * capacity))
        self._mask = capacity - 1
        self._len = 0

    def __len__(self) -> int:
        return self._len

    def add(self, key: int) -> bool:
        """Adds `key`; False if it was already there."""
        if not 0 < key < 1 << 64:
            raise ValueError("keys are non-zero 64-bit ints")
        slots, mask = self._slots, self._mask
        i = key & mask
        while (found := slots[i]) != 0:
            if found == key:
                return False
            i = (i + 1) & mask
        slots[i] = key
        self._len += 1
        if 2 * self._len > mask:
            self._grow()
        return True

    def _grow(self) -> None:
        old = self._slots
        self._slots = array("Q", bytes(16 * len(old)))
        self._mask = 2 * len(old) - 1
        self._len = 0
        for key in old:
            if key:
                self.add(key)


class DatasetValidator:
    """Validates one upload: call `feed` per chunk, then `finish` once.

    Line handling, limits, de-duplication and the report are the same for every JSONL upload;
    what a row must hold is in the `_row_format` / `_check_format` / `_kept` hooks, which an
    eval-suite validator overrides (registry/suites/validation.py)."""

    FORMAT_LABELS: ClassVar[dict[str, str]] = {CHAT: "chat", PROMPT_COMPLETION: "prompt/completion"}
    FINAL_ASSISTANT: ClassVar[bool] = True  # chat rows end with the assistant turn to learn

    def __init__(
        self,
        *,
        max_line_bytes: int = 1 << 20,
        max_errors: int = 20,
        max_tools: int = 128,
        schema_steps: int = 50_000,
    ) -> None:
        if max_line_bytes < 1:
            raise ValueError("max_line_bytes must be at least 1")
        if max_errors < 1:
            raise ValueError("max_errors must be at least 1")
        self.report = ValidationReport()
        self._max_line_bytes = max_line_bytes
        self._max_errors = max_errors
        self._pending: list[bytes] = []  # pieces of the current partial line
        self._pending_len = 0
        self._skipped: int | None = None  # bytes seen of an over-long line being discarded
        self._skipped_cr = False  # whether the last discarded byte was "\r"
        self._seen = DigestSet()
        self._format_line = 0
        self._finished = False
        self._chat = ChatRows(
            max_tools=max_tools, schema_steps=schema_steps, final_assistant=self.FINAL_ASSISTANT
        )
        self._uses_tools = False  # whether the row just checked has tools or tool calls

    @property
    def ok(self) -> bool:
        rep = self.report
        return self._finished and rep.invalid == 0 and rep.rows > 0

    def feed(self, chunk: bytes) -> list[bytes]:
        """Returns the kept rows that this chunk completes, each as uploaded plus b"\\n"."""
        if self._finished:
            raise RuntimeError("feed() called after finish()")
        out: list[bytes] = []
        if not chunk:
            return out
        parts = chunk.split(b"\n")
        tail = parts.pop()
        if parts:
            head = parts[0]
            if self._skipped is not None:
                self._end_skipped(head)
            elif self._pending:
                self._pending.append(head)
                self._line(b"".join(self._pending), out)
                self._pending.clear()
                self._pending_len = 0
            else:
                self._line(head, out)
            line = self._line
            for i in range(1, len(parts)):
                line(parts[i], out)
        self._hold(tail)
        return out

    def finish(self) -> list[bytes]:
        """Flushes a last line that has no trailing newline and closes the report."""
        if self._finished:
            raise RuntimeError("finish() called twice")
        out: list[bytes] = []
        if self._skipped is not None:
            self._end_skipped(b"")
        elif self._pending:
            self._line(b"".join(self._pending), out)
            self._pending.clear()
            self._pending_len = 0
        self._finished = True
        rep = self.report
        if rep.rows == 0 and rep.invalid == 0:
            if rep.lines == 0:
                self._error(0, "the file is empty; upload at least one row")
            else:
                self._error(0, "the file has no rows, only blank lines; upload at least one row")
        return out

    def _hold(self, piece: bytes) -> None:
        """Keeps the unterminated end of a chunk, or starts discarding an over-long line."""
        if not piece:
            return
        if self._skipped is not None:
            self._skipped += len(piece)
            self._skipped_cr = piece.endswith(b"\r")
            return
        size = self._pending_len + len(piece)
        if size > self._max_line_bytes + 1:  # + 1: a "\r" of a "\r\n" may still follow
            self._skipped = size
            self._skipped_cr = piece.endswith(b"\r")
            self._pending.clear()
            self._pending_len = 0
        else:
            self._pending.append(piece)
            self._pending_len = size

    def _end_skipped(self, head: bytes) -> None:
        if self._skipped is None:
            raise RuntimeError("no over-long line is being skipped")
        size = self._skipped + len(head)
        ends_cr = head.endswith(b"\r") if head else self._skipped_cr
        if ends_cr:
            size -= 1
        self._skipped = None
        self._skipped_cr = False
        self.report.lines += 1
        self._invalid(self.report.lines, self._too_long(size))

    def _too_long(self, size: int) -> str:
        return (
            f"line is {size:,} bytes, over the {self._max_line_bytes:,}-byte limit; "
            "shorten or split this row"
        )

    def _line(self, raw: bytes, out: list[bytes]) -> None:
        rep = self.report
        rep.lines += 1
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        if len(raw) > self._max_line_bytes:
            self._invalid(rep.lines, self._too_long(len(raw)))
            return
        if not raw or raw.isspace():
            rep.blank += 1
            return
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            self._invalid(rep.lines, _json_reason(raw, exc))
            return
        if not isinstance(obj, dict):
            self._invalid(rep.lines, f"expected a JSON object, got {_json_type(obj)}")
            return
        reason = self._check_row(obj, rep.lines)
        if reason is not None:
            self._invalid(rep.lines, reason)
            return
        digest = int.from_bytes(blake2b(raw, digest_size=8).digest(), "little") or 1
        if not self._seen.add(digest):
            rep.duplicates += 1
            return
        rep.rows += 1
        self._kept()
        if not rep.invalid:
            out.append(raw + b"\n")

    def _check_row(self, obj: dict[str, Any], lineno: int) -> str | None:
        kind, reason = self._row_format(obj)
        if kind is None:
            return reason
        fmt = self.report.format
        if fmt is not None and kind != fmt:
            labels = self.FORMAT_LABELS
            return (
                f"this row is in {labels[kind]} format, but line {self._format_line} "
                f"set the file's format to {labels[fmt]}; use one format per file"
            )
        reason = self._check_format(kind, obj)
        if reason is None and fmt is None:
            self.report.format = kind
            self._format_line = lineno
        return reason

    # The hooks a validator of another kind of rows (registry/suites) overrides.

    def _row_format(self, obj: dict[str, Any]) -> tuple[str, None] | tuple[None, str]:
        """The format a row is in, or why it is in none."""
        if "messages" in obj:
            return CHAT, None
        if "prompt" in obj or "completion" in obj:
            return PROMPT_COMPLETION, None
        return None, (
            f'expected "messages" (chat format) or "prompt" and "completion"; found {keys(obj)}'
        )

    def _check_format(self, kind: str, obj: dict[str, Any]) -> str | None:
        """Why a row of format `kind` is invalid, or None."""
        self._uses_tools = False
        if kind == CHAT:
            reason, self._uses_tools, _ = self._chat.check(obj)
            return reason
        return _check_prompt_completion(obj)

    def _kept(self) -> None:
        """Counts a row that passed and is not a duplicate (the last one checked)."""
        self.report.tool_rows += self._uses_tools

    def _invalid(self, lineno: int, reason: str) -> None:
        self.report.invalid += 1
        self._error(lineno, reason)

    def _error(self, lineno: int, reason: str) -> None:
        if len(self.report.errors) < self._max_errors:
            self.report.errors.append(LineError(lineno, reason))


def _check_prompt_completion(obj: dict[str, Any]) -> str | None:
    for key in ("prompt", "completion"):
        if key not in obj:
            return f'missing "{key}"; prompt/completion rows need both'
        value = obj[key]
        if not isinstance(value, str):
            return f'"{key}" must be a string, got {_json_type(value)}'
        if not value or value.isspace():
            return f'"{key}" is empty or only whitespace'
    return None


def _json_reason(raw: bytes, exc: orjson.JSONDecodeError) -> str:
    # orjson's UTF-8 messages carry no position, so find the bad byte ourselves.
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as ude:
        return f"not valid UTF-8 (bad byte at offset {ude.start} in the line); save as UTF-8"
    if raw.startswith(_BOM):
        return "line starts with a UTF-8 byte order mark (BOM); save as UTF-8 without BOM"
    return f"invalid JSON: {exc.msg} at column {exc.colno}"


def keys(obj: dict[str, Any], limit: int = 5) -> str:
    """The first keys of a row, for a reason that says what was found."""
    if not obj:
        return "an empty object"
    shown = ", ".join(_show(k, 30) for k in list(obj)[:limit])
    more = f" and {len(obj) - limit} more" if len(obj) > limit else ""
    return f"keys {shown}{more}"
