"""The one way to read a version reference (`7`, `v7`) and a model string (`adapter`,
`adapter@alias`, `adapter@vN`) and turn it into a version of one tenant's adapter.

The registry's routes parse `{version}` here; the gateway resolves `model` here and keeps only
its own error shapes. A reference is a version number when it is `[vV]?[0-9]+` (ASCII digits
only: `int()` would take '٣' and `str.isdigit()` takes '²'), otherwise an alias name.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from sqlalchemy.orm import Session

from registry.adapters.repository import AdapterRepository, VersionRepository
from registry.adapters.schemas import NAME_PATTERN, VERSION_MAX
from registry.aliases.schemas import ALIAS_PATTERN
from registry.errors import NotFound, Unprocessable
from registry.models import Adapter, AdapterVersion

DEFAULT_ALIAS = "production"

_VERSION_LIKE = re.compile(r"[vV]?[0-9]+")
_VERSION = re.compile(r"[vV]?([1-9][0-9]{0,9})")
_NAME = re.compile(NAME_PATTERN)
_ALIAS = re.compile(ALIAS_PATTERN)


@dataclass(frozen=True)
class ModelRef:
    """A parsed model string: the adapter's name and a version number or an alias name."""

    adapter: str
    ref: int | str  # int: a version number; str: an alias


@dataclass(frozen=True)
class Resolved:
    adapter: Adapter
    version: AdapterVersion


def _shown(text: str) -> str:
    """Quoted, control characters escaped, cut short: `text` is whatever the caller sent."""
    return repr(text if len(text) <= 64 else f"{text[:61]}...")


def is_version_ref(text: str) -> bool:
    """Whether `text` reads as a version number (valid or not) rather than an alias name."""
    return _VERSION_LIKE.fullmatch(text) is not None


def parse_version(text: str) -> int:
    """'7', 'v7' or 'V7' -> 7; anything else is a 422 saying what a version number looks like."""
    m = _VERSION.fullmatch(text)
    if m is None or int(m.group(1)) > VERSION_MAX:
        raise Unprocessable(
            f"{_shown(text)} is not a version number: use 7 or v7 "
            f"(ASCII digits, no leading zero, 1 to {VERSION_MAX})"
        )
    return int(m.group(1))


def parse_model(text: str) -> ModelRef:
    """`adapter` (its production alias), `adapter@alias`, `adapter@vN` or `adapter@N`."""
    name, at, ref = text.partition("@")
    if _NAME.fullmatch(name):
        if not at:
            return ModelRef(name, DEFAULT_ALIAS)
        if is_version_ref(ref):
            return ModelRef(name, parse_version(ref))
        if _ALIAS.fullmatch(ref):
            return ModelRef(name, ref)
    raise Unprocessable(
        f"{_shown(text)} is not an adapter reference: an adapter name (up to 100 letters, digits, "
        "'.', '_' or '-'), then optionally '@' and an alias (up to 40 lowercase letters, digits, "
        "'_' or '-') or a version (7 or v7)"
    )


def resolve(session: Session, *, tenant_id: uuid.UUID, model: ModelRef) -> Resolved:
    """The version `model` names among `tenant_id`'s active adapters, whatever its status.

    Two statements: the adapter, then the version (by number, or joined through the alias).
    Another tenant's adapter and an archived one are NotFound exactly like a missing one."""
    adapter = AdapterRepository(session, tenant_id).get_by_name(model.adapter)
    if adapter is None or adapter.archived_at is not None:
        raise NotFound(f"adapter '{model.adapter}' not found")
    versions = VersionRepository(session, tenant_id)
    if isinstance(model.ref, int):
        version = versions.get(adapter.id, model.ref)
        if version is None:
            raise NotFound(f"adapter '{adapter.name}' has no version {model.ref}")
    else:
        version = versions.get_by_alias(adapter.id, model.ref)
        if version is None:
            hint = f"; promote a version, or name one: '{adapter.name}@v1'"
            raise NotFound(
                f"adapter '{adapter.name}' has no '{model.ref}' alias"
                + (hint if model.ref == DEFAULT_ALIAS else "")
            )
    return Resolved(adapter, version)
