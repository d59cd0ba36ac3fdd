"""`loraplex base-models`: list and register the platform's shared base models over HTTP."""

from __future__ import annotations

import typer
from rich.table import Table

from cli.client import Api
from cli.remote import _json, console

base_models_app = typer.Typer(no_args_is_help=True, help="Shared base models (register: ops)")


@base_models_app.command("list")
def base_models_list() -> None:
    table = Table("name", "architecture", "layers", "digest", "template renders tools", "parser")
    for m in Api.load().get("/v1/base-models"):
        table.add_row(
            m["name"],
            m["architecture"] or "",
            str(m["num_layers"]),
            m["digest"][:16],
            "yes" if m["chat_template_tools"] else "no",
            m["tool_call_parser"] or "-",
        )
    console.print(table)


@base_models_app.command("register")
def base_models_register(
    name: str,
    uri: str = typer.Argument(..., help="a folder the registry can read, or s3://bucket/prefix"),
    tool_call_parser: str = typer.Option(
        None, help="vLLM tool-call parser that reads the model's calls, e.g. hermes"
    ),
    expected_digest: str = typer.Option(None, help="refuse if the files differ"),
) -> None:
    """Register a base model; the registry inspects its files and chat template."""
    body = {
        "name": name,
        "uri": uri,
        "tool_call_parser": tool_call_parser,
        "expected_digest": expected_digest,
    }
    _json(Api.load().post("/v1/base-models", json=body))
