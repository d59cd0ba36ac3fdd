"""S3 limits and the translation of botocore's exceptions into StorageError subclasses."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError, NoCredentialsError
from botocore.exceptions import ConnectionError as BotoConnectionError

from registry.storage.base import ObjectExists, ObjectNotFound, StorageError, StorageUnavailable

MIN_PART_SIZE = 5 << 20  # S3's minimum for every part but the last
MAX_PART_SIZE = 5 << 30
MAX_PARTS = 10_000
_NOT_FOUND = ("404", "NoSuchKey", "NotFound")
# A conditional put lost: the object exists (412), or a concurrent conditional put won (409).
_EXISTS = ("PreconditionFailed", "412", "ConditionalRequestConflict")
_OUTAGE = ("InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "500", "503")
_UNUSABLE = ("NoSuchBucket", "403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch")


@contextmanager
def translate(what: str, *, ignore: tuple[str, ...] = ()) -> Iterator[None]:
    """Turn botocore exceptions into StorageError subclasses; swallow error codes in `ignore`."""
    try:
        yield
    except ClientError as e:
        code = str(e.response.get("Error", {}).get("Code", ""))
        if code in ignore:
            return
        if code in _EXISTS:
            raise ObjectExists(f"{what}: an object already exists there") from e
        if code in _NOT_FOUND:
            raise ObjectNotFound(f"{what}: no such object") from e
        status = int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        # 5xx (after botocore's retries) and throttling: the store is down, not our request.
        unusable = code in _UNUSABLE or code in _OUTAGE or status >= 500
        error = StorageUnavailable if unusable else StorageError
        raise error(f"{what}: {code} {e.response['Error'].get('Message', '')}".strip()) from e
    except (BotoConnectionError, HTTPClientError, NoCredentialsError) as e:
        raise StorageUnavailable(f"{what}: {e}") from e
    except BotoCoreError as e:
        raise StorageError(f"{what}: {e}") from e
