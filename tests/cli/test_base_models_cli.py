"""`loraplex base-models register | list` against a live registry process, over HTTP: the
template's tool support and the tool-call parser are shown; refusals are the server's message."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.test_remote_cli import Cli
from tests.live import LiveRegistry, start_registry
from tests.lora_files import make_base_model
from tests.registry.base_models.templates import HERMES, PLAIN, with_template


@pytest.fixture(scope="module")
def live(pg_admin_url: str, s3_endpoint: str) -> Iterator[LiveRegistry]:
    registry = start_registry(pg_admin_url, s3_endpoint)
    try:
        yield registry
    finally:
        registry.stop()


def test_register_and_list(live: LiveRegistry, tmp_path: Path) -> None:
    ops = Cli(live, tmp_path / "ops")
    ops.run("login", "--url", live.base_url, "--client-id", live.client_id,
            "--client-secret", live.client_secret)  # fmt: skip
    agent = with_template(make_base_model(tmp_path / "agent"), HERMES)
    plain = with_template(make_base_model(tmp_path / "plain"), PLAIN)

    body = ops.json("base-models", "register", "agent", str(agent), "--tool-call-parser", "hermes")
    assert body["chat_template_tools"] is True and body["tool_call_parser"] == "hermes"
    refused = ops.run(
        "base-models", "register", "plain", str(plain), "--tool-call-parser", "hermes", ok=False
    )
    assert refused.returncode != 0 and "does not render the `tools` list" in refused.stderr
    plain_body = ops.json("base-models", "register", "plain", str(plain), "--max-lora-rank", "16")
    assert plain_body["chat_template_tools"] is False and plain_body["max_lora_rank"] == 16
    assert body["max_lora_rank"] == 64  # the registry's default

    table = ops.run("base-models", "list").stdout
    lines = table.splitlines()
    rows = {n: line for line in lines for n in ("agent", "plain") if f" {n} " in line}
    assert "yes" in rows["agent"] and "hermes" in rows["agent"], table
    assert "no" in rows["plain"] and "hermes" not in rows["plain"], table
    assert " 16 " in rows["plain"] and " 64 " in rows["agent"], table
