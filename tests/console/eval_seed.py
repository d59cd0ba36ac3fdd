"""Helpers for the evals, drift, audit and alias-action page tests: reading the HTML (stdlib
parser only) and seeding suites and per-row scores the way the workers record them."""

from __future__ import annotations

import json
import uuid
from html.parser import HTMLParser
from typing import Any

from registry.adapters.service import adapters
from registry.auth.principal import Principal
from registry.db import run_unit_of_work
from registry.evals.schemas import EvalCreate
from registry.evals.service import evals
from registry.models import EvalSuite
from registry.tenants.repository import TenantRepository
from tests.conftest import World

VOID = {"input", "br", "img", "meta", "link", "hr", "col", "source", "wbr", "area", "base"}


class _Find(HTMLParser):
    """Collects elements matching a predicate: (attrs, text, inner markup)."""

    def __init__(self, match: Any) -> None:
        super().__init__(convert_charrefs=True)
        self.match = match
        self.open: list[list[Any]] = []  # [tag, depth, attrs, text parts, markup parts]
        self.found: list[tuple[dict[str, str], str, str]] = []
        self.depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        raw = self.get_starttag_text() or ""
        for item in self.open:
            item[4].append(raw)
        if tag in VOID:
            return
        self.depth += 1
        if self.match(tag, a):
            self.open.append([tag, self.depth, a, [], []])

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        raw = self.get_starttag_text() or ""
        for item in self.open:
            item[4].append(raw)
        if self.match(tag, {k: v or "" for k, v in attrs}):
            self.found.append(({k: v or "" for k, v in attrs}, "", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        for item in self.open:
            item[4].append(f"</{tag}>")
        if self.open and self.open[-1][1] == self.depth and self.open[-1][0] == tag:
            _, _, a, text, markup = self.open.pop()
            markup.pop()  # its own end tag
            self.found.append((a, " ".join(" ".join(text).split()), "".join(markup)))
        self.depth -= 1

    def handle_data(self, data: str) -> None:
        for item in self.open:
            item[3].append(data)
            item[4].append(data)


def find(html: str, match: Any) -> list[tuple[dict[str, str], str, str]]:
    parser = _Find(match)
    parser.feed(html)
    return parser.found


def by_id(html: str, element_id: str) -> tuple[dict[str, str], str, str]:
    """(attributes, text, inner markup) of the element with this id; AssertionError if none."""
    hits = find(html, lambda _t, a: a.get("id") == element_id)
    assert hits, f"no element #{element_id}"
    return hits[0]


def rows(html: str, attr: str) -> dict[str, str]:
    """Text of each `tr[attr]`, keyed by the attribute's value."""
    return {a[attr]: text for a, text, _ in find(html, lambda t, a: t == "tr" and attr in a)}


def suite_row(i: int, check: dict[str, Any] | None = None) -> bytes:
    body = {
        "id": f"q-{i}",
        "messages": [{"role": "user", "content": f"question number {i}"}],
        "checks": [check or {"type": "contains", "value": f"answer {i}"}],
    }
    return json.dumps(body).encode() + b"\n"


def upload_suite(world: World, slug: str, headers: dict[str, str], name: str, n: int) -> str:
    resp = world.http.post(
        f"/v1/tenants/{slug}/eval-suites",
        headers=headers,
        data={"name": name},
        files={"file": ("suite.jsonl", b"".join(suite_row(i) for i in range(n)))},
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


def pin(world: World, slug: str, headers: dict[str, str], adapter: str, *names: str) -> None:
    resp = world.http.put(
        f"/v1/tenants/{slug}/adapters/{adapter}/eval-suites",
        headers=headers,
        json={"suites": [{"name": n} for n in names]},
    )
    assert resp.status_code == 200, resp.text


def score(
    world: World,
    slug: str,
    adapter: str,
    version: int,
    suite_id: str | None,
    passed: list[bool] | None = None,
    *,
    subject: str = "version",
    suite: str | None = None,
    metrics: dict[str, float] | None = None,
) -> None:
    """Record a score as the workers do: per-row results in details, the suite's id set."""
    details: dict[str, Any] = {}
    if passed is not None:
        details["rows"] = [
            {
                "i": i,
                "id": f"q-{i}",
                "passed": ok,
                "checks": {"contains": ok},
                "loss": None,
                "output": f"v{version} says {'answer' if ok else 'nothing'} {i}",
            }
            for i, ok in enumerate(passed)
        ]
        metrics = metrics or {"pass_rate": sum(passed) / len(passed), "rows": float(len(passed))}
    for session in run_unit_of_work(world.stack.app.state.sessionmaker):
        tenant = TenantRepository(session).get_by_slug(slug)
        assert tenant is not None
        found = adapters.get(session, tenant=tenant, name=adapter)
        label = suite
        if label is None and suite_id is not None:
            row = session.get(EvalSuite, uuid.UUID(suite_id))
            assert row is not None
            label = f"{row.name}:v{row.version}"
        evals.record(
            session,
            actor=Principal.local_operator("test-worker"),
            tenant=tenant,
            adapter=found,
            number=version,
            data=EvalCreate(
                suite=label or "suite",
                subject=subject,  # type: ignore[arg-type]
                metrics=metrics or {},
                details=details,
            ),
            suite_id=uuid.UUID(suite_id) if suite_id else None,
        )
