"""Every endpoint x every kind of caller, with the expected status.

A new endpoint joins by one line in ENDPOINTS, naming its access class. Paths use the route's
own parameter names, filled from the world built for each case: {tenant} is acme (the "other"
caller is globex), {dataset_id} one of its datasets, {name} its adapter `support` with ready
version 1 and alias `production`, {base} the base model `tiny`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from registry.console.session import COOKIE, csrf_for
from tests.conftest import World
from tests.lora_files import make_adapter, make_base_model
from tests.registry.traffic.test_feedback import seed_request

CALLERS = ["own", "other", "ops", "auditor", "none", "expired", "foreign_key", "disabled"]

# access class -> expected status per caller ("2xx" = any success)
# Scope checks come before the tenant lookup, so a tenant calling an ops-only endpoint on
# another tenant gets 403 (it could not act on its own tenant either), never a hint of existence.
_UNAUTH = {"none": 401, "expired": 401, "foreign_key": 401, "disabled": 401}
ACCESS: dict[str, dict[str, int | str]] = {
    "public": dict.fromkeys(CALLERS, "2xx"),
    "tenant_read": {"own": "2xx", "other": 404, "ops": "2xx", "auditor": "2xx", **_UNAUTH},
    "tenant_write": {"own": "2xx", "other": 404, "ops": "2xx", "auditor": 403, **_UNAUTH},
    "ops_write": {"own": 403, "other": 403, "ops": "2xx", "auditor": 403, **_UNAUTH},
    "platform_read": {"own": "2xx", "other": "2xx", "ops": "2xx", "auditor": "2xx", **_UNAUTH},
    "audit": {"own": 403, "other": 403, "ops": "2xx", "auditor": "2xx", **_UNAUTH},
    "base_model_write": {"own": 403, "other": 403, "ops": "2xx", "auditor": 403, **_UNAUTH},
    # the owner is let in, then told there is no traffic to curate in this world
    "tenant_write_no_traffic": {"own": 422, "other": 404, "ops": 422, "auditor": 403, **_UNAUTH},
    # the owner is let in, then told a split needs a second version (this world has one)
    "tenant_write_one_version": {"own": 422, "other": 404, "ops": 422, "auditor": 403, **_UNAUTH},
    # The console (HTML, /console): the caller's token travels in the session cookie instead of
    # the Authorization header, forms carry the session's CSRF field, statuses are exact (a
    # signed-out caller gets the sign-in page with 401; a form answers 303 to the page to see).
    "console_public": dict.fromkeys(CALLERS, 200),
    # ops and auditors see every tenant; a tenant is sent (303) to its own pages
    "console_home": {"own": 303, "other": 303, "ops": 200, "auditor": 200, **_UNAUTH},
    "console_read": {"own": 200, "other": 404, "ops": 200, "auditor": 200, **_UNAUTH},
    "console_write": {"own": 303, "other": 404, "ops": 303, "auditor": 403, **_UNAUTH},
    "console_audit": {"own": 403, "other": 403, "ops": 200, "auditor": 200, **_UNAUTH},
    "console_sign_out": {"own": 303, "other": 303, "ops": 303, "auditor": 303, **_UNAUTH},
    "console_no_page": {"own": 404, "other": 404, "ops": 404, "auditor": 404, **_UNAUTH},
}

JSONL = b'{"prompt": "2+2?", "completion": "4"}\n{"prompt": "3+3?", "completion": "6"}\n'
SUITE = b'{"prompt": "2+2=", "checks": [{"type": "exact", "value": "4"}]}\n'


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    access: str
    json: Callable[[dict[str, str]], Any] | None = None
    files: Callable[[], dict[str, Any]] | None = None
    data: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def _fresh(prefix: str) -> str:
    return f"{prefix}{time.monotonic_ns()}"


def _adapter_files() -> dict[str, Any]:
    config, weights = make_adapter("tiny")
    return {
        "adapter_config.json": ("c.json", config),
        "adapter_model.safetensors": ("w.safetensors", weights),
    }


AD = "/v1/tenants/{tenant}/adapters/{name}"
VER = AD + "/versions/{version}"
JOBS = "/v1/tenants/{tenant}/training-jobs"
_DRIFT = {
    "metric": "psi",
    "value": 0.1,
    "sample_size": 1,
    "window_start": "2026-01-01T00:00:00Z",
    "window_end": "2026-01-02T00:00:00Z",
}

_SCHEDULE = {"cron": "0 3 1 1,4,7,10 *", "timezone": "Europe/Berlin"}
CON = "/console/t/{tenant}/adapters/{name}"


ENDPOINTS = [
    Endpoint("GET", "/healthz", "public"),
    Endpoint("GET", "/readyz", "public"),
    Endpoint("GET", "/metrics", "public"),
    Endpoint("GET", "/.well-known/jwks.json", "public"),
    Endpoint(
        "POST",
        "/v1/tenants",
        "ops_write",
        json=lambda c: {"slug": _fresh("t"), "display_name": "New"},
    ),
    Endpoint("GET", "/v1/tenants", "platform_read"),
    Endpoint("GET", "/v1/tenants/{tenant}", "tenant_read"),
    Endpoint("PATCH", "/v1/tenants/{tenant}", "ops_write", json=lambda c: {"quota_adapters": 7}),
    Endpoint("POST", "/v1/tenants/{tenant}/disable", "ops_write"),
    Endpoint("POST", "/v1/tenants/{tenant}/enable", "ops_write"),
    Endpoint("POST", "/v1/tenants/{tenant}/clients", "ops_write", json=lambda c: {}),
    Endpoint("GET", "/v1/tenants/{tenant}/clients", "tenant_read"),
    Endpoint("DELETE", "/v1/tenants/{tenant}/clients/{client_id}", "ops_write"),
    Endpoint(
        "PUT",
        "/v1/tenants/{tenant}/traffic-logging",
        "tenant_write",
        json=lambda c: {"enabled": False},
    ),
    Endpoint(
        "POST",
        "/v1/tenants/{tenant}/datasets",
        "tenant_write",
        files=lambda: {"file": ("d.jsonl", JSONL)},
        data={"name": "fresh"},
    ),
    Endpoint("GET", "/v1/tenants/{tenant}/datasets", "tenant_read"),
    Endpoint("GET", "/v1/tenants/{tenant}/datasets/{dataset_id}", "tenant_read"),
    Endpoint("GET", "/v1/tenants/{tenant}/datasets/{dataset_id}/content", "tenant_read"),
    Endpoint(
        "POST",
        "/v1/tenants/{tenant}/eval-suites",
        "tenant_write",
        files=lambda: {"file": ("s.jsonl", SUITE)},
        data={"name": "fresh"},
    ),
    Endpoint("GET", "/v1/tenants/{tenant}/eval-suites", "tenant_read"),
    Endpoint("GET", "/v1/tenants/{tenant}/eval-suites/{suite_id}", "tenant_read"),
    Endpoint("GET", "/v1/tenants/{tenant}/eval-suites/{suite_id}/content", "tenant_read"),
    Endpoint(
        "POST",
        "/v1/platform/eval-suites",
        "base_model_write",
        files=lambda: {"file": ("s.jsonl", SUITE)},
        data={"name": "fresh"},
    ),
    Endpoint("GET", "/v1/platform/eval-suites", "platform_read"),
    Endpoint("GET", "/v1/platform/eval-suites/{platform_suite_id}", "platform_read"),
    Endpoint("GET", "/v1/platform/eval-suites/{platform_suite_id}/content", "platform_read"),
    Endpoint(
        "POST",
        "/v1/base-models",
        "base_model_write",
        json=lambda c: {"name": _fresh("b"), "uri": c["base_dir"]},
    ),
    Endpoint("GET", "/v1/base-models", "platform_read"),
    Endpoint("GET", "/v1/base-models/{base}", "platform_read"),
    Endpoint("PUT", "/v1/base-models/{base}/evals", "base_model_write", json=lambda c: {}),
    Endpoint(
        "POST",
        "/v1/platform/datasets",
        "base_model_write",
        files=lambda: {"file": ("d.jsonl", JSONL)},
        data={"name": "fresh"},
    ),
    Endpoint("GET", "/v1/platform/datasets", "platform_read"),
    Endpoint("GET", "/v1/platform/datasets/{platform_dataset_id}", "platform_read"),
    Endpoint("GET", "/v1/platform/datasets/{platform_dataset_id}/content", "base_model_write"),
    Endpoint(
        "POST",
        "/v1/tenants/{tenant}/adapters",
        "tenant_write",
        json=lambda c: {"name": _fresh("a"), "base_model": "tiny"},
    ),
    Endpoint("GET", "/v1/tenants/{tenant}/adapters", "tenant_read"),
    Endpoint("GET", AD, "tenant_read"),
    Endpoint("POST", AD + "/archive", "tenant_write"),
    Endpoint("PUT", AD + "/promotion-policy", "tenant_write", json=lambda c: {"mode": "auto"}),
    Endpoint("PUT", AD + "/eval-suites", "tenant_write", json=lambda c: {"suites": []}),
    Endpoint("GET", AD + "/eval-suites", "tenant_read"),
    Endpoint("GET", AD + "/versions", "tenant_read"),
    Endpoint("POST", AD + "/versions", "tenant_write", files=_adapter_files),
    Endpoint("GET", VER, "tenant_read"),
    Endpoint("GET", VER + "/files/{filename}", "tenant_read"),
    Endpoint("GET", AD + "/aliases", "tenant_read"),
    Endpoint("PUT", AD + "/aliases/{alias}", "tenant_write", json=lambda c: {"version": 1}),
    Endpoint("DELETE", AD + "/aliases/{alias}", "tenant_write"),
    Endpoint("GET", AD + "/aliases/{alias}/history", "tenant_read"),
    Endpoint("GET", AD + "/aliases/{alias}/at?time=2100-01-01T00:00:00Z", "tenant_read"),
    Endpoint("GET", AD + "/traffic-split", "tenant_read"),
    Endpoint(
        "PUT",
        AD + "/traffic-split",
        "tenant_write_one_version",
        json=lambda c: {"weights": {"production": 90, "v1": 10}, "reason": "matrix"},
    ),
    Endpoint("DELETE", AD + "/traffic-split?reason=matrix", "tenant_write"),
    Endpoint("GET", AD + "/traffic-split/history", "tenant_read"),
    Endpoint(
        "POST",
        VER + "/evals",
        "tenant_write",
        json=lambda c: {"suite": "s", "metrics": {"loss": 1.0}},
    ),
    Endpoint("GET", VER + "/evals", "tenant_read"),
    Endpoint("GET", VER + "/compare?with=base", "tenant_read"),
    Endpoint("POST", VER + "/evaluate", "tenant_write"),
    Endpoint("GET", AD + "/leaderboard", "tenant_read"),
    Endpoint("GET", VER + "/lineage", "tenant_read"),
    Endpoint("GET", VER + "/lineage?format=prov", "tenant_read"),
    Endpoint("POST", AD + "/drift-metrics", "tenant_write", json=lambda c: _DRIFT),
    Endpoint("GET", AD + "/drift-metrics", "tenant_read"),
    Endpoint(
        "POST",
        JOBS,
        "tenant_write",
        json=lambda c: {"adapter": "support", "dataset_ids": [c["dataset_id"]]},
    ),
    Endpoint("GET", JOBS, "tenant_read"),
    Endpoint("GET", JOBS + "/{job_id}", "tenant_read"),
    Endpoint("POST", JOBS + "/{job_id}/cancel", "tenant_write"),
    Endpoint("POST", JOBS + "/{job_id}/pause", "tenant_write"),
    Endpoint("POST", JOBS + "/{job_id}/resume", "tenant_write"),
    Endpoint("GET", "/v1/training-jobs", "audit"),
    Endpoint("GET", "/v1/training-backlog", "audit"),
    Endpoint("PUT", AD + "/schedule", "ops_write", json=lambda c: _SCHEDULE),
    Endpoint("GET", AD + "/schedule", "tenant_read"),
    Endpoint("DELETE", AD + "/schedule", "ops_write"),
    Endpoint("GET", "/v1/schedules", "audit"),
    Endpoint("PUT", AD + "/drift-policy", "ops_write", json=lambda c: {"metric": "oov_rate"}),
    Endpoint("GET", AD + "/drift-policy", "tenant_read"),
    Endpoint("DELETE", AD + "/drift-policy", "ops_write"),
    Endpoint(
        "POST",
        "/v1/tenants/{tenant}/traffic",
        "tenant_write",
        json=lambda c: {"adapter": "support", "samples": [{"prompt": "2+2?"}]},
    ),
    Endpoint("PUT", AD + "/traffic-capture", "tenant_write", json=lambda c: {"mode": "full"}),
    Endpoint("GET", AD + "/traffic-capture", "tenant_read"),
    Endpoint("DELETE", AD + "/traffic-capture", "tenant_write"),
    Endpoint("DELETE", "/v1/tenants/{tenant}/traffic", "tenant_write"),
    Endpoint("GET", "/v1/tenants/{tenant}/traces", "tenant_read"),
    Endpoint(
        "POST",
        "/v1/tenants/{tenant}/feedback",
        "tenant_write",
        json=lambda c: {"request_id": c["request_id"], "rating": 1},
    ),
    Endpoint("GET", "/v1/tenants/{tenant}/feedback", "tenant_read"),
    Endpoint(
        "POST",
        "/v1/tenants/{tenant}/datasets/from-traffic",
        "tenant_write_no_traffic",
        json=lambda c: {"name": "curated", "adapter": "support"},
    ),
    Endpoint(
        "POST",
        "/v1/teachers",
        "ops_write",
        json=lambda c: {"name": _fresh("t"), "base_url": "https://t.example/v1", "model": "m"},
    ),
    Endpoint("GET", "/v1/teachers", "platform_read"),
    Endpoint("GET", "/v1/teachers/{teacher}", "platform_read"),
    Endpoint("PATCH", "/v1/teachers/{teacher}", "ops_write", json=lambda c: {}),
    Endpoint("DELETE", "/v1/teachers/{teacher}", "ops_write"),
    Endpoint(
        "POST",
        AD + "/labelling-jobs",
        "tenant_write",
        json=lambda c: {"teacher": "tutor", "dataset": "taught"},
    ),
    Endpoint("GET", "/v1/tenants/{tenant}/labelling-jobs", "tenant_read"),
    Endpoint("GET", "/v1/tenants/{tenant}/labelling-jobs/{labelling_job_id}", "tenant_read"),
    Endpoint(
        "POST", "/v1/tenants/{tenant}/labelling-jobs/{labelling_job_id}/cancel", "tenant_write"
    ),
    Endpoint("GET", "/v1/audit/events", "audit"),
    Endpoint("GET", "/v1/audit/verify", "audit"),
    Endpoint("POST", "/v1/audit/anchors", "ops_write"),
    # the console (sign-in itself, POST /console/login: tests/console/test_session.py)
    Endpoint("GET", "/console/static/{asset}", "console_public"),
    Endpoint("GET", "/console/login", "console_public"),
    Endpoint("POST", "/console/logout", "console_sign_out"),
    Endpoint("GET", "/console", "console_home"),
    Endpoint("GET", "/console/jobs", "console_home"),
    Endpoint("GET", "/console/t/{tenant}", "console_read"),
    Endpoint("GET", "/console/t/{tenant}/jobs", "console_read"),
    Endpoint("GET", "/console/t/{tenant}/jobs/{job_id}", "console_read"),
    Endpoint("GET", "/console/t/{tenant}/jobs/{job_id}/live", "console_read"),
    Endpoint(
        "POST",
        "/console/t/{tenant}/jobs/{job_id}/cancel",
        "console_write",
        data={"reason": "matrix"},
    ),
    Endpoint("GET", CON, "console_read"),
    Endpoint("GET", CON + "/v/{version}", "console_read"),
    Endpoint("GET", CON + "/evals", "console_read"),
    Endpoint("GET", CON + "/drift", "console_read"),
    Endpoint(
        "POST",
        CON + "/aliases/{alias}",
        "console_write",
        data={"version": "1", "reason": "matrix"},
    ),
    Endpoint("POST", CON + "/split", "console_write", data={"clear": "1", "reason": "matrix"}),
    Endpoint("GET", "/console/audit", "console_audit"),
    Endpoint("GET", "/console/backlog", "console_audit"),
    Endpoint("GET", "/console/audit/verify", "console_audit"),
    Endpoint("GET", "/console/{rest}", "console_no_page"),
]


def _sign(world: World, claims: dict[str, Any], key: Any) -> str:
    return jwt.encode({"alg": "RS256", "typ": "at+jwt"}, claims, key)


def _headers_for(world: World, caller: str) -> dict[str, str]:
    acme, globex = world.acme, world.globex  # type: ignore[attr-defined]
    if caller == "own":
        return acme.headers
    if caller == "other":
        return globex.headers
    if caller == "ops":
        return world.ops.headers
    if caller == "auditor":
        return world.auditor.headers
    if caller == "none":
        return {}
    now = int(time.time())
    claims = {
        "iss": "loraplex",
        "aud": "loraplex",
        "client_id": acme.client_id,
        "sub": acme.client_id,
        "role": "tenant",
        "scope": "datasets:read tenants:read",
        "iat": now - 7200,
        "exp": now - 3600,
    }
    if caller == "expired":
        key = world.stack.app.state.signing_keys.private
        return {"Authorization": f"Bearer {_sign(world, claims, key)}"}
    if caller == "foreign_key":
        claims |= {"iat": now, "exp": now + 600}
        return {"Authorization": f"Bearer {_sign(world, claims, RSAKey.generate_key(2048))}"}
    if caller == "disabled":
        resp = world.http.post(f"/v1/tenants/{acme.slug}/disable", headers=world.ops.headers)
        assert resp.status_code == 200
        return acme.headers
    raise AssertionError(caller)


def _build(world: World, base_dir: Path) -> dict[str, str]:
    """acme with a dataset, a spare client, adapter `support` v1 at `production` with a
    retrain schedule and a drift policy; a platform dataset."""
    world.acme = acme = world.tenant("acme")  # type: ignore[attr-defined]
    world.globex = world.tenant("globex")  # type: ignore[attr-defined]
    ops, h = world.ops.headers, acme.headers
    make_base_model(base_dir)
    calls = [
        world.http.post(
            "/v1/base-models", json={"name": "tiny", "uri": str(base_dir)}, headers=ops
        ),
        world.http.post(
            "/v1/tenants/acme/datasets",
            data={"name": "base"},
            files={"file": ("d.jsonl", JSONL)},
            headers=h,
        ),
        world.http.post("/v1/tenants/acme/clients", json={}, headers=ops),
        world.http.post(
            "/v1/tenants/acme/adapters", headers=h, json={"name": "support", "base_model": "tiny"}
        ),
        world.http.post(
            "/v1/tenants/acme/adapters/support/versions", files=_adapter_files(), headers=h
        ),
        world.http.put(
            "/v1/tenants/acme/adapters/support/aliases/production", json={"version": 1}, headers=h
        ),
        world.http.put("/v1/tenants/acme/adapters/support/schedule", json=_SCHEDULE, headers=ops),
        world.http.put("/v1/tenants/acme/adapters/support/drift-policy", json={}, headers=ops),
        world.http.post(
            "/v1/platform/datasets",
            data={"name": "rehearsal"},
            files={"file": ("d.jsonl", JSONL)},
            headers=ops,
        ),
    ]
    calls.append(
        world.http.post(
            "/v1/tenants/acme/training-jobs",
            headers=h,
            json={"adapter": "support", "dataset_ids": [calls[1].json()["id"]]},
        )
    )
    for resp in calls:
        assert resp.status_code in (200, 201), resp.text
    teacher = {"base_url": "https://t.example/v1", "model": "m"}
    more = [  # capture settings (to delete), two teachers, a queued labelling job on `second`
        world.http.put(
            "/v1/tenants/acme/adapters/support/traffic-capture", json={"mode": "full"}, headers=h
        ),
        world.http.post("/v1/teachers", json={"name": "tutor", **teacher}, headers=ops),
        world.http.post("/v1/teachers", json={"name": "lender", **teacher}, headers=ops),
        world.http.post(
            "/v1/tenants/acme/adapters", headers=h, json={"name": "second", "base_model": "tiny"}
        ),
        world.http.post(
            "/v1/tenants/acme/adapters/second/labelling-jobs",
            json={"teacher": "lender", "dataset": "d"},
            headers=h,
        ),
    ]
    for resp in more:
        assert resp.status_code in (200, 201, 202), resp.text
    suites = {  # acme's eval suite `golden`, the platform's `general`
        "suite_id": ("/v1/tenants/acme/eval-suites", "golden", h),
        "platform_suite_id": ("/v1/platform/eval-suites", "general", ops),
    }
    ids = {}
    for key, (path, suite_name, headers) in suites.items():
        files = {"file": ("s.jsonl", SUITE)}
        resp = world.http.post(path, data={"name": suite_name}, files=files, headers=headers)
        assert resp.status_code == 201, resp.text
        ids[key] = resp.json()["id"]
    pins = {"suites": [{"name": "golden", "version": None}]}
    resp = world.http.put("/v1/tenants/acme/adapters/support/eval-suites", json=pins, headers=h)
    assert resp.status_code == 200, resp.text
    ids["request_id"] = seed_request(world.stack, "acme")
    job_id = calls[-1].json()["id"]
    # paused, so that pause (unchanged), resume (queued) and cancel all answer 2xx
    resp = world.http.post(f"/v1/tenants/acme/training-jobs/{job_id}/pause", headers=h)
    assert resp.status_code == 200 and resp.json()["status"] == "paused", resp.text
    return ids | {
        "labelling_job_id": more[-1].json()["id"],
        "teacher": "tutor",
        "job_id": calls[-1].json()["id"],
        "tenant": "acme",
        "dataset_id": calls[1].json()["id"],
        "platform_dataset_id": calls[8].json()["id"],
        "client_id": calls[2].json()["client_id"],
        "name": "support",
        "version": "1",
        "alias": "production",
        "filename": "manifest.json",
        "base": "tiny",
        "base_dir": str(base_dir),
        "asset": "console.css",
        "rest": "no/such/page",
    }


def _as_console(endpoint: Endpoint, headers: dict[str, str]) -> dict[str, Any]:
    """The console's way of carrying the same caller: its token in the session cookie, and on
    a form the session's CSRF field (the sign-in form would have set both)."""
    token = headers.get("Authorization", "").removeprefix("Bearer ")
    data = dict(endpoint.data)
    if endpoint.method == "POST":
        data["csrf"] = csrf_for(token)
    return {
        "headers": {"Cookie": f"{COOKIE}={token}"} if token else {},
        "data": data or None,
        "follow_redirects": False,
    }


def _check_console(endpoint: Endpoint, caller: str, resp: Any) -> None:
    expected = ACCESS[endpoint.access][caller]
    assert resp.status_code == expected, f"{endpoint} as {caller}: {resp.text[:2000]}"
    if expected == 303:
        assert resp.headers["location"].startswith("/console"), resp.headers
    elif expected == 401:  # the sign-in form, at the same URL
        assert 'id="login"' in resp.text, resp.text[:2000]
    elif expected in (403, 404):  # an HTML error page saying why
        assert resp.headers["content-type"].startswith("text/html"), resp.headers
        assert 'id="error-message"' in resp.text, resp.text[:2000]


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
def test_authz(world: World, endpoint: Endpoint, caller: str, tmp_path: Path) -> None:
    context = _build(world, tmp_path / "base")
    headers = _headers_for(world, caller)
    if endpoint.path.startswith("/console"):
        path = endpoint.path.format(**context)
        resp = world.http.request(endpoint.method, path, **_as_console(endpoint, headers))
        return _check_console(endpoint, caller, resp)
    resp = world.http.request(
        endpoint.method,
        endpoint.path.format(**context),
        headers=headers,
        json=endpoint.json(context) if endpoint.json else None,
        files=endpoint.files() if endpoint.files else None,
        data=endpoint.data or None,
    )
    expected = ACCESS[endpoint.access][caller]
    if expected == "2xx":
        assert 200 <= resp.status_code < 300, f"{endpoint} as {caller}: {resp.text}"
    else:
        assert resp.status_code == expected, f"{endpoint} as {caller}: {resp.text}"
        body = resp.json()
        assert set(body) >= {"error", "detail"} and body["detail"], body


def test_every_route_is_in_the_matrix(world: World) -> None:
    """A new endpoint cannot slip in without its authz row."""
    aliases = {"{base}": "{name}", "{platform_dataset_id}": "{dataset_id}"}  # context -> route
    aliases["{platform_suite_id}"] = "{suite_id}"
    aliases |= {"{asset}": "{name}", "{rest}": "{rest:path}"}  # the console's static, catch-all
    covered = set()
    for e in ENDPOINTS:
        path = e.path.split("?")[0]
        for key, param in aliases.items():
            path = path.replace(key, param)
        covered.add((e.method, path))
    # documentation, the token endpoint (client credentials: tests/registry/auth) and the
    # console's sign-in form post (tests/console/test_session.py)
    skip = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/oauth/token"}
    for route in world.stack.app.routes:
        path, methods = getattr(route, "path", ""), getattr(route, "methods", set())
        if path in skip:
            continue
        for method in methods - {"HEAD", "OPTIONS"}:
            if (method, path) == ("POST", "/console/login"):
                continue
            assert (method, path) in covered, f"{method} {path} has no row in ENDPOINTS"
