"""Engine names: the immutable name vLLM knows an adapter version by.

`lpx-<version uuid hex>`: one per version, never reused (version ids are never reused), so it
cannot collide across tenants or versions, and a promotion changes the name the gateway sends,
which is what makes the next request use the new version with nothing stale cached.
"""

from __future__ import annotations

import re
import uuid

PREFIX = "lpx-"
_NAME = re.compile(r"^lpx-([0-9a-f]{32})$")


def engine_name(version_id: uuid.UUID) -> str:
    return f"{PREFIX}{version_id.hex}"


def parse_engine_name(name: str) -> uuid.UUID | None:
    """The version id an engine name stands for, or None if it is not one of ours."""
    m = _NAME.match(name)
    return uuid.UUID(hex=m.group(1)) if m else None


def lora_int_id(version_id: uuid.UUID) -> int:
    """A positive 63-bit integer from the version's primary key (vLLM wants an int id > 0).

    vLLM 0.32's resolver path replaces it with its own counter; names stay the identity."""
    return (version_id.int >> 65) or 1
