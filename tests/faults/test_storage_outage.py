"""The S3 server stops in the middle of a streamed dataset upload: 503 with Retry-After,
nothing stored, and the same upload succeeds once S3 is back."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from registry.app import create_app
from registry.migrate import upgrade
from registry.models import Dataset
from registry.settings import Settings
from registry.storage import S3ObjectStore
from tests.conftest import RecordingQueue, create_database
from tests.faults.harness import assert_unavailable, client, ops_headers, serve
from tests.services import Service, start_s3

PART = 5 << 20  # the smallest S3 part: the multipart upload starts after 5 MiB
BUCKET = "loraplex-faults"
BOUNDARY = "faultsboundary0123456789"


def _rows(n_bytes: int) -> bytes:
    """Distinct rows (duplicates are dropped, and would not reach the store)."""
    out, size, i = [], 0, 0
    while size < n_bytes:
        row = {"prompt": f"Where is order {i}? " * 4, "completion": f"Order {i} ships. " * 4}
        out.append(json.dumps(row).encode() + b"\n")
        size, i = size + len(out[-1]), i + 1
    return b"".join(out)


def _multipart(data: bytes, on_midway: object = None) -> Iterator[bytes]:
    """The form as a stream: `name`, then the file in 1 MiB chunks; `on_midway()` runs once
    1.5 parts have been sent, while the rest of the file is still to come."""
    yield (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="name"\r\n\r\norders\r\n'
        f"--{BOUNDARY}\r\nContent-Disposition: form-data; "
        f'name="file"; filename="orders.jsonl"\r\n'
        "Content-Type: application/jsonl\r\n\r\n"
    ).encode()
    sent = 0
    for i in range(0, len(data), 1 << 20):
        if on_midway is not None and sent >= PART * 3 // 2:
            time.sleep(1.0)  # let the registry store the first part
            on_midway()  # type: ignore[operator]
            on_midway = None
        chunk = data[i : i + (1 << 20)]
        sent += len(chunk)
        yield chunk
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


@pytest.fixture
def s3() -> Iterator[list[Service]]:
    """The S3 server (a list: the test replaces it when it restarts it)."""
    servers = [start_s3()]
    try:
        yield servers
    finally:
        servers[-1].stop()


def test_s3_stopping_mid_upload_is_503_and_stores_nothing(
    s3: list[Service], pg_admin_url: str, tmp_path: Path
) -> None:
    url = create_database(pg_admin_url, f"loraplex_faults_s3_{os.getpid()}")
    upgrade(url)
    endpoint = s3[0].url
    port = int(endpoint.rsplit(":", 1)[1])
    store_kw = {"endpoint_url": endpoint, "region": "us-east-1"}
    S3ObjectStore(BUCKET, **store_kw).create_bucket()  # type: ignore[arg-type]
    settings = Settings(
        home=tmp_path / "home",
        database_url=url,
        object_store=f"s3://{BUCKET}/fault",
        s3_endpoint_url=endpoint,
        s3_region="us-east-1",
        s3_part_size=PART,
        log_json=True,
    )
    app = create_app(settings, queue=RecordingQueue())
    engine = create_engine(url)
    data = _rows(PART * 2)  # two parts: S3 stops after the first was stored
    content_type = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    try:
        with serve(app) as base_url, client(base_url, timeout=120) as http:
            headers = ops_headers(app, http)
            body = {"slug": "acme", "display_name": "Acme"}
            created = http.post("/v1/tenants", json=body, headers=headers)
            assert created.status_code == 201, created.text
            tenant_id = created.json()["id"]
            upload = "/v1/tenants/acme/datasets"

            resp = http.post(
                upload,
                content=_multipart(data, on_midway=s3[0].stop),
                headers={**headers, **content_type},
            )
            assert_unavailable(resp)
            assert "object store" in resp.json()["detail"]
            with engine.connect() as conn:
                assert conn.execute(select(func.count()).select_from(Dataset)).scalar() == 0
            ready = http.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"] == {"database": "ok", "object_store": "unavailable"}

            # S3 back on the same port; moto kept nothing, so the bucket is created again.
            s3.append(start_s3(port))
            S3ObjectStore(BUCKET, **store_kw).create_bucket()  # type: ignore[arg-type]
            resp = http.post(upload, content=_multipart(data), headers={**headers, **content_type})
            assert resp.status_code == 201, resp.text
            dataset = resp.json()
            keys = list(app.state.store.list_keys("tenants/"))
            assert len(keys) == 1
            assert keys[0].startswith(f"tenants/{tenant_id}/datasets/uploads/")
            stored = app.state.store.get_bytes(keys[0])
            assert hashlib.sha256(stored).hexdigest() == dataset["sha256"]
            assert http.get("/readyz").status_code == 200
    finally:
        engine.dispose()
        app.state.engine.dispose()
