"""Object storage for datasets and adapter artifacts: S3 or a local directory."""

from registry.storage.base import (
    ObjectExists,
    ObjectNotFound,
    ObjectStore,
    ObjectWriter,
    StorageError,
    StorageUnavailable,
    StoredObject,
    validate_key,
)
from registry.storage.factory import open_configured_store, open_store
from registry.storage.local import LocalObjectStore
from registry.storage.s3 import S3ObjectStore

__all__ = [
    "LocalObjectStore",
    "ObjectExists",
    "ObjectNotFound",
    "ObjectStore",
    "ObjectWriter",
    "S3ObjectStore",
    "StorageError",
    "StorageUnavailable",
    "StoredObject",
    "open_configured_store",
    "open_store",
    "validate_key",
]
