"""Local copies of adapter versions, keyed by version id, and cleanup of stored prefixes.

Same scheme as the base-model copies in `registry/base_models/local_copy.py`: download into a
temporary sibling folder, check each file's sha256, rename into place.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from registry.base_models.local_copy import DigestMismatch, download, publish
from registry.settings import Settings
from registry.storage import ObjectStore


def adapter_path(
    store: ObjectStore, *, version_id: str, prefix: str, files: dict[str, dict], settings: Settings
) -> Path:
    """A verified local copy of an adapter version's files (those its manifest lists)."""
    dest = settings.resolved_cache_dir / "adapters" / version_id
    if dest.is_dir():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{version_id[:8]}-", dir=dest.parent))
    try:
        for name, meta in sorted(files.items()):
            got = download(store, f"{prefix}/{name}", tmp / name)
            if got != meta["sha256"]:
                raise DigestMismatch(
                    f"adapter file {name}: sha256 {got}, manifest says {meta['sha256']}"
                )
        return publish(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def delete_prefix(store: ObjectStore, prefix: str) -> int:
    keys = list(store.list_keys(prefix.rstrip("/") + "/"))
    for key in keys:
        store.delete(key)
    return len(keys)
