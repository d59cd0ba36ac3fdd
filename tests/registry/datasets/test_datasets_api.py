"""Dataset uploads through the API, on real PostgreSQL + S3 (and SQLite + folder for smoke)."""

from __future__ import annotations

import hashlib
import json
import re
import uuid

import pytest
from sqlalchemy import func, select

from registry.models import Dataset
from tests.conftest import Caller, World


def chat(i: int, answer: str = "Sure.") -> bytes:
    row = {
        "messages": [
            {"role": "user", "content": f"question {i}"},
            {"role": "assistant", "content": answer},
        ]
    }
    return json.dumps(row).encode() + b"\n"


def upload(
    world: World, who: Caller, body: bytes, name: str = "support", tenant: str | None = None
):  # type: ignore[no-untyped-def]
    return world.http.post(
        f"/v1/tenants/{tenant or who.slug}/datasets",
        headers=who.headers,
        data={"name": name},
        files={"file": ("data.jsonl", body)},
    )


def object_keys(world: World) -> dict[str, str]:
    """Each dataset row's id -> its object key."""
    with world.stack.session() as session:
        rows = session.execute(select(Dataset.id, Dataset.object_key)).all()
    return {str(row_id): key for row_id, key in rows}


def assert_nothing_stored(world: World) -> None:
    with world.stack.session() as session:
        assert session.execute(select(func.count()).select_from(Dataset)).scalar_one() == 0
    assert list(world.stack.store.list_keys("")) == []


@pytest.mark.smoke
def test_upload_dedups_hashes_stores_and_downloads(world: World) -> None:
    acme = world.tenant("acme")
    body = b"".join(chat(i) for i in range(50)) + chat(3) + chat(7)
    resp = upload(world, acme, body)
    assert resp.status_code == 201, resp.text
    ds = resp.json()
    kept = b"".join(chat(i) for i in range(50))
    assert ds["rows"] == 50 and ds["duplicates_dropped"] == 2 and ds["format"] == "chat"
    assert ds["version"] == 1 and ds["created_by"] == acme.client_id
    assert ds["sha256"] == hashlib.sha256(kept).hexdigest() and ds["bytes"] == len(kept)
    assert ds["source_sha256"] == hashlib.sha256(body).hexdigest()
    keys = list(world.stack.store.list_keys(""))
    # streamed straight to a key chosen before the digest was known; the row holds the digest
    assert len(keys) == 1 and re.fullmatch(
        rf"tenants/{acme.tenant_id}/datasets/uploads/[0-9a-f]{{32}}\.jsonl", keys[0]
    )
    assert object_keys(world) == {ds["id"]: keys[0]}
    got = world.http.get(f"/v1/tenants/acme/datasets/{ds['id']}/content", headers=acme.headers)
    assert got.status_code == 200 and got.content == kept
    assert got.headers["x-content-sha256"] == ds["sha256"]
    listed = world.http.get("/v1/tenants/acme/datasets", headers=acme.headers).json()["items"]
    assert [d["id"] for d in listed] == [ds["id"]]


def test_prompt_completion_format(world: World) -> None:
    acme = world.tenant("acme")
    body = b'{"prompt": "2+2?", "completion": "4"}\r\n{"prompt": "3+3?", "completion": "6"}'
    ds = upload(world, acme, body).json()
    assert ds["format"] == "prompt_completion" and ds["rows"] == 2


def test_same_content_is_idempotent_new_content_is_a_new_version(world: World) -> None:
    acme = world.tenant("acme")
    first = upload(world, acme, chat(1))
    again = upload(world, acme, chat(1))
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    second = upload(world, acme, chat(1) + chat(2))
    assert second.status_code == 201 and second.json()["version"] == 2
    other_name = upload(world, acme, chat(1), name="copy")
    assert other_name.status_code == 201 and other_name.json()["version"] == 1
    # the same content under two names is stored once: the second row shares the first's object
    assert len(list(world.stack.store.list_keys(""))) == 2
    keys = object_keys(world)
    assert keys[other_name.json()["id"]] == keys[first.json()["id"]] != keys[second.json()["id"]]


@pytest.mark.smoke
@pytest.mark.parametrize(
    ("body", "line", "needle"),
    [
        (b'{"messages": [{"role": "user", "content": "hi"}]}\n', 1, "assistant"),
        (
            b'{"messages": [{"role": "tool", "content": "x"}, '
            b'{"role": "assistant", "content": "y"}]}\n',
            1,
            "tool_call_id",
        ),
        (
            b'{"messages": [{"role": "user", "content": "  "}, '
            b'{"role": "assistant", "content": "y"}]}\n',
            1,
            "empty",
        ),
        (b'{"prompt": "a", "completion": "b"}\n{"prompt": 1, "completion": "b"}\n', 2, "prompt"),
        (b'{"prompt": "a", "completion": "b"}\n[1, 2]\n', 2, "object"),
        (b'{"prompt": "a", "completion": "b"}\n{"prompt": "a", \n', 2, "JSON"),
        (b'{"prompt": "caf\xe9", "completion": "b"}\n', 1, "UTF-8"),
        (
            b'{"prompt": "a", "completion": "b"}\n{"messages": [{"role": "user", "content": "q"},'
            b' {"role": "assistant", "content": "a"}]}\n',
            2,
            "format",
        ),
        (b"", 0, "empty"),
        (b"\n\n  \n", 0, "no rows"),
    ],
)
def test_invalid_files_get_a_report_and_nothing_is_stored(
    world: World, body: bytes, line: int, needle: str
) -> None:
    acme = world.tenant("acme")
    resp = upload(world, acme, body)
    assert resp.status_code == 422, resp.text
    out = resp.json()
    assert out["error"] == "Unprocessable" and out["detail"]
    first = out["report"]["errors"][0]
    assert first["line"] == line and needle.lower() in first["reason"].lower(), first
    assert_nothing_stored(world)


def test_report_counts_every_bad_line_but_lists_the_first_twenty(world: World) -> None:
    acme = world.tenant("acme")
    body = chat(0) + b"oops\n" * 30 + chat(1)
    report = upload(world, acme, body).json()["report"]
    assert report["invalid"] == 30 and len(report["errors"]) == 20
    assert report["lines"] == 32 and report["errors"][0]["line"] == 2
    assert_nothing_stored(world)


def test_line_over_the_limit(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(world.stack.app.state.settings, "max_line_bytes", 200)
    acme = world.tenant("acme")
    resp = upload(world, acme, chat(0) + chat(1, answer="x" * 500))
    assert resp.status_code == 422
    assert "limit" in resp.json()["report"]["errors"][0]["reason"]
    assert_nothing_stored(world)


def test_file_over_the_upload_limit_is_413(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(world.stack.app.state.settings, "max_upload_bytes", 10_000)
    acme = world.tenant("acme")
    resp = upload(world, acme, b"".join(chat(i) for i in range(2000)))
    assert resp.status_code == 413 and "limit" in resp.json()["detail"]
    assert_nothing_stored(world)


def test_quota_is_413_and_counts_distinct_content_once(world: World) -> None:
    acme = world.tenant("acme", quota_dataset_bytes=3000)
    small = b"".join(chat(i) for i in range(20))  # ~1.4 KB
    assert upload(world, acme, small).status_code == 201
    assert upload(world, acme, small, name="alias").status_code == 201  # same bytes: free
    resp = upload(world, acme, b"".join(chat(i) for i in range(100, 130)), name="more")
    assert resp.status_code == 413 and "quota" in resp.json()["detail"]
    with world.stack.session() as session:
        assert session.execute(select(func.count()).select_from(Dataset)).scalar_one() == 2
    assert len(list(world.stack.store.list_keys(""))) == 1


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"data": {"name": "x"}}, "file"),
        ({"files": {"file": ("a.jsonl", b"{}")}}, "name"),
        ({"data": {"name": "bad name!"}, "files": {"file": ("a.jsonl", b"{}")}}, "name"),
        ({"json": {"name": "x"}}, "multipart"),
        ({"data": {"name": "x"}, "files": {"other": ("a.jsonl", b"{}")}}, "unexpected"),
    ],
)
def test_malformed_requests(world: World, kwargs: dict, needle: str) -> None:
    acme = world.tenant("acme")
    resp = world.http.post("/v1/tenants/acme/datasets", headers=acme.headers, **kwargs)
    assert resp.status_code == 422 and needle in resp.json()["detail"], resp.text
    assert_nothing_stored(world)


def test_other_tenants_dataset_is_404_everywhere(world: World) -> None:
    acme, globex = world.tenant("acme"), world.tenant("globex")
    ds = upload(world, acme, chat(1)).json()
    for path in (
        f"/v1/tenants/globex/datasets/{ds['id']}",
        f"/v1/tenants/globex/datasets/{ds['id']}/content",
        f"/v1/tenants/acme/datasets/{ds['id']}",
    ):
        resp = world.http.get(path, headers=globex.headers)
        assert resp.status_code == 404, path
    assert (
        world.http.get("/v1/tenants/globex/datasets", headers=globex.headers).json()["items"] == []
    )
    resp = world.http.get(f"/v1/tenants/acme/datasets/{uuid.uuid4()}", headers=acme.headers)
    assert resp.status_code == 404
    resp = world.http.get("/v1/tenants/acme/datasets/not-a-uuid", headers=acme.headers)
    assert resp.status_code == 422
