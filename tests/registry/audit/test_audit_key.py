"""The audit HMAC key: generated once in development, required in production, never short."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from registry.auth.keys import load_audit_key
from registry.settings import Settings


def test_development_generates_one_key_and_keeps_it(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    key = load_audit_key(settings)
    assert len(key) == 64 and load_audit_key(settings) == key
    assert settings.resolved_audit_key_file.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in settings.resolved_audit_key_file.parent.iterdir()] == ["audit-hmac.key"]


def test_production_requires_the_key_file(tmp_path: Path) -> None:
    given: dict[str, Any] = {
        "environment": "production",
        "database_url": "postgresql://x/y",
        "object_store": "s3://b",
        "jwt_private_key_file": tmp_path / "jwt.pem",
    }
    with pytest.raises(ValidationError, match="LORAPLEX_AUDIT_KEY_FILE"):
        Settings(**given)
    missing = Settings(**given, audit_key_file=tmp_path / "audit.key")
    with pytest.raises(RuntimeError, match="does not exist"):
        load_audit_key(missing)


def test_a_short_key_is_refused(tmp_path: Path) -> None:
    (tmp_path / "audit.key").write_text("too-short\n")
    with pytest.raises(RuntimeError, match="shorter than 32 bytes"):
        load_audit_key(Settings(home=tmp_path, audit_key_file=tmp_path / "audit.key"))
