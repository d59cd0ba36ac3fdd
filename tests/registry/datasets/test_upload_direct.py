"""A dataset upload streams straight to a key chosen before its digest is known: no temporary
object, no server-side copy. Content the tenant already stores is kept once (the new row shares
the first one's object, old `sha256/` keys included), and a refused upload leaves no object and
no open multipart upload."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select, update

from registry.auth.principal import Principal
from registry.datasets.service import datasets
from registry.errors import Unprocessable
from registry.models import Dataset, Tenant
from registry.storage import S3ObjectStore
from tests.conftest import World
from tests.registry.datasets.test_datasets_api import chat, object_keys, upload
from tests.registry.storage.s3_calls import record_calls, s3_store

MiB = 1 << 20


def _s3(world: World) -> S3ObjectStore:
    return s3_store(world.stack.store)


def _open_uploads(store: S3ObjectStore) -> list[object]:
    uploads: list[object] = store.client.list_multipart_uploads(Bucket=store.bucket).get(
        "Uploads", []
    )
    return uploads


def _big(mib: int) -> bytes:
    """About `mib` MiB of distinct ~1 KiB chat rows: several S3 parts of 8 MiB."""
    pad = "x" * 900
    rows = (
        json.dumps(
            {
                "messages": [
                    {"role": "user", "content": f"question {i} {pad}"},
                    {"role": "assistant", "content": f"answer {i}"},
                ]
            }
        ).encode()
        + b"\n"
        for i in range(mib * MiB // 1000)
    )
    return b"".join(rows)


def test_large_upload_goes_straight_to_its_key_and_copies_nothing(world: World) -> None:
    store = _s3(world)
    acme = world.tenant("acme")
    seen = record_calls(
        store, "CopyObject", "UploadPartCopy", "UploadPart", "CompleteMultipartUpload"
    )
    keys: list[str] = []
    store.client.meta.events.register(
        "before-parameter-build.s3.CreateMultipartUpload",
        lambda params, **_: keys.append(params["Key"]),
    )
    body = _big(20)
    resp = upload(world, acme, body)
    assert resp.status_code == 201, resp.text
    ds = resp.json()
    assert ds["sha256"] == hashlib.sha256(body).hexdigest() and ds["bytes"] == len(body)
    assert "CopyObject" not in seen and "UploadPartCopy" not in seen
    parts = -(-len(body) // store.part_size)
    assert parts >= 3 and seen.count("UploadPart") == parts
    assert seen.count("CompleteMultipartUpload") == 1
    final = object_keys(world)[ds["id"]]
    assert re.fullmatch(rf"tenants/{acme.tenant_id}/datasets/uploads/[0-9a-f]{{32}}\.jsonl", final)
    assert keys == [store.prefix + final]  # the multipart upload was on the final key
    assert list(store.list_keys("")) == [final] and _open_uploads(store) == []
    got = world.http.get(f"/v1/tenants/acme/datasets/{ds['id']}/content", headers=acme.headers)
    assert got.status_code == 200 and hashlib.sha256(got.content).hexdigest() == ds["sha256"]


def test_duplicate_content_reuses_the_object_and_aborts_its_own_upload(world: World) -> None:
    store = _s3(world)
    acme = world.tenant("acme")
    body = _big(12)
    first = upload(world, acme, body)
    assert first.status_code == 201, first.text
    aborts = record_calls(store, "AbortMultipartUpload", "CompleteMultipartUpload")
    other = upload(world, acme, body, name="copy")
    assert other.status_code == 201 and other.json()["version"] == 1
    assert other.json()["sha256"] == first.json()["sha256"]
    keys = object_keys(world)
    assert keys[other.json()["id"]] == keys[first.json()["id"]]
    assert aborts == ["AbortMultipartUpload"]  # its parts were sent, then discarded
    assert list(store.list_keys("")) == [keys[first.json()["id"]]]
    assert _open_uploads(store) == []
    again = upload(world, acme, body, name="copy")  # same name, same content: the same row
    assert again.status_code == 200 and again.json()["id"] == other.json()["id"]
    assert len(list(store.list_keys(""))) == 1 and _open_uploads(store) == []


def test_rows_stored_under_old_sha256_keys_stay_readable_and_are_reused(world: World) -> None:
    store = world.stack.store
    acme = world.tenant("acme")
    body = chat(1) + chat(2)
    first = upload(world, acme, body).json()
    # as a row stored before uploads streamed to their key: a content-addressed object
    legacy = f"tenants/{acme.tenant_id}/datasets/sha256/{first['sha256']}.jsonl"
    store.put_bytes(legacy, store.get_bytes(object_keys(world)[first["id"]]))
    store.delete(object_keys(world)[first["id"]])
    with world.stack.session() as session:
        session.execute(update(Dataset).values(object_key=legacy))
        session.commit()
    got = world.http.get(f"/v1/tenants/acme/datasets/{first['id']}/content", headers=acme.headers)
    assert got.status_code == 200 and got.content == body
    other = upload(world, acme, body, name="copy")
    assert other.status_code == 201, other.text
    assert object_keys(world)[other.json()["id"]] == legacy
    assert list(store.list_keys("")) == [legacy]
    got = world.http.get(
        f"/v1/tenants/acme/datasets/{other.json()['id']}/content", headers=acme.headers
    )
    assert got.status_code == 200 and got.content == body


def _nothing_stored(world: World) -> None:
    store = _s3(world)
    with world.stack.session() as session:
        assert session.execute(select(func.count()).select_from(Dataset)).scalar_one() == 0
    assert list(store.list_keys("")) == [] and _open_uploads(store) == []


BOUNDARY = "loraplex-test-boundary"


async def _streamed(data: bytes, *, complete: bool = True) -> AsyncIterator[bytes]:
    """The form in 1 MiB chunks, as the server receives a large upload (the test client would
    hand the app the whole body at once); without `complete` it stops short of its closing
    boundary, like a cut connection."""
    yield (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="name"\r\n\r\nsupport\r\n'
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="d.jsonl"\r\n'
        "Content-Type: application/jsonl\r\n\r\n"
    ).encode()
    for i in range(0, len(data), MiB):
        yield data[i : i + MiB]
    if complete:
        yield f"\r\n--{BOUNDARY}--\r\n".encode()


@pytest.mark.parametrize(
    ("tail", "complete", "words"),
    [(b'{"messages": "nope"}\n', True, "line 20972"), (b"", False, "closing boundary")],
    ids=["bad-last-row", "cut-short"],
)
def test_refused_after_several_parts_leaves_no_object_and_no_open_upload(
    world: World, tail: bytes, complete: bool, words: str
) -> None:
    world.tenant("acme")
    parts = record_calls(_s3(world), "UploadPart", "AbortMultipartUpload")
    data = _big(20)
    assert data.count(b"\n") == 20971

    async def go() -> None:
        with world.stack.session() as session:
            tenant = session.execute(select(Tenant).where(Tenant.slug == "acme")).scalar_one()
            await datasets.upload(
                session,
                actor=Principal.local_operator(),
                tenant=tenant,
                content_type=f"multipart/form-data; boundary={BOUNDARY}",
                body=_streamed(data + tail, complete=complete),
                store=world.stack.store,
                settings=world.stack.app.state.settings,
            )

    with pytest.raises(Unprocessable, match=words):
        asyncio.run(go())
    assert parts.count("UploadPart") >= 2 and parts[-1] == "AbortMultipartUpload"
    _nothing_stored(world)


def test_over_the_quota_mid_stream_leaves_no_object_and_no_open_upload(world: World) -> None:
    acme = world.tenant("acme", quota_dataset_bytes=10 * MiB)
    parts = record_calls(_s3(world), "UploadPart", "AbortMultipartUpload")
    resp = upload(world, acme, _big(20))
    assert resp.status_code == 413, resp.text
    assert "UploadPart" in parts and parts[-1] == "AbortMultipartUpload"
    _nothing_stored(world)
