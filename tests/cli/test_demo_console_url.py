"""The console URL that `make demo` ends with, and the one `loraplex up` prints."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console
from starlette.routing import Match

from cli import up
from cli.demo_loop import console_lines, console_url
from registry.console.router import router as console_router


def _page_route(path: str) -> str:
    """The console page route (not the catch-all 404) that answers GET `path`."""
    scope = {"type": "http", "method": "GET", "path": path, "root_path": ""}
    for route in console_router.routes:
        if getattr(route, "path", "").endswith("{rest:path}"):
            continue
        if route.matches(scope)[0] is Match.FULL:
            return str(route.path)  # type: ignore[attr-defined]
    raise AssertionError(f"no console page answers {path}")


def test_the_demo_ends_with_the_final_versions_console_page() -> None:
    url = console_url("http://127.0.0.1:8123/", "globex", "support", 2)
    assert url == "http://127.0.0.1:8123/console/t/globex/adapters/support/v/2"
    path = url.removeprefix("http://127.0.0.1:8123")
    assert _page_route(path) == "/console/t/{tenant}/adapters/{name}/v/{version}"
    assert console_url("http://h", "a b", "x/y", 1) == "http://h/console/t/a%20b/adapters/x%2Fy/v/1"


def test_the_demo_says_how_to_sign_in_and_how_to_reopen_it() -> None:
    creds = {"client_id": "ops-123", "client_secret": "s3cret"}
    home = Path("/tmp/demo-home")
    url = console_url("http://127.0.0.1:8123", "globex", "support", 2)
    stopped = "\n".join(console_lines(url, creds, home, 8123, kept=False))
    assert stopped.startswith(f"console: {url}\n")
    assert "ops-123" in stopped and str(home / "ops-client.json") in stopped
    assert "s3cret" not in stopped  # the secret stays in its 0600 file
    assert f"LORAPLEX_HOME={home} loraplex up --port 8123 --no-engine" in stopped
    kept = "\n".join(console_lines(url, creds, home, 8123, kept=True))
    assert "Ctrl-C" in kept and "loraplex up --port" not in kept


def test_up_prints_the_console_url(monkeypatch: pytest.MonkeyPatch) -> None:
    out = Console(width=200, record=True)
    monkeypatch.setattr(up, "console", out)
    creds = {"client_id": "ops-1", "client_secret": "x"}
    up._banner("http://127.0.0.1:8000", "http://127.0.0.1:8080", Path("/h"), creds, False, True)
    text = out.export_text()
    assert "http://127.0.0.1:8000/console" in text
    assert _page_route("/console") == "/console"
