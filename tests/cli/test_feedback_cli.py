"""`loraplex feedback` against the real registry app (in-process, over its HTTP API): a rating,
a text correction, a correction file with tool calls, and the errors a person sees."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from cli import app
from cli.client import Api
from registry.models import Feedback
from tests.conftest import World
from tests.registry.traffic.test_feedback import CHAT, Traffic


@pytest.fixture
def traffic(world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Traffic:
    """The CLI logged in as acme's client, talking to the test registry."""
    traffic = Traffic(world, tmp_path / "tiny-base")
    token = traffic.headers["acme"]["Authorization"].removeprefix("Bearer ")

    def load(cls: type[Api]) -> Api:
        api = Api({"url": "https://testserver", "token": token, "expires_at": 1e12,
                   "tenant": "acme"})  # fmt: skip
        api.http = world.http  # type: ignore[assignment]
        return api

    monkeypatch.setattr(Api, "load", classmethod(load))
    return traffic


def _run(*args: str, code: int = 0, stdin: str | None = None) -> str:
    result = CliRunner().invoke(app, ["feedback", *args], input=stdin)
    assert result.exit_code == code, result.output
    return " ".join(result.output.replace("│", " ").split())  # usage errors come boxed, wrapped


def test_rate_then_correct_by_text_and_by_file(traffic: Traffic, tmp_path: Path) -> None:
    rid = traffic.request("acme", record=CHAT)
    out = _run(rid, "--rating", "-1", "--comment", "wrong")
    assert f"feedback on {rid} (support v1): rating -1" in out
    out = _run(rid, "--rating", "0", "--correct", "Write to jane@example.com.")
    assert f"replaced the feedback on {rid} (support v1): rating 0, corrected" in out
    assert "redacted before storing: email 1" in out
    calls = [
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function",
         "function": {"name": "lookup_order", "arguments": "{\"id\": 7}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "shipped"},
        {"role": "assistant", "content": "It shipped."},
    ]  # fmt: skip
    path = tmp_path / "fix.json"
    path.write_text(json.dumps(calls))
    _run(rid, "--rating=1", "--correction-file", str(path))
    with traffic.world.stack.session() as s:
        row = s.scalars(select(Feedback).where(Feedback.request_id == rid)).one()
        assert row.rating == 1 and row.correction == calls and row.comment == ""
    _run(rid, "-r", "1", "--correction-file", "-", stdin=json.dumps(calls[-1]))
    with traffic.world.stack.session() as s:
        row = s.scalars(select(Feedback).where(Feedback.request_id == rid)).one()
        assert row.correction == [calls[-1]]


def test_errors_a_person_can_act_on(traffic: Traffic, tmp_path: Path) -> None:
    unsampled = traffic.request("acme")
    out = _run(unsampled, "--rating", "1")
    assert "not sampled" in out
    out = _run("req-never-sent", "--rating", "1", code=1)
    assert "error 404: no request 'req-never-sent' of yours" in out
    theirs = traffic.request("globex")
    assert "error 404" in _run(theirs, "--rating", "1", code=1)
    out = _run(unsampled, "--rating", "2", code=2)
    assert "less than or equal to 1" in out
    out = _run(unsampled, "--rating", "1", "--correct", "a", "--correction-file", "-", code=2)
    assert "not both" in out
    bad = tmp_path / "bad.json"
    bad.write_text("{'role': 'assistant'}")
    assert "is not JSON" in _run(unsampled, "--rating", "1", "--correction-file", str(bad), code=2)
    out = _run(unsampled, "--rating", "1", "--correction-file", "-", code=1,
               stdin=json.dumps({"role": "user", "content": "x"}))  # fmt: skip
    assert 'error 422: correction: message 1: role "user"' in out


def test_the_client_posts_to_the_tenants_feedback_route(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = {
            "request_id": "r1",
            "adapter": "a",
            "version": 2,
            "rating": 1,
            "corrected": False,
            "replaced": False,
            "redactions": {},
            "captured": "full",
        }
        return httpx.Response(201, json=answer)  # fmt: skip

    def load(cls: type[Api]) -> Api:
        api = Api({"url": "http://registry", "token": "t", "expires_at": 1e12, "tenant": "acme"})
        api.http = httpx.Client(base_url="http://registry", transport=httpx.MockTransport(handler))
        return api

    monkeypatch.setattr(Api, "load", classmethod(load))
    _run("r1", "--rating", "1", "--tenant", "globex", "--comment", "nice")
    assert [r.url.path for r in seen] == ["/v1/tenants/globex/feedback"]
    assert json.loads(seen[0].content) == {"request_id": "r1", "rating": 1, "comment": "nice"}
