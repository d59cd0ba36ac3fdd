"""How eval suites, pins, scores and leaderboards are shown: pure functions of the registry's
answers, so the tables can be checked without a server."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

FIRST_METRICS = ("pass_rate",)
LAST_METRICS = ("mean_loss", "rows")  # the loss (lower is better) and the count after the rates
# Shares of rows, shown as percentages; any other metric (held-out eval_loss...) as a number.
SHARES = frozenset(
    ("pass_rate", "exact", "contains", "not_contains", "regex", "json_schema", "tool_call", "loss")
)


def parse_ref(ref: str) -> dict[str, Any]:
    """`golden` -> latest version (null), `golden:2` or `golden:v2` -> version 2."""
    name, sep, version = ref.partition(":")
    if not name:
        raise typer.BadParameter(f"'{ref}': expected NAME or NAME:VERSION")
    if not sep:
        return {"name": name, "version": None}
    number = version.lstrip("vV")
    if not number.isdigit() or int(number) < 1:
        raise typer.BadParameter(f"'{ref}': the version after ':' must be a number >= 1")
    return {"name": name, "version": int(number)}


def checks_text(counts: dict[str, int] | None) -> str:
    """`{"contains": 30, "loss": 10}` -> `contains 30, loss 10` (rows having each check kind)."""
    return ", ".join(f"{kind} {n}" for kind, n in sorted((counts or {}).items())) or "-"


def suite_line(suite: dict[str, Any]) -> str:
    """`golden v2: 40 rows (1 duplicates dropped), checks: contains 30, sha256 …` (a pinned
    suite's answer has no duplicate count)."""
    dropped = suite.get("duplicates_dropped")
    dropped_text = f" ({dropped} duplicates dropped)" if dropped is not None else ""
    return (
        f"{suite['name']} v{suite['version']}: {suite['rows']} rows{dropped_text}, "
        f"checks: {checks_text(suite.get('check_counts'))}, sha256 {suite['sha256'][:16]}…"
    )


def suites_table(items: list[dict[str, Any]]) -> Table:
    table = Table("id", "name", "version", "format", "rows", "checks", "sha256", "created")
    for s in items:
        table.add_row(
            str(s["id"]),
            s["name"],
            str(s["version"]),
            str(s.get("format") or "-"),
            str(s["rows"]),
            checks_text(s.get("check_counts")),
            s["sha256"][:16],
            str(s.get("created_at") or "")[:19],
        )
    return table


def upload_errors(body: dict[str, Any], limit: int = 10) -> list[str]:
    """A 422 answer as lines a person can fix the file from: the message, then `line N: why`."""
    report = body.get("report") or {}
    lines = [f"error 422: {body.get('detail') or 'the file was refused'}"]
    for err in (report.get("errors") or [])[:limit]:
        where = f"line {err['line']}" if err.get("line") else "file"
        lines.append(f"  {where}: {err['reason']}")
    invalid = report.get("invalid")
    if isinstance(invalid, int) and invalid > limit:
        lines.append(f"  … {invalid - limit} more invalid lines")
    return lines


def metric_order(names: list[str]) -> list[str]:
    """`pass_rate` first, then the check kinds as the server lists them, `mean_loss` and `rows`
    last."""
    first = [m for m in FIRST_METRICS if m in names]
    last = [m for m in LAST_METRICS if m in names]
    return first + [m for m in names if m not in first and m not in last] + last


def fmt_metric(name: str, value: Any) -> str:
    if value is None:
        return "-"
    if name == "rows" and isinstance(value, int | float):
        return str(int(value))
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return f"{value:.1%}" if name in SHARES else f"{value:.4g}"


def subject_label(row: dict[str, Any]) -> str:
    """`v3 (production)`, `v2`, or `base model`."""
    if row.get("subject") == "base_model":
        return "base model"
    aliases = row.get("aliases") or []
    return f"v{row['version']}" + (f" ({', '.join(aliases)})" if aliases else "")


def _order(row: dict[str, Any]) -> tuple[int, int]:
    if row.get("subject") == "base_model":
        return (1, 0)
    return (0, -int(row.get("version") or 0))


def leaderboard_table(payload: dict[str, Any], *, scored: bool = True) -> Table:
    """The leaderboard of one suite: newest version first, the base model last; one column per
    metric (`pass_rate` first), aliases next to the version they point at; `scored`: when each
    score was taken."""
    suite = payload.get("suite") or {}
    metrics = metric_order(list(payload.get("metrics") or []))
    title = f"{suite.get('name', '?')} v{suite.get('version', '?')}"
    if "rows" in suite:
        title += f" ({suite['rows']} rows)"
    table = Table("subject", *metrics, *(["scored"] if scored else []), title=title)
    for row in sorted(payload.get("rows") or [], key=_order):
        values = row.get("metrics") or {}
        when = [str(row.get("scored_at") or "")[:19] or "not scored"] if scored else []
        table.add_row(subject_label(row), *(fmt_metric(m, values.get(m)) for m in metrics), *when)
    return table


def scores_table(evals: list[dict[str, Any]], version: int) -> Table:
    """The newest score of each (suite, subject) of one version, as `GET …/evals` lists them."""
    newest: dict[tuple[str, str], dict[str, Any]] = {}
    for e in sorted(evals, key=lambda e: str(e.get("created_at") or "")):
        newest[(e["suite"], e["subject"])] = e
    table = Table("suite", "subject", "metrics", title=f"scores of v{version}")
    for (suite, subject), e in sorted(newest.items()):
        values = e.get("metrics") or {}
        shown = ", ".join(f"{m} {fmt_metric(m, values[m])}" for m in metric_order(list(values)))
        table.add_row(suite, "base model" if subject == "base_model" else f"v{version}", shown)
    return table


def base_model_evals_line(model: dict[str, Any]) -> str:
    """`tiny: general suite general v1, forgetting tolerance 0.05, rehearsal mix v2 at 25%`."""
    g = model.get("general_suite")
    general = f"general suite {g['name']} v{g['version']}" if g else "no general suite"
    r = model.get("rehearsal")
    if r:
        version = f" v{r['version']}" if r.get("version") else ""
        rehearsal = f"rehearsal {rehearsal_name(r)}{version} at {float(r['ratio']):.0%}"
    else:
        rehearsal = "no rehearsal"
    tolerance = model.get("forgetting_tolerance")
    return f"{model['name']}: {general}, forgetting tolerance {tolerance}, {rehearsal}"


def rehearsal_name(rehearsal: dict[str, Any]) -> str:
    """The dataset's name in a base model's `rehearsal` (a name, or the dataset's object)."""
    dataset = rehearsal.get("dataset") or rehearsal.get("name")
    return str(dataset["name"] if isinstance(dataset, dict) else dataset)
