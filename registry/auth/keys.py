"""The token signing key. Development generates one under LORAPLEX_HOME; production must give it."""

from __future__ import annotations

import os
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
    path.parent.mkdir(parents=True, exist_ok=True)
    key = RSAKey.generate_key(2048, private=True)
    pem = key.as_pem(private=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    os.replace(tmp, path)


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
