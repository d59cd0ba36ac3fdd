"""The one resolver (registry/adapters/resolve.py): version references, model strings, and the
version they name for one tenant, on the real database; and the registry's version routes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, update

from registry.adapters.resolve import (
    VERSION_MAX,
    ModelRef,
    parse_model,
    parse_version,
    resolve,
)
from registry.errors import NotFound, Unprocessable
from registry.models import Adapter
from tests.registry.adapters.conftest import AdapterWorld

THIRTY_DIGITS = "1" * 30
# Each reads as a number to someone: int() takes '٣' (Arabic-Indic three), isdigit() takes '²'.
BAD_VERSIONS = [
    "", "v", "V", "0", "v0", "v01", "007", "v٣", "٣", "v²", "²", THIRTY_DIGITS,
    f"v{VERSION_MAX + 1}", "v-1", "+1", " 1", "1 ", "1\n", "1.0", "1_0", "x1", "vv1", "v 1",
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "number"),
    [("7", 7), ("v7", 7), ("V7", 7), ("10", 10), (f"v{VERSION_MAX}", VERSION_MAX)],
)
def test_version_references(text: str, number: int) -> None:
    assert parse_version(text) == number


@pytest.mark.parametrize("text", BAD_VERSIONS)
def test_anything_else_is_not_a_version_and_says_what_is(text: str) -> None:
    with pytest.raises(Unprocessable) as err:
        parse_version(text)
    assert "is not a version number: use 7 or v7" in err.value.detail
    assert err.value.status_code == 422


@pytest.mark.parametrize(
    ("model", "ref"),
    [
        ("support", ModelRef("support", "production")),
        ("support@production", ModelRef("support", "production")),
        ("support@candidate", ModelRef("support", "candidate")),
        ("support@v3", ModelRef("support", 3)),
        ("support@V3", ModelRef("support", 3)),
        ("support@3", ModelRef("support", 3)),
        ("my.adapter-2@canary_1", ModelRef("my.adapter-2", "canary_1")),
        ("S" * 100 + "@" + "a" * 40, ModelRef("S" * 100, "a" * 40)),
    ],
)
def test_model_string_forms(model: str, ref: ModelRef) -> None:
    assert parse_model(model) == ref


@pytest.mark.parametrize(
    "model",
    [
        *(f"support@{bad}" for bad in ("v0", "v01", "0", THIRTY_DIGITS, f"v{VERSION_MAX + 1}")),
        "support@v٣", "support@v²", "support@٣", "", "@v1", "support@", "support@@v1", "a@b@c",
        "support@Candidate", "support@prod!", "support@v1\n", "support\n", "../x", "sup port",
        "ṡupport", "x" * 101, "support@" + "a" * 41, "support@" + "v" * 10_000,
    ],
)  # fmt: skip
def test_model_strings_refused_with_a_422(model: str) -> None:
    with pytest.raises(Unprocessable) as err:
        parse_model(model)
    assert len(err.value.detail) < 400  # the input is cut short, never echoed whole


@contextmanager
def selects(aw: AdapterWorld) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_c: Any, _cur: Any, sql: str, *_: Any) -> None:
        if sql.lstrip().upper().startswith("SELECT"):
            seen.append(sql)

    engine = aw.world.stack.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_resolves_every_form_for_its_own_tenant_in_two_statements(aw: AdapterWorld) -> None:
    for _ in range(3):
        assert aw.upload().status_code == 201
    assert aw.set_alias("production", 2).status_code == 200
    assert aw.set_alias("candidate", 3).status_code == 200
    acme = uuid.UUID(aw.acme.tenant_id)
    with aw.world.stack.session() as session:

        def number(model: str) -> int:
            found = resolve(session, tenant_id=acme, model=parse_model(model))
            assert found.adapter.name == "support" and found.adapter.tenant_id == acme
            return found.version.version

        forms = {"support": 2, "support@production": 2, "support@candidate": 3}
        forms |= {"support@v3": 3, "support@V3": 3, "support@3": 3, "support@v1": 1}
        for model, expected in forms.items():
            with selects(aw) as seen:
                assert number(model) == expected, model
            assert len(seen) == 2, (model, seen)  # the adapter, then the version (alias joined)


def test_missing_archived_and_other_tenants_are_the_same_not_found(aw: AdapterWorld) -> None:
    assert aw.upload().status_code == 201
    acme = uuid.UUID(aw.acme.tenant_id)
    globex = uuid.UUID(aw.world.tenant("globex").tenant_id)
    with aw.world.stack.session() as session:

        def missing(tenant: uuid.UUID, model: str) -> str:
            with pytest.raises(NotFound) as err:
                resolve(session, tenant_id=tenant, model=parse_model(model))
            return err.value.detail

        assert missing(acme, "support@v9") == "adapter 'support' has no version 9"
        assert missing(acme, "support@nightly") == "adapter 'support' has no 'nightly' alias"
        assert "promote a version, or name one: 'support@v1'" in missing(acme, "support")
        unknown = missing(acme, "nothing")
        assert unknown == "adapter 'nothing' not found"
        # acme's adapter: globex cannot tell it exists
        assert missing(globex, "support@v1") == "adapter 'support' not found"
        assert missing(globex, "support") == "adapter 'support' not found"
        session.execute(update(Adapter).values(archived_at=Adapter.created_at))
        session.expire_all()
        assert missing(acme, "support@v1") == "adapter 'support' not found"


def test_an_alias_cannot_be_named_like_a_version(aw: AdapterWorld) -> None:
    assert aw.upload().status_code == 201
    for name in ("v1", "v01", "v2147483648"):
        resp = aw.set_alias(name, 1)
        assert resp.status_code == 422 and "reads as a version number" in resp.text, name
    assert aw.set_alias("v1-stable", 1).status_code == 200
    assert aw.set_alias("production", VERSION_MAX + 1).status_code == 422
    assert aw.set_alias("production", VERSION_MAX).status_code == 404


def test_version_routes_answer_422_or_404_never_500(aw: AdapterWorld) -> None:
    assert aw.upload().status_code == 201
    base = "/v1/tenants/acme/adapters/support/versions"
    eval_body = {"suite": "s", "metrics": {"acc": 1.0}}

    def calls(ref: str) -> list[tuple[str, str, dict[str, Any] | None]]:
        return [
            ("GET", f"{base}/{ref}", None),
            ("GET", f"{base}/{ref}/files/manifest.json", None),
            ("GET", f"{base}/{ref}/evals", None),
            ("POST", f"{base}/{ref}/evals", eval_body),
            ("GET", f"{base}/{ref}/compare?with=v1", None),
            ("GET", f"{base}/v1/compare?with={ref}", None),
            ("GET", f"{base}/{ref}/lineage", None),
        ]

    for ref in ("v٣", "٣", "v²", "²", THIRTY_DIGITS, f"v{THIRTY_DIGITS}", "v0", "v01", "x1"):
        for method, path, body in calls(ref):
            resp = aw.http.request(method, path, json=body, headers=aw.acme.headers)
            assert resp.status_code == 422, (path, resp.status_code, resp.text)
            assert "is not a version number" in resp.json()["detail"], path
    for method, path, body in calls(str(VERSION_MAX)):  # well-formed, absent
        resp = aw.http.request(method, path, json=body, headers=aw.acme.headers)
        assert resp.status_code == 404, (path, resp.status_code, resp.text)
