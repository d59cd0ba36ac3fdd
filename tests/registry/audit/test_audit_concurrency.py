"""Concurrent mutations against a real server process: the audit chain stays gapless and valid."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.live import LiveRegistry, start_registry

N = 20


@pytest.fixture
def live(pg_admin_url: str, s3_endpoint: str) -> Iterator[LiveRegistry]:
    with start_registry(pg_admin_url, s3_endpoint) as registry:
        yield registry


def _concurrently(
    live: LiveRegistry, requests: list[tuple[str, str, dict]]
) -> list[httpx.Response]:
    """Send each (method, path, json) from its own thread and client, all at once."""
    headers = live.bearer()
    start = threading.Barrier(len(requests))  # release them all at once

    def send(req: tuple[str, str, dict]) -> httpx.Response:
        method, path, body = req
        with live.http() as http:
            start.wait(timeout=30)
            return http.request(method, path, json=body, headers=headers)

    with ThreadPoolExecutor(max_workers=len(requests)) as pool:
        return list(pool.map(send, requests))


def test_concurrent_mutations_keep_the_audit_chain_gapless(live: LiveRegistry) -> None:
    slugs = [f"tenant-{i:02d}" for i in range(N)]
    created = _concurrently(
        live, [("POST", "/v1/tenants", {"slug": s, "display_name": s}) for s in slugs]
    )
    assert [r.status_code for r in created] == [201] * N, [r.text for r in created]

    # A second wave mixing two kinds of mutation, on different tenant rows.
    mixed = _concurrently(
        live,
        [
            ("POST", f"/v1/tenants/{s}/clients", {"name": "c"})
            if i % 2
            else ("PATCH", f"/v1/tenants/{s}", {"display_name": f"{s} renamed"})
            for i, s in enumerate(slugs)
        ],
    )
    assert [r.status_code for r in mixed] == [201 if i % 2 else 200 for i in range(N)]

    expected = 1 + N + N  # the ops client (created by the CLI), then the two waves
    headers = live.bearer()
    with live.http() as http:
        verify = http.get("/v1/audit/verify", headers=headers)
        page = http.get("/v1/audit/events", params={"limit": 1000}, headers=headers)
    assert verify.status_code == 200 and page.status_code == 200
    assert verify.json() == {
        "ok": True,
        "events_checked": expected,
        "first_bad_seq": None,
        "reason": None,
        "legacy_events": 0,
        "anchors": 0,
        "last_anchor_seq": None,
        "object_lock": False,
        "first_bad_chain": None,
        "first_bad_chain_seq": None,
        "chains": 1 + N,  # the platform's and one per tenant
        "checkpoints": 0,
        "last_checkpoint_seq": None,
        "legacy_anchors": 0,
        "tenant": None,
    }
    events = page.json()["items"]
    # seq is increasing, not gapless (a sequence); inside each chain chain_seq is gapless
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and len(seqs) == expected
    chains: dict[str, list[dict]] = {}
    for e in events:
        chains.setdefault(e["chain"], []).append(e)
    assert len(chains) == 1 + N
    for chain in chains.values():
        assert [e["chain_seq"] for e in chain] == list(range(1, len(chain) + 1))
        assert chain[0]["prev_hash"] == "0" * 64
        assert all(b["prev_hash"] == a["hash"] for a, b in zip(chain, chain[1:], strict=False))
    assert Counter(e["action"] for e in events) == {
        "client.create": 1 + N // 2,
        "tenant.create": N,
        "tenant.update": N // 2,
    }
    assert sorted(e["target_id"] for e in events if e["action"] == "tenant.create") == slugs
