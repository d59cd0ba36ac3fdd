"""Traffic ingestion (POST /v1/tenants/{tenant}/traffic) and the drift-policy API."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from registry.models import TrafficSample
from tests.conftest import World
from tests.registry.training.conftest import JobWorld

# starlette's TestClient answers with httpx or httpx2 responses, whichever is installed
Response = Any


TRAFFIC = "/v1/tenants/acme/traffic"
POLICY = "/v1/tenants/acme/adapters/support/drift-policy"
CHAT = {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]}


class TrafficWorld(JobWorld):
    """JobWorld plus versions 1 (production) and 2 of 'support'."""

    def __init__(self, world: World, base_dir: Path) -> None:
        super().__init__(world, base_dir)
        for _ in range(2):
            assert self.upload().status_code == 201
        assert self.set_alias("production", 1).status_code == 200
        resp = self.http.get(
            "/v1/tenants/acme/adapters/support/versions", headers=self.acme.headers
        )
        self.version_ids = {v["version"]: v["id"] for v in resp.json()["items"]}

    def post(self, samples: list[Any], headers=None, tenant: str = "acme", **body: Any) -> Response:  # type: ignore[no-untyped-def]
        return self.http.post(
            f"/v1/tenants/{tenant}/traffic",
            json={"adapter": "support", "samples": samples, **body},
            headers=headers or self.acme.headers,
        )

    def stored(self) -> list[TrafficSample]:
        with self.world.stack.session() as session:
            stmt = select(TrafficSample).order_by(TrafficSample.id)
            return list(session.execute(stmt).scalars())

    def add_adapter(self, name: str) -> None:
        resp = self.http.post(
            "/v1/tenants/acme/adapters",
            headers=self.acme.headers,
            json={"name": name, "base_model": "tiny", "training": {"rank": 4}},
        )
        assert resp.status_code == 201, resp.text

    def put_policy(self, **body: Any) -> Response:
        return self.http.put(POLICY, json=body, headers=self.world.ops.headers)


@pytest.fixture
def tw(world: World, tmp_path: Path) -> TrafficWorld:
    return TrafficWorld(world, tmp_path / "tiny-base")


# --- traffic ---------------------------------------------------------------------------------


def test_samples_default_to_the_production_version(tw: TrafficWorld) -> None:
    samples = [{"prompt": "where is my order?"}, CHAT]
    resp = tw.post(samples)
    assert resp.status_code == 201, resp.text
    assert resp.json() == {"adapter": "support", "version": 1, "accepted": 2, "redacted": 0}
    rows = tw.stored()
    assert [r.record for r in rows] == samples
    assert {r.source for r in rows} == {"api"}
    assert {str(r.version_id) for r in rows} == {tw.version_ids[1]}
    assert {str(r.tenant_id) for r in rows} == {tw.acme.tenant_id}
    events = tw.http.get(
        "/v1/audit/events", params={"action": "traffic.ingest"}, headers=tw.world.ops.headers
    ).json()["items"]
    assert [e["details"] for e in events] == [
        {"adapter": "support", "version": 1, "samples": 2, "redacted": 0}
    ]


def test_an_explicit_version(tw: TrafficWorld) -> None:
    resp = tw.post([{"prompt": "a"}], version=2)
    assert resp.status_code == 201, resp.text
    assert resp.json()["version"] == 2
    resp = tw.post([{"prompt": "b"}], version=2, headers=tw.world.ops.headers)  # ops may too
    assert resp.status_code == 201, resp.text
    assert [str(r.version_id) for r in tw.stored()] == [tw.version_ids[2]] * 2


@pytest.mark.parametrize(
    ("bad", "needle"),
    [
        ({"completion": "no prompt"}, "got keys ['completion']"),
        ({"prompt": "a", "messages": []}, "got keys ['messages', 'prompt']"),
        ({"prompt": "   "}, '"prompt" must be a non-empty string'),
        ({"prompt": 7}, '"prompt" must be a non-empty string'),
        ({"messages": []}, '"messages" must be a non-empty list'),
        ({"messages": [{"role": "user", "content": ""}]}, "message 1: content"),
        ({"messages": [{"role": "assistant", "content": "hello"}]}, "no user message"),
        ({"messages": [CHAT["messages"][1], {"role": "bot", "content": "x"}]}, "message 2: role"),
        ({"prompt": "x" * (32 * 1024)}, "larger than 32 KiB"),
    ],
)
def test_one_bad_sample_stores_nothing(tw: TrafficWorld, bad: dict, needle: str) -> None:
    resp = tw.post([CHAT, bad, {"prompt": "fine"}])
    assert resp.status_code == 422, resp.text
    body = resp.json()
    assert body["error"] == "Unprocessable"
    assert "1 of 3 samples" in body["detail"] and "nothing was stored" in body["detail"]
    (problem,) = body["problems"]
    assert problem.startswith("samples[1]: ") and needle in problem
    assert tw.stored() == []


def test_every_bad_sample_is_named_up_to_ten(tw: TrafficWorld) -> None:
    resp = tw.post([{"prompt": ""}] * 12 + [CHAT])
    assert resp.status_code == 422
    body = resp.json()
    assert "12 of 13 samples" in body["detail"]
    assert [p.split(":")[0] for p in body["problems"]] == [f"samples[{i}]" for i in range(10)]
    assert tw.stored() == []


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"samples": []}, "samples"),
        ({"samples": [{"prompt": "a"}] * 1001}, "samples"),
        ({"samples": [{"prompt": "a"}], "version": 0}, "version"),
        ({"samples": [{"prompt": "a"}], "version": 10**30}, "version"),
        ({"samples": [{"prompt": "a"}], "model": "x"}, "model"),
        ({"samples": "hello"}, "samples"),
    ],
)
def test_malformed_requests_are_422(tw: TrafficWorld, body: dict, needle: str) -> None:
    resp = tw.http.post(TRAFFIC, json={"adapter": "support", **body}, headers=tw.acme.headers)
    assert resp.status_code == 422, resp.text
    assert needle in resp.json()["detail"]
    assert tw.stored() == []


def test_unknown_adapter_version_or_another_tenants_adapter_is_404(tw: TrafficWorld) -> None:
    resp = tw.post([CHAT], adapter="nope")
    assert resp.status_code == 404 and "'nope'" in resp.json()["detail"]
    resp = tw.post([CHAT], version=9)
    assert resp.status_code == 404 and "version 9" in resp.json()["detail"]
    globex = tw.world.tenant("globex")
    resp = tw.post([CHAT], headers=globex.headers, tenant="globex")  # acme's adapter name
    assert resp.status_code == 404 and "'support'" in resp.json()["detail"]
    assert tw.stored() == []


def test_traffic_logging_off_is_409(tw: TrafficWorld) -> None:
    url = "/v1/tenants/acme/traffic-logging"
    resp = tw.http.put(url, json={"enabled": False}, headers=tw.acme.headers)
    assert resp.status_code == 200
    resp = tw.post([CHAT])
    assert resp.status_code == 409 and "traffic logging is off" in resp.json()["detail"]
    assert "'acme'" in resp.json()["detail"]
    assert tw.stored() == []
    tw.http.put(url, json={"enabled": True}, headers=tw.acme.headers)
    assert tw.post([CHAT]).status_code == 201


def test_no_production_alias_needs_a_version(tw: TrafficWorld) -> None:
    tw.add_adapter("faq")
    assert tw.upload(adapter="faq").status_code == 201
    resp = tw.post([CHAT], adapter="faq")
    assert resp.status_code == 409, resp.text
    detail = resp.json()["detail"]
    assert "'faq' has no production version" in detail and "`version`" in detail
    assert tw.stored() == []
    resp = tw.post([CHAT], adapter="faq", version=1)
    assert resp.status_code == 201 and resp.json()["version"] == 1


def test_a_body_above_8_mib_is_413(tw: TrafficWorld) -> None:
    big = {"adapter": "support", "samples": [{"prompt": "x" * (8 * 2**20)}]}
    resp = tw.http.post(TRAFFIC, json=big, headers=tw.acme.headers)
    assert resp.status_code == 413, resp.text
    assert resp.json()["error"] == "PayloadTooLarge"
    assert "8 MiB" in resp.json()["detail"]
    assert tw.stored() == []


def test_a_streamed_body_above_8_mib_is_413_even_without_a_length(tw: TrafficWorld) -> None:
    """Chunked, no Content-Length: the limit holds while reading, before any parsing."""

    def chunks():  # type: ignore[no-untyped-def]
        yield b'{"adapter": "support", "samples": [{"prompt": "'
        for _ in range(9):
            yield b"x" * 2**20
        yield b'"}]}'

    resp = tw.http.post(TRAFFIC, content=chunks(), headers=tw.acme.headers)
    assert "content-length" not in {k.lower() for k in resp.request.headers}
    assert resp.status_code == 413, resp.text
    assert tw.stored() == []


def test_malformed_json_is_422_and_stores_nothing(tw: TrafficWorld) -> None:
    resp = tw.http.post(
        TRAFFIC, content=b'{"adapter": "support", "samples": [', headers=tw.acme.headers
    )
    assert resp.status_code == 422, resp.text
    assert "json" in resp.text.lower()
    assert tw.stored() == []


# --- drift policy ----------------------------------------------------------------------------


def test_policy_defaults(tw: TrafficWorld) -> None:
    resp = tw.put_policy()
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["tenant"], body["adapter"]) == ("acme", "support")
    assert body["metric"] == "prompt_length_psi" and body["threshold"] == 0.2
    assert (body["window"], body["cooldown"]) == ("1d", "1w")
    assert body["min_samples"] == 200 and body["enabled"] is True
    assert body["datasets"] == "latest" and body["dataset_names"] is None
    assert body["last_outcome"] == "" and body["last_job_id"] is None
    assert body["updated_by"] == tw.world.ops.client_id
    resp = tw.http.get(POLICY, headers=tw.acme.headers)  # the tenant reads it
    assert resp.status_code == 200 and resp.json() == body


@pytest.mark.parametrize(
    ("body", "threshold"),
    [
        ({"metric": "unigram_jsd"}, 0.1),
        ({"metric": "oov_rate"}, 0.1),
        ({"metric": "prompt_length_psi"}, 0.2),
        ({"metric": "unigram_jsd", "threshold": 0.35}, 0.35),
    ],
)
def test_policy_thresholds(tw: TrafficWorld, body: dict, threshold: float) -> None:
    resp = tw.put_policy(**body)
    assert resp.status_code == 200, resp.text
    assert resp.json()["metric"] == body["metric"] and resp.json()["threshold"] == threshold


@pytest.mark.parametrize(
    ("window", "shown"),
    [("90m", "90m"), ("PT12H", "12h"), (3600, "1h"), ("24h", "1d"), ("P7D", "1w"), (90, "90s")],
)
def test_policy_durations(tw: TrafficWorld, window: Any, shown: str) -> None:
    resp = tw.put_policy(window=window, cooldown=window)
    assert resp.status_code == 200, resp.text
    assert resp.json()["window"] == shown and resp.json()["cooldown"] == shown


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"metric": "perplexity"}, "metric"),
        ({"threshold": 0}, "threshold"),
        ({"threshold": -0.5}, "threshold"),
        ({"window": "soon"}, "'soon'"),
        ({"window": 0}, "positive"),
        ({"cooldown": "P1X"}, "'P1X'"),
        ({"min_samples": 0}, "min_samples"),
        ({"bogus": 1}, "bogus"),
        ({"dataset_names": ["nope"]}, "'nope'"),
    ],
)
def test_bad_policy_is_422_and_nothing_is_stored(tw: TrafficWorld, body: dict, needle: str) -> None:
    resp = tw.put_policy(**body)
    assert resp.status_code == 422, resp.text
    assert needle in resp.json()["detail"]
    assert tw.http.get(POLICY, headers=tw.acme.headers).status_code == 404


def test_policy_on_unknown_or_archived_adapter(tw: TrafficWorld) -> None:
    resp = tw.http.put(
        "/v1/tenants/acme/adapters/nope/drift-policy", json={}, headers=tw.world.ops.headers
    )
    assert resp.status_code == 404 and "nope" in resp.json()["detail"]
    tw.http.post("/v1/tenants/acme/adapters/support/archive", headers=tw.acme.headers)
    resp = tw.put_policy()
    assert resp.status_code == 409 and "archived" in resp.json()["detail"]


def test_policy_replace_delete_and_audit(tw: TrafficWorld) -> None:
    assert tw.put_policy(window="7d").status_code == 200
    resp = tw.put_policy(metric="oov_rate", enabled=False, dataset_names=["chat"])
    body = resp.json()
    assert (body["metric"], body["threshold"], body["window"]) == ("oov_rate", 0.1, "1d")
    assert body["enabled"] is False and body["dataset_names"] == ["chat"]
    assert tw.http.get(POLICY, headers=tw.acme.headers).json() == body
    resp = tw.http.delete(POLICY, headers=tw.world.ops.headers)
    assert resp.status_code == 204
    resp = tw.http.get(POLICY, headers=tw.acme.headers)
    assert resp.status_code == 404 and "no drift policy" in resp.json()["detail"]
    assert tw.http.delete(POLICY, headers=tw.world.ops.headers).status_code == 404

    def audited(action: str) -> list[dict]:
        resp = tw.http.get(
            "/v1/audit/events", params={"action": action}, headers=tw.world.ops.headers
        )
        return [e for e in resp.json()["items"]]

    sets = audited("drift_policy.set")
    assert [(e["details"]["metric"], e["details"]["window_seconds"]) for e in sets] == [
        ("prompt_length_psi", 7 * 86400),
        ("oov_rate", 86400),
    ]
    assert sets[0]["details"]["threshold"] == 0.2 and sets[0]["details"]["adapter"] == "support"
    (deleted,) = audited("drift_policy.delete")
    assert deleted["details"] == {"adapter": "support"}
    for event in [*sets, deleted]:
        assert event["actor"] == tw.world.ops.client_id
        assert event["tenant_id"] == tw.acme.tenant_id
        assert uuid.UUID(event["target_id"])


def test_posted_prompts_are_redacted_before_they_are_stored(tw: TrafficWorld) -> None:
    """Prompts from a tenant's own stack get the gateway's redaction: built-ins by default, the
    adapter's own patterns when it has capture settings."""
    resp = tw.http.put(
        "/v1/tenants/acme/adapters/support/traffic-capture",
        json={"redact_patterns": [{"name": "TICKET", "pattern": "TCK-[0-9]{4}"}]},
        headers=tw.acme.headers,
    )
    assert resp.status_code == 200, resp.text
    samples = [{"prompt": "mail pat@example.com about TCK-1234"}, CHAT]
    resp = tw.post(samples)
    assert resp.status_code == 201, resp.text
    assert resp.json()["redacted"] == 1
    rows = tw.stored()[-2:]
    assert rows[0].record == {"prompt": "mail [REDACTED:EMAIL] about [REDACTED:TICKET]"}
    assert rows[1].record == CHAT
    assert [r.redactions for r in rows] == [{"email": 1, "TICKET": 1}, {}]
