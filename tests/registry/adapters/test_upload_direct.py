"""An adapter upload streams its weights straight to the version's key: no temporary object,
no server-side copy, and nothing left behind when the file or anything after it fails."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from registry.models import AdapterVersion
from registry.storage import S3ObjectStore, StorageUnavailable
from tests.registry.adapters.conftest import AdapterWorld
from tests.registry.adapters.fakes import safetensors_bytes
from tests.registry.storage.s3_calls import record_calls, s3_store


def _s3(aw: AdapterWorld) -> S3ObjectStore:
    return s3_store(aw.world.stack.store)


def _nothing_stored(aw: AdapterWorld) -> None:
    store = _s3(aw)
    with aw.world.stack.session() as session:
        assert session.execute(select(func.count()).select_from(AdapterVersion)).scalar_one() == 0
    assert list(store.list_keys("")) == []
    assert store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", []) == []


def test_upload_writes_only_the_versions_keys_and_copies_nothing(aw: AdapterWorld) -> None:
    store = _s3(aw)
    copies = record_calls(store, "CopyObject", "UploadPartCopy")
    keys: list[str] = []
    store.client.meta.events.register(
        "before-parameter-build.s3.PutObject", lambda params, **_: keys.append(params["Key"])
    )
    resp = aw.upload()
    assert resp.status_code == 201, resp.text
    v = resp.json()
    prefix = f"{store.prefix}tenants/{aw.acme.tenant_id}/adapters/"
    assert keys and all(k.startswith(prefix) and f"/versions/{v['id']}/" in k for k in keys)
    assert copies == []


def test_bad_weights_after_several_parts_leave_no_object_and_no_open_upload(
    aw: AdapterWorld,
) -> None:
    """20 MiB of weights, parts already sent, refused only when the file is all read."""
    parts = record_calls(_s3(aw), "UploadPart")
    weights = safetensors_bytes({"not.a.lora.weight": ("F32", [5 << 20])})
    resp = aw.upload(weights=weights)
    assert resp.status_code == 422, resp.text
    assert len(parts) >= 2
    _nothing_stored(aw)


def test_failure_after_the_files_are_stored_withdraws_them(
    aw: AdapterWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(*_: Any, **__: Any) -> None:
        raise StorageUnavailable("audit anchor store is down")

    monkeypatch.setattr("registry.adapters.upload.audit.record", down)
    resp = aw.upload()
    assert resp.status_code == 503, resp.text
    _nothing_stored(aw)
