"""Teacher keys, read where workers run: a file named after the secret in the secrets folder
(LORAPLEX_SECRETS_DIR, a mounted Kubernetes secret; default home/secrets), else an environment
variable of that name. The registry stores only the name."""

from __future__ import annotations

import os
import re
from pathlib import Path

from registry.settings import Settings

# A file name and an environment variable name at once: no path separators, no "..".
SECRET_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.-]{0,199}$"
_NAME = re.compile(SECRET_NAME_PATTERN)


def secrets_dir(settings: Settings) -> Path:
    return (settings.secrets_dir or settings.home_dir / "secrets").expanduser()


def read_secret(settings: Settings, name: str) -> str | None:
    """The secret's value (surrounding whitespace stripped), or None when neither exists."""
    if not _NAME.match(name) or ".." in name:
        raise ValueError(f"secret name {name!r} is not a plain file or variable name")
    path = secrets_dir(settings) / name
    try:
        value = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        value = ""
    except (IsADirectoryError, PermissionError) as exc:
        raise ValueError(f"secret file {path} cannot be read: {exc.strerror}") from exc
    if value:
        return value
    value = os.environ.get(name, "").strip()
    return value or None
