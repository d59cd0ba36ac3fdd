"""Open an object store from a URL (`s3://bucket/prefix` or `file:///abs/path`)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse, urlsplit
from urllib.request import url2pathname

from registry.settings import Settings
from registry.storage.base import ObjectStore
from registry.storage.local import LocalObjectStore
from registry.storage.s3 import S3ObjectStore


def open_store(
    url: str,
    *,
    s3_endpoint_url: str | None = None,
    s3_region: str | None = None,
    s3_access_key_id: str | None = None,
    s3_secret_access_key: str | None = None,
    part_size: int = 8 << 20,
    timeout_s: float = 30.0,
    create_bucket: bool = False,
) -> ObjectStore:
    """Build the store for `url`. Credentials left out fall back to boto3's default chain.

    `create_bucket` creates a missing S3 bucket or local root directory (development, tests).
    Nothing is contacted unless `create_bucket` is set; call `ping()` to check connectivity.
    """
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        raise ValueError(f"object store URL must not have a query or fragment: {url!r}")
    if parts.scheme == "s3":
        if not parts.netloc:
            raise ValueError(f"S3 URL has no bucket: {url!r}")
        store = S3ObjectStore(
            parts.netloc,
            unquote(parts.path),
            endpoint_url=s3_endpoint_url,
            region=s3_region,
            access_key_id=s3_access_key_id,
            secret_access_key=s3_secret_access_key,
            part_size=part_size,
            timeout_s=timeout_s,
        )
        if create_bucket:
            store.create_bucket()
        return store
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"file URL must be file:///absolute/path: {url!r}")
        return LocalObjectStore(unquote(parts.path), create=create_bucket)
    raise ValueError(f"unsupported object store URL (use s3:// or file://): {url!r}")


def open_configured_store(settings: Settings) -> ObjectStore:
    """The store the settings name (the registry, workers and the engine's resolver all use it)."""
    url = settings.resolved_object_store
    if url.startswith("file://"):
        Path(url2pathname(urlparse(url).path)).mkdir(parents=True, exist_ok=True)
    return open_store(
        url,
        s3_endpoint_url=settings.s3_endpoint_url,
        s3_region=settings.s3_region,
        s3_access_key_id=settings.s3_access_key_id,
        s3_secret_access_key=settings.s3_secret_access_key,
        part_size=settings.s3_part_size,
        create_bucket=settings.s3_create_bucket,
    )
