"""Bounds shared by every request schema, so that bad input is a 422 with a message, not a 500.

- Integers: `le=INT32_MAX` (INTEGER columns, counts, steps) or `le=INT64_MAX` (BIGINT columns,
  byte counts, offsets). Python ints are unbounded; the database's are not.
- Floats: `allow_inf_nan=False` (Python's json reads NaN, Infinity and 1e999; PostgreSQL's JSON
  refuses them, and clients parsing stored JSON break on them).
- Datetimes in filters: `AwareDatetime` (a naive one cannot be compared with stored UTC times).
- Free-form JSON objects (eval details, drift details, hyperparameters, traffic samples):
  `JsonObject`, which bounds nesting depth, serialized size and numbers.
- NUL characters (PostgreSQL text cannot hold them): refused for every route at once, in the
  decoded path and query and in JSON string escapes, by `registry.bodylimit` with these helpers.
"""

from __future__ import annotations

import json
import math
import re
from typing import Annotated, Any
from urllib.parse import parse_qsl

from pydantic import AfterValidator, AwareDatetime

INT32_MAX = 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_JSON_DEPTH = 32  # containers inside containers
MAX_JSON_FIELD_BYTES = 256 * 1024  # one free-form field, serialized as UTF-8 JSON

__all__ = [
    "INT32_MAX",
    "INT64_MAX",
    "MAX_JSON_DEPTH",
    "MAX_JSON_FIELD_BYTES",
    "AwareDatetime",
    "JsonObject",
    "JsonNulScanner",
    "check_json",
    "nul_in_url",
]


def check_json(value: Any) -> Any:
    """`value` unchanged if it is plain, storable JSON; else a ValueError saying what to fix.

    Walks iteratively (no recursion limit to hit) before serializing to measure the size."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth >= MAX_JSON_DEPTH:
                raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels; flatten it")
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
        elif isinstance(item, float) and not math.isfinite(item):
            raise ValueError("NaN and Infinity are not JSON numbers; send a finite number or null")
        elif isinstance(item, int) and not INT64_MIN <= item <= INT64_MAX:
            raise ValueError("an integer is outside the 64-bit range; send it as a string")
    size = len(json.dumps(value, ensure_ascii=False).encode())
    if size > MAX_JSON_FIELD_BYTES:
        raise ValueError(
            f"{size:,} bytes of JSON; at most {MAX_JSON_FIELD_BYTES // 1024} KiB per field"
        )
    return value


JsonObject = Annotated[dict[str, Any], AfterValidator(check_json)]


NUL_HELP = "contains a NUL character (U+0000), which text fields cannot hold; remove it"
# An escape that decodes to NUL: `\\u0000` after an even run of backslashes (an odd run would
# make it the text "\\u0000"). Backslashes occur only inside JSON strings, so text matching
# this is a NUL or invalid JSON either way.
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
_ESCAPE_LEN = len(b"\\u0000")


def nul_in_url(path: str, query_string: bytes) -> str | None:
    """What to tell a caller whose decoded path or query holds a NUL; None when neither does."""
    if "\x00" in path:
        return f"the URL path {NUL_HELP}"
    if b"%00" not in query_string and b"\x00" not in query_string:
        return None  # the common case, without parsing
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if "\x00" in name:
            return f"a query parameter name {NUL_HELP}"
        if "\x00" in value:
            return f"query parameter {name[:60]!r} {NUL_HELP}"
    return None


class JsonNulScanner:
    """Finds a NUL escape in JSON text that arrives in chunks, in one pass (an escape may
    straddle two chunks: the tail that could still start one is kept for the next)."""

    def __init__(self) -> None:
        self._tail = b""

    def feed(self, chunk: bytes) -> bool:
        """True once the text so far holds a NUL escape."""
        data = self._tail + chunk
        if _JSON_NUL.search(data):
            return True
        keep = max(0, len(data) - _ESCAPE_LEN + 1)
        while keep > 0 and data[keep - 1] == 0x5C:  # the whole backslash run decides parity
            keep -= 1
        self._tail = data[keep:]
        return False
