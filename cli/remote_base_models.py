"""`loraplex base-models`: list and register the platform's shared base models, and set their
general suite, forgetting tolerance and rehearsal mix, over HTTP."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from cli import evals_view as view
from cli.client import Api
from cli.remote import _json, console

base_models_app = typer.Typer(no_args_is_help=True, help="Shared base models (register: ops)")


@base_models_app.command("list")
def base_models_list() -> None:
    table = Table(
        "name", "architecture", "layers", "digest", "template renders tools", "parser", "max rank"
    )
    for m in Api.load().get("/v1/base-models"):
        table.add_row(
            m["name"],
            m["architecture"] or "",
            str(m["num_layers"]),
            m["digest"][:16],
            "yes" if m["chat_template_tools"] else "no",
            m["tool_call_parser"] or "-",
            str(m["max_lora_rank"]),
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
    max_lora_rank: int = typer.Option(
        None,
        help="highest LoRA rank served on it (one of vLLM's: 1, 8, 16, 32, 64, 128, 256, 320, "
        "512); training and uploads above it are refused, its engines start with it. Set once "
        "here; default: the registry's LORAPLEX_MAX_LORA_RANK",
    ),
) -> None:
    """Register a base model; the registry inspects its files and chat template."""
    body = {
        "name": name,
        "uri": uri,
        "tool_call_parser": tool_call_parser,
        "expected_digest": expected_digest,
        "max_lora_rank": max_lora_rank,
    }
    _json(Api.load().post("/v1/base-models", json=body))


@base_models_app.command("evals")
def base_model_evals(
    name: str,
    general_suite: str = typer.Option(None, help="a platform suite SUITE[:VERSION]"),
    forgetting_tolerance: float = typer.Option(
        None, min=0.0, help="how far below the base model a candidate may score on that suite"
    ),
    rehearsal: str = typer.Option(None, help="a platform dataset DATASET[:VERSION] to mix in"),
    ratio: float = typer.Option(None, min=0.0, help="the rehearsal share of the training rows"),
    clear_general_suite: bool = typer.Option(False, "--clear-general-suite"),
    clear_rehearsal: bool = typer.Option(False, "--clear-rehearsal"),
) -> None:
    """Set a base model's general suite, forgetting tolerance and rehearsal mix (ops).

    What no option names stays as it is set now (read from the registry first)."""
    if general_suite and clear_general_suite:
        raise typer.BadParameter("--general-suite and --clear-general-suite contradict")
    if (rehearsal or ratio is not None) and clear_rehearsal:
        raise typer.BadParameter("--rehearsal/--ratio and --clear-rehearsal contradict")
    api = Api.load()
    model = api.get(f"/v1/base-models/{name}")
    general = _current_general(model)
    if clear_general_suite:
        general = None
    elif general_suite:
        general = view.parse_ref(general_suite)
    current = _current_rehearsal(model)
    mix = None if clear_rehearsal else current
    if rehearsal:
        ref = view.parse_ref(rehearsal)
        share = ratio if ratio is not None else (current or {}).get("ratio")
        if share is None:
            raise typer.BadParameter("a rehearsal set needs --ratio (its share of training rows)")
        mix = {"dataset": ref["name"], "version": ref["version"], "ratio": share}
    elif ratio is not None:
        if mix is None:
            raise typer.BadParameter(f"{name} has no rehearsal set: say --rehearsal DATASET")
        mix = {**mix, "ratio": ratio}
    body = {
        "general_suite": general,
        "forgetting_tolerance": (
            model.get("forgetting_tolerance", 0.05)
            if forgetting_tolerance is None
            else forgetting_tolerance
        ),
        "rehearsal": mix,
    }
    typer.echo(view.base_model_evals_line(api.put(f"/v1/base-models/{name}/evals", json=body)))


def _current_general(model: dict[str, Any]) -> dict[str, Any] | None:
    """The general suite now set, pinned to its version (so that keeping it moves nothing)."""
    g = model.get("general_suite")
    return {"name": g["name"], "version": g.get("version")} if g else None


def _current_rehearsal(model: dict[str, Any]) -> dict[str, Any] | None:
    r = model.get("rehearsal")
    if not r:
        return None
    return {"dataset": view.rehearsal_name(r), "version": r.get("version"), "ratio": r["ratio"]}
