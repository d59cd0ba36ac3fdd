"""`loraplex evals` and `loraplex base-models evals`.

The tables and the commands' requests are checked in-process against a fixed answer (an httpx
MockTransport in place of the registry); suite upload, list, attach and the base model's
evals run against a live registry process, over HTTP.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console
from typer.testing import CliRunner

from cli import app
from cli import evals_view as view
from cli.client import Api
from cli.remote import console
from tests.cli.test_remote_cli import Cli
from tests.live import LiveRegistry, start_registry
from tests.lora_files import make_base_model
from workers.devmodel.samples import sample_rows, to_jsonl

SUITE = {
    "id": "7d2c",
    "name": "golden",
    "version": 2,
    "rows": 40,
    "duplicates_dropped": 1,
    "check_counts": {"contains": 30, "loss": 10},
    "sha256": "ab" * 32,
    "format": "chat",
}
BOARD = {
    "suite": SUITE,
    "metrics": ["rows", "contains", "mean_loss", "pass_rate", "loss"],
    "rows": [  # out of order on purpose: the table orders them
        {"subject": "base_model", "version": None, "aliases": [], "metrics":
         {"pass_rate": 0.25, "contains": 0.3, "loss": 0.1, "mean_loss": 2.5, "rows": 40},
         "scored_at": "2026-01-01T00:00:00Z", "eval_id": "e0"},
        {"subject": "version", "version": 2, "aliases": ["staging"], "metrics":
         {"pass_rate": 0.75, "contains": 0.8, "loss": 0.6, "mean_loss": 1.25, "rows": 40},
         "scored_at": "2026-01-03T00:00:00Z", "eval_id": "e2"},
        {"subject": "version", "version": 3, "aliases": ["production", "canary"], "metrics":
         {"pass_rate": 1.0, "contains": 1.0, "loss": 1.0, "mean_loss": 0.5, "rows": 40},
         "scored_at": "2026-01-04T00:00:00Z", "eval_id": "e3"},
        {"subject": "version", "version": 1, "aliases": [], "metrics": {},
         "scored_at": None, "eval_id": None},
    ],
}  # fmt: skip


def _render(table: Any) -> list[str]:
    out = Console(width=200, record=True)
    out.print(table)
    return out.export_text().splitlines()


def test_leaderboard_newest_first_base_last_aliases_marked() -> None:
    lines = _render(view.leaderboard_table(BOARD))
    assert "golden v2 (40 rows)" in lines[0]
    header = next(line for line in lines if "subject" in line).split("┃")
    names = [h.strip() for h in header if h.strip()]
    assert names == ["subject", "pass_rate", "contains", "loss", "mean_loss", "rows", "scored"]
    body = [line for line in lines if line.startswith("│")]
    subjects = [line.split("│")[1].strip() for line in body]
    assert subjects == ["v3 (production, canary)", "v2 (staging)", "v1", "base model"]
    assert "100.0%" in body[0] and "0.5 " in body[0] and "75.0%" in body[1]
    assert "not scored" in body[2] and body[2].count(" - ") >= 5
    assert "25.0%" in body[3] and "2.5 " in body[3]


def test_refs_upload_errors_and_scores() -> None:
    assert view.parse_ref("golden") == {"name": "golden", "version": None}
    assert view.parse_ref("golden:v3") == view.parse_ref("golden:3") == {"name": "golden",
                                                                         "version": 3}  # fmt: skip
    for bad in ("golden:", "golden:x", ":2", "golden:0"):
        with pytest.raises(Exception, match="expected NAME|must be a number"):
            view.parse_ref(bad)
    errors = [
        {"line": 2, "reason": "check 1: unknown type 'fuzzy'"},
        {"line": 0, "reason": "empty"},
    ]
    body = {"detail": "2 invalid lines", "report": {"invalid": 12, "errors": errors}}
    lines = view.upload_errors(body, limit=2)
    assert lines[:3] == [
        "error 422: 2 invalid lines",
        "  line 2: check 1: unknown type 'fuzzy'",
        "  file: empty",
    ]
    assert lines[3] == "  … 10 more invalid lines"
    evals = [
        {"suite": "golden", "subject": "version", "metrics": {"pass_rate": 0.5, "rows": 4},
         "created_at": "2026-01-01"},
        {"suite": "golden", "subject": "version", "metrics": {"rows": 4, "pass_rate": 0.75},
         "created_at": "2026-01-02"},
        {"suite": "heldout-x", "subject": "version", "metrics": {"eval_loss": 0.5},
         "created_at": "2026-01-02"},
    ]  # fmt: skip
    text = "\n".join(_render(view.scores_table(evals, 3)))
    assert "pass_rate 75.0%, rows 4" in text and "50.0%" not in text
    assert "eval_loss 0.5" in text  # a loss is not a share of rows


Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Callable[[Handler], list[httpx.Request]]:
    """Points the CLI's client at `handler` instead of a registry; returns the requests seen."""

    def install(handler: Handler) -> list[httpx.Request]:
        seen: list[httpx.Request] = []

        def record(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return handler(request)

        def load(cls: type[Api]) -> Api:
            api = Api({"url": "http://registry", "token": "t", "expires_at": 1e12})
            api.http = httpx.Client(
                base_url="http://registry", transport=httpx.MockTransport(record)
            )
            return api

        monkeypatch.setattr(Api, "load", classmethod(load))
        monkeypatch.setattr(console, "width", 200)
        return seen

    return install


def _invoke(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


def test_leaderboard_and_run_commands(fake: Callable[[Handler], list[httpx.Request]]) -> None:
    job = {"id": "j1", "status": "queued", "events": [], "progress": {}, "result": {}, "error": ""}
    polls = iter(["running", "succeeded"])

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/leaderboard"):
            return httpx.Response(200, json=BOARD)
        if path.endswith("/evaluate"):
            return httpx.Response(202, json=job)
        if "/training-jobs/" in path:
            return httpx.Response(200, json={**job, "status": next(polls)})
        if path.endswith("/evals"):
            return httpx.Response(200, json=[{"suite": "golden", "subject": "version",
                "metrics": {"pass_rate": 0.5}, "created_at": "2026-01-01"}])  # fmt: skip
        return httpx.Response(404, json={"detail": f"no route {path}"})

    seen = fake(handler)
    out = _invoke("evals", "leaderboard", "acme", "orders", "--suite", "golden")
    assert "v3 (production, canary)" in out and out.index("v3 (") < out.index("base model")
    assert seen[-1].url.params["suite"] == "golden"
    assert seen[-1].url.path == "/v1/tenants/acme/adapters/orders/leaderboard"
    assert json.loads(_invoke("evals", "leaderboard", "acme", "orders", "--json")) == BOARD
    assert "suite" not in seen[-1].url.params  # the server picks the first pinned suite

    out = _invoke("evals", "run", "acme", "orders", "v3", "--wait")
    paths = [r.url.path for r in seen if r.method == "POST"]
    assert paths[-1] == "/v1/tenants/acme/adapters/orders/versions/3/evaluate"
    assert "evaluation queued" in out and "job succeeded" in out and "pass_rate 50.0%" in out
    assert "expected a version number" in _invoke("evals", "run", "acme", "orders", "x", code=2)


def test_base_model_evals_keeps_what_no_option_names(
    fake: Callable[[Handler], list[httpx.Request]],
) -> None:
    state: dict[str, Any] = {
        "name": "tiny",
        "general_suite": {"id": "g", "name": "general", "version": 2, "sha256": "cd" * 32},
        "forgetting_tolerance": 0.05,
        "rehearsal": {"dataset_id": "d", "name": "mix", "version": 1, "sha256": "ef" * 32,
                      "rows": 20, "ratio": 0.25},
    }  # fmt: skip

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "PUT":
            body = json.loads(request.content)
            state.update(body)
            return httpx.Response(200, json=state)
        return httpx.Response(200, json=state)

    seen = fake(handler)
    out = _invoke("base-models", "evals", "tiny", "--forgetting-tolerance", "0.1")
    assert json.loads(seen[-1].content) == {
        "general_suite": {"name": "general", "version": 2},  # kept at its version
        "forgetting_tolerance": 0.1,
        "rehearsal": {"dataset": "mix", "version": 1, "ratio": 0.25},
    }
    assert "general suite general v2, forgetting tolerance 0.1, rehearsal mix v1 at 25%" in out
    _invoke("base-models", "evals", "tiny", "--ratio", "0.5", "--general-suite", "gen2")
    assert json.loads(seen[-1].content)["rehearsal"]["ratio"] == 0.5
    assert json.loads(seen[-1].content)["general_suite"] == {"name": "gen2", "version": None}
    _invoke("base-models", "evals", "tiny", "--clear-rehearsal", "--clear-general-suite")
    assert state["rehearsal"] is None and state["general_suite"] is None
    out = _invoke("base-models", "evals", "tiny", "--rehearsal", "mix:2", code=2)
    assert "--ratio" in out
    out = _invoke("base-models", "evals", "tiny", "--ratio", "0.1", code=2)
    assert "no rehearsal set" in out
    assert [r.method for r in seen].count("PUT") == 3  # the refusals sent nothing


# --- against a live registry -------------------------------------------------------------

CHAT_ROW = {"id": "greet", "messages": [{"role": "user", "content": "Say hello"}],
            "checks": [{"type": "contains", "value": "hello", "ignore_case": True}]}  # fmt: skip
REGEX_ROW = {"messages": [{"role": "user", "content": "A number?"}],
             "checks": [{"type": "regex", "pattern": "[0-9]+"}]}  # fmt: skip
PROMPT_ROW = {"prompt": "The cat sat on", "checks": [
    {"type": "loss", "reference": " the mat", "max_loss": 6.0}, {"type": "contains", "value": "mat"}
]}  # fmt: skip


def _jsonl(path: Path, *rows: Any) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def live(pg_admin_url: str, s3_endpoint: str) -> Iterator[LiveRegistry]:
    registry = start_registry(pg_admin_url, s3_endpoint)
    try:
        yield registry
    finally:
        registry.stop()


def _login(live: LiveRegistry, config: Path, client_id: str, secret: str) -> Cli:
    cli = Cli(live, config)
    cli.run("login", "--url", live.base_url, "--client-id", client_id, "--client-secret", secret)
    return cli


@pytest.fixture(scope="module")
def clis(live: LiveRegistry, tmp_path_factory: pytest.TempPathFactory) -> tuple[Cli, Cli]:
    """An ops and a tenant (acme) profile; base model `tiny` and acme's adapter `orders`."""
    root = tmp_path_factory.mktemp("evals-cli")
    ops = _login(live, root / "ops", live.client_id, live.client_secret)
    ops.json("base-models", "register", "tiny", str(make_base_model(root / "tiny")))
    ops.json("tenants", "create", "acme")
    client = ops.json("tenants", "client", "acme")
    acme = _login(live, root / "acme", client["client_id"], client["client_secret"])
    acme.json("adapters", "create", "orders", "--base-model", "tiny")
    return ops, acme


def test_suites_pins_and_general_suite_over_http(clis: tuple[Cli, Cli], tmp_path: Path) -> None:
    ops, acme = clis
    golden = _jsonl(tmp_path / "golden.jsonl", CHAT_ROW, REGEX_ROW, CHAT_ROW)
    out = acme.run("evals", "suite", "upload", "acme", str(golden), "--name", "golden").stdout
    assert "golden v1: 2 rows (1 duplicates dropped)" in out and "contains 1, regex 1" in out
    again = acme.run("evals", "suite", "upload", str(golden), "--name", "golden").stdout
    assert "golden v1" in again and "unchanged" in again  # TENANT: the login's
    v2 = acme.run("evals", "suite", "upload", "acme", str(_jsonl(tmp_path / "g2.jsonl", CHAT_ROW)),
                  "--name", "golden").stdout  # fmt: skip
    assert "golden v2: 1 rows" in v2 and "unchanged" not in v2
    bad_row = {**CHAT_ROW, "checks": [{"type": "fuzzy"}]}
    bad = acme.run("evals", "suite", "upload", "acme", str(_jsonl(tmp_path / "bad.jsonl",
                   CHAT_ROW, bad_row)), "--name", "bad", ok=False)  # fmt: skip
    assert bad.returncode == 1 and "error 422" in bad.stderr and "line 2:" in bad.stderr
    listed = acme.run("evals", "suite", "list", "acme", "--name", "golden").stdout
    assert listed.count("golden") == 2 and "bad" not in listed

    out = acme.run("evals", "attach", "acme", "orders", "golden:1").stdout
    assert "orders: golden v1: 2 rows, checks: contains 1, regex 1" in out
    assert acme.run("evals", "attach", "acme", "orders").stdout == out  # shows the pinned set
    missing = acme.run("evals", "attach", "acme", "orders", "golden:9", ok=False)
    assert missing.returncode == 1 and "error 404" in missing.stderr
    assert "golden v2" in acme.run("evals", "attach", "acme", "orders", "golden").stdout
    assert "no suites pinned" in acme.run("evals", "attach", "acme", "orders", "--clear").stdout

    # ops: a platform suite, then the base model's general suite and tolerance
    general = _jsonl(tmp_path / "general.jsonl", PROMPT_ROW)
    out = ops.run(
        "evals", "suite", "upload", str(general), "--name", "general", "--platform"
    ).stdout
    assert "general v1: 1 rows" in out and "contains 1, loss 1" in out
    assert "general" in ops.run("evals", "suite", "list", "--platform").stdout
    assert "general" not in acme.run("evals", "suite", "list").stdout  # not a tenant's suite
    out = ops.run("base-models", "evals", "tiny", "--general-suite", "general",
                  "--forgetting-tolerance", "0.1").stdout  # fmt: skip
    assert "tiny: general suite general v1, forgetting tolerance 0.1, no rehearsal" in out
    out = ops.run("base-models", "evals", "tiny", "--forgetting-tolerance", "0.2").stdout
    assert "general suite general v1, forgetting tolerance 0.2" in out  # the suite is kept
    out = ops.run("base-models", "evals", "tiny", "--clear-general-suite").stdout
    assert "no general suite, forgetting tolerance 0.2" in out


def test_forgetting_tolerance_and_rehearsal_over_http(
    live: LiveRegistry, clis: tuple[Cli, Cli]
) -> None:
    ops, acme = clis
    out = ops.run("base-models", "evals", "tiny", "--forgetting-tolerance", "0.2").stdout
    assert "tiny: no general suite, forgetting tolerance 0.2, no rehearsal" in out
    denied = acme.run("base-models", "evals", "tiny", "--forgetting-tolerance", "0.9", ok=False)
    assert denied.returncode == 1 and "error 403" in denied.stderr
    # a platform dataset mixed into every tenant's training (no CLI verb uploads one)
    with live.http() as http:
        resp = http.post(
            "/v1/platform/datasets",
            data={"name": "mix"},
            files={"file": ("mix.jsonl", to_jsonl(sample_rows("orders", 20, seed=1)))},
            headers=live.bearer(),
        )
        assert resp.status_code == 201, resp.text
    out = ops.run("base-models", "evals", "tiny", "--rehearsal", "mix", "--ratio", "0.25").stdout
    assert "forgetting tolerance 0.2, rehearsal mix v1 at 25%" in out  # the tolerance is kept
    out = ops.run("base-models", "evals", "tiny", "--ratio", "0.5").stdout
    assert "rehearsal mix" in out and "at 50%" in out  # the set is kept, its share changed
    out = ops.run("base-models", "evals", "tiny", "--clear-rehearsal").stdout
    assert out.strip().endswith("no rehearsal")
