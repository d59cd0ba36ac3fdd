"""`loraplex feedback`: rate or correct one response by its request id."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

from cli.client import Api

TenantOpt = typer.Option(None, "--tenant", "-t", help="default: the one saved at login")


def feedback(
    request_id: str = typer.Argument(..., help="the x-request-id header of the response"),
    rating: int = typer.Option(
        ..., "--rating", "-r", min=-1, max=1, help="1 good, 0 neutral, -1 bad"
    ),
    correct: str | None = typer.Option(
        None, "--correct", help="the answer it should have given, as text"
    ),
    correction_file: Path | None = typer.Option(
        None,
        "--correction-file",
        help="the corrected assistant message(s) as JSON (OpenAI chat shape, tool calls "
        "allowed); '-' reads standard input",
        dir_okay=False,
        allow_dash=True,
    ),
    comment: str = typer.Option("", "--comment", help="a note (at most 2000 characters)"),
    tenant: str = TenantOpt,
) -> None:
    """Rate or correct one response by its request id. Feedback again replaces it."""
    body: dict[str, Any] = {"request_id": request_id, "rating": rating, "comment": comment}
    if correct is not None and correction_file is not None:
        raise typer.BadParameter("give --correct or --correction-file, not both")
    if correct is not None:
        body["correction"] = {"role": "assistant", "content": correct}
    elif correction_file is not None:
        body["correction"] = _read_correction(correction_file)
    api = Api.load()
    out = api.post(f"/v1/tenants/{api.tenant(tenant)}/feedback", json=body)
    what = "replaced the feedback on" if out["replaced"] else "feedback on"
    served = f"{out['adapter']} v{out['version']}"
    fixed = ", corrected" if out["corrected"] else ""
    typer.echo(f"{what} {out['request_id']} ({served}): rating {out['rating']}{fixed}")
    if out["redactions"]:
        counts = ", ".join(f"{k} {n}" for k, n in sorted(out["redactions"].items()))
        typer.echo(f"redacted before storing: {counts}")
    if out["captured"] is None:
        typer.echo("note: the traffic log holds nothing of this request (it was not sampled)")


def _read_correction(path: Path) -> Any:
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc.strerror}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(
            f"{path} is not JSON ({exc.msg}, line {exc.lineno}); write an assistant message "
            '{"role": "assistant", "content": "..."} or a list of messages'
        ) from exc
