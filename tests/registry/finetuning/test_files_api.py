"""`/v1/files` with the official client, in-process, on real PostgreSQL + S3."""

from __future__ import annotations

import json
from collections.abc import Callable

import openai
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from openai import OpenAI
from sqlalchemy import func, select

from registry.models import AuditEvent, Dataset
from registry.models.finetuning import TenantFile
from tests.conftest import World
from tests.registry.test_body_limits import Upload, call

Client = Callable[..., OpenAI]


def chat(i: int) -> bytes:
    row = {
        "messages": [
            {"role": "user", "content": f"question {i}"},
            {"role": "assistant", "content": f"answer {i}"},
        ]
    }
    return json.dumps(row).encode() + b"\n"


def pc(i: int) -> bytes:
    return json.dumps({"prompt": f"p{i}", "completion": f"c{i}"}).encode() + b"\n"


CHAT = b"".join(chat(i) for i in range(5))


def count(world: World, model: type) -> int:
    with world.stack.session() as session:
        return int(session.execute(select(func.count()).select_from(model)).scalar_one())


def test_upload_retrieve_content_and_delete(world: World, openai_for: Client) -> None:
    acme = world.tenant("acme")
    client = openai_for(acme)
    f = client.files.create(file=("support chat.jsonl", CHAT), purpose="fine-tune")
    assert f.id.startswith("file-") and f.object == "file" and f.status == "processed"
    assert f.bytes == len(CHAT) and f.filename == "support chat.jsonl"
    assert f.purpose == "fine-tune" and f.status_details is None and f.expires_at is None
    assert client.files.retrieve(f.id) == f
    assert client.files.content(f.id).content == CHAT
    with world.stack.session() as session:
        ds = session.execute(select(Dataset)).scalar_one()
        assert ds.name == "support-chat" and ds.rows == 5 and ds.format == "chat"
        in_order = select(AuditEvent.action).order_by(AuditEvent.seq)
        actions = session.execute(in_order).scalars().all()
        assert actions[-2:] == ["dataset.create", "file.create"]

    pcf = client.files.create(file=("pc.jsonl", pc(1) + pc(2)), purpose="fine-tune")
    assert pcf.status == "processed" and client.files.content(pcf.id).content == pc(1) + pc(2)

    gone = client.files.delete(f.id)
    assert gone.id == f.id and gone.deleted is True and gone.object == "file"
    for call_ in (client.files.retrieve, client.files.content, client.files.delete):
        with pytest.raises(openai.NotFoundError):
            call_(f.id)
    assert [x.id for x in client.files.list()] == [pcf.id]
    assert count(world, Dataset) == 2  # the dataset version stays (lineage)


def test_same_bytes_twice_are_two_files_over_one_dataset(world: World, openai_for: Client) -> None:
    client = openai_for(world.tenant("acme"))
    a = client.files.create(file=("d.jsonl", CHAT), purpose="fine-tune")
    b = client.files.create(file=("d.jsonl", CHAT), purpose="fine-tune")
    assert a.id != b.id
    assert count(world, Dataset) == 1 and count(world, TenantFile) == 2
    assert len(list(world.stack.store.list_keys(""))) == 1


def test_list_pages_with_after_limit_and_order(world: World, openai_for: Client) -> None:
    client = openai_for(world.tenant("acme"))
    made = [
        client.files.create(file=(f"f{i}.jsonl", chat(i)), purpose="fine-tune").id for i in range(5)
    ]
    newest = list(reversed(made))
    page = client.files.list(limit=2)
    assert [f.id for f in page.data] == newest[:2] and page.has_more
    body = page.model_dump()
    assert body["first_id"] == newest[0] and body["last_id"] == newest[1]
    nxt = client.files.list(limit=2, after=newest[1])
    assert [f.id for f in nxt.data] == newest[2:4] and nxt.has_more
    last = client.files.list(limit=2, after=newest[3])
    assert [f.id for f in last.data] == newest[4:] and not last.has_more
    assert [f.id for f in client.files.list(limit=2)] == newest  # auto-paging follows `after`
    asc = client.files.list(order="asc", limit=3, after=made[0])
    assert [f.id for f in asc.data] == made[1:4] and asc.has_more
    assert client.files.list(purpose="fine-tune-results").data == []
    with pytest.raises(openai.BadRequestError):
        client.files.list(limit=0)


def test_a_bad_row_gives_an_error_file_naming_the_line(world: World, openai_for: Client) -> None:
    client = openai_for(world.tenant("acme"))
    broken = chat(0) + chat(1) + b'{"messages": [\n' + chat(3)
    f = client.files.create(file=("broken.jsonl", broken), purpose="fine-tune")
    assert f.status == "error" and f.status_details is not None
    assert f.status_details.startswith("Line 3:"), f.status_details
    assert client.files.retrieve(f.id).status_details == f.status_details
    no_messages = chat(0) + json.dumps({"text": "hi"}).encode() + b"\n"
    g = client.files.create(file=("rows.jsonl", no_messages), purpose="fine-tune")
    assert g.status == "error" and "Line 2" in (g.status_details or "")
    empty = client.files.create(file=("empty.jsonl", b"\n"), purpose="fine-tune")
    assert empty.status == "error" and "no rows" in (empty.status_details or "")
    with pytest.raises(openai.BadRequestError) as err:
        client.files.content(f.id)
    assert err.value.code == "file_not_kept"
    assert list(world.stack.store.list_keys("")) == [] and count(world, Dataset) == 0
    with world.stack.session() as session:
        row = session.execute(select(TenantFile).where(TenantFile.filename == "broken.jsonl"))
        error = row.scalar_one().error
    assert error is not None and error["line"] == 3 and error["code"] == "invalid_file"


def test_wrong_purpose_and_missing_file_are_400(
    world: World, openai_for: Client, openai_app: FastAPI
) -> None:
    acme = world.tenant("acme")
    client = openai_for(acme)
    with pytest.raises(openai.BadRequestError) as err:
        client.files.create(file=("d.jsonl", CHAT), purpose="assistants")
    assert err.value.code == "unsupported_purpose" and "fine-tune" in err.value.message
    http = TestClient(openai_app)
    form = {"purpose": (None, "fine-tune")}  # multipart without a file part
    resp = http.post("/v1/files", files=form, headers=acme.headers)
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "file", resp.text
    resp = http.post("/v1/files", data={"purpose": "fine-tune"}, headers=acme.headers)
    assert resp.status_code == 400 and "multipart" in resp.json()["error"]["message"]
    assert list(world.stack.store.list_keys("")) == [] and count(world, TenantFile) == 0


def test_over_the_upload_limit_is_413_while_streaming(
    world: World, openai_app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(world.stack.app.state.settings, "max_upload_bytes", 10_000)
    acme = world.tenant("acme")
    head = (
        b'--B\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nfine-tune\r\n'
        b'--B\r\nContent-Disposition: form-data; name="file"; filename="big.jsonl"\r\n\r\n'
    )
    upload = Upload(64 << 20, first=head)
    headers = {"content-type": "multipart/form-data; boundary=B", **acme.headers}
    status, body = call(openai_app, "POST", "/v1/files", upload, headers)
    assert status == 413 and body["error"]["code"] == "too_large", body
    assert upload.taken < 10_000 + (64 << 10) + (1 << 20)  # refused long before the end
    assert list(world.stack.store.list_keys("")) == [] and count(world, TenantFile) == 0


def test_other_tenants_malformed_ids_and_ops_tokens(world: World, openai_for: Client) -> None:
    acme, globex = openai_for(world.tenant("acme")), openai_for(world.tenant("globex"))
    f = acme.files.create(file=("d.jsonl", CHAT), purpose="fine-tune")
    for bad in (f.id, "file-nothex", "nonsense"):
        for call_ in (globex.files.retrieve, globex.files.content, globex.files.delete):
            with pytest.raises(openai.NotFoundError):
                call_(bad)
    assert globex.files.list().data == []
    with pytest.raises(openai.NotFoundError):
        globex.files.list(after=f.id)
    with pytest.raises(openai.PermissionDeniedError):
        openai_for(world.ops).files.list()
    with pytest.raises(openai.PermissionDeniedError):
        openai_for(world.ops).files.create(file=("d.jsonl", CHAT), purpose="fine-tune")
    assert acme.files.retrieve(f.id).id == f.id
