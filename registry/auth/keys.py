"""The token signing key and the audit HMAC key. Development generates them under LORAPLEX_HOME;
production must give them."""

from __future__ import annotations

import contextlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joserfc.jwk import KeySet, RSAKey

from registry.settings import Settings


@dataclass(frozen=True)
class SigningKeys:
    private: KeySet  # signs (the one current key)
    public: KeySet  # verifies and is published at /.well-known/jwks.json

    def jwks(self) -> dict[str, Any]:
        return dict(self.public.as_dict(private=False))


def _write_new_key(path: Path) -> None:
    """Create the key unless another process did first: processes started together (the
    registry and the gateway under `loraplex up`) must all end up with the same key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    key = RSAKey.generate_key(2048, private=True)
    pem = key.as_pem(private=True)
    tmp = path.with_name(f"{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    with contextlib.suppress(FileExistsError):  # theirs is as good: keep it
        os.link(tmp, path)
    os.unlink(tmp)


def load_signing_keys(settings: Settings) -> SigningKeys:
    path = settings.resolved_jwt_key_file
    if not path.exists():
        if settings.environment != "development":
            raise RuntimeError(f"JWT signing key {path} does not exist")
        _write_new_key(path)
    key = RSAKey.import_key(path.read_bytes())
    kid = key.thumbprint()
    private = KeySet([RSAKey.import_key(key.as_dict(private=True) | {"kid": kid, "use": "sig"})])
    public = KeySet(
        [RSAKey.import_key(key.as_dict(private=False) | {"kid": kid, "use": "sig", "alg": "RS256"})]
    )
    return SigningKeys(private=private, public=public)


MIN_AUDIT_KEY_BYTES = 32


def load_audit_key(settings: Settings) -> bytes:
    """The audit chain's HMAC key: the file's bytes (whitespace trimmed), at least 32 of them.

    Development generates a random one under LORAPLEX_HOME; production must give the file.
    Keep it out of the database and its backups: whoever holds it can re-chain the log.
    """
    path = settings.resolved_audit_key_file
    if not path.exists():
        if settings.environment != "development":
            raise RuntimeError(f"audit HMAC key {path} (LORAPLEX_AUDIT_KEY_FILE) does not exist")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{secrets.token_hex(8)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32) + "\n")
        with contextlib.suppress(FileExistsError):  # another process made one first: keep it
            os.link(tmp, path)
        os.unlink(tmp)
    key = path.read_bytes().strip()
    if len(key) < MIN_AUDIT_KEY_BYTES:
        raise RuntimeError(f"audit HMAC key {path} is shorter than {MIN_AUDIT_KEY_BYTES} bytes")
    return key
