"""What the evals page shows: leaderboards per suite, held-out scores, and the suite rows that
regressed between two versions (read from the evals' per-row details and the suite's file)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.adapters.repository import VersionRepository
from registry.base_models.repository import BaseModelRepository
from registry.evals.leaderboard import Leaderboard, leaderboard
from registry.evals.repository import EvalRepository
from registry.models import Adapter, AdapterVersion, Eval, EvalSuite
from registry.storage import ObjectStore, StorageError
from registry.suites.pins import pinned_suites

GENERAL = "general"
HELDOUT = "heldout"
MAX_REGRESSIONS = 200  # rows shown per suite
TEXT_CHARS = 400


@dataclass
class Board:
    key: str  # the element id's suffix: the suite's name, "general" or "heldout"
    title: str
    metrics: list[str]
    rows: list[dict[str, Any]]  # label, version, aliases, metrics, base (held-out), scored_at
    note: str = ""


@dataclass
class Regression:
    i: int
    row_id: str | None
    prompt: str
    check: str
    a_output: str | None
    a_checks: dict[str, bool]
    b_output: str | None
    b_checks: dict[str, bool]


@dataclass
class SuiteRegressions:
    suite: str
    scored: bool  # both versions have per-row results on this suite
    compared: int = 0
    rows: list[Regression] = field(default_factory=list)
    cut: int = 0  # regressions not shown (over MAX_REGRESSIONS)
    missing: str = ""  # why there is nothing to compare


def suites_of(session: Session, adapter: Adapter) -> list[tuple[str, EvalSuite]]:
    """(key, suite) of each pinned suite, then the base model's general suite if it has one."""
    out = [(s.name, s) for s in pinned_suites(session, adapter)]
    base = BaseModelRepository(session).get(adapter.base_model_id)
    if base is not None and base.general_suite_id is not None:
        general = session.get(EvalSuite, base.general_suite_id)
        if general is not None and general.tenant_id is None:
            out.append((GENERAL, general))
    return out


def board_of(session: Session, adapter: Adapter, key: str, suite: EvalSuite) -> Board:
    lb: Leaderboard = leaderboard(
        session,
        adapter=adapter,
        suite=GENERAL if key == GENERAL else suite.name,
        version=None if key == GENERAL else suite.version,
    )
    rows = [
        {
            "label": "base model" if r.subject == "base_model" else f"v{r.version}",
            "version": r.version,
            "aliases": r.aliases,
            "metrics": r.metrics or {},
            "scored_at": r.scored_at,
        }
        for r in lb.rows
    ]
    owner = "platform general suite" if key == GENERAL else "suite"
    title = f"{owner} {lb.suite.name} v{lb.suite.version} ({lb.suite.rows} rows)"
    return Board(key, title, lb.metrics, rows)


def heldout_board(session: Session, adapter: Adapter) -> Board:
    """Each version on its own held-out set (the first score of each subject per version: later
    ones were taken for another version's comparison), the base model on the same set."""
    stmt = (
        select(Eval.version_id, Eval.subject, Eval.metrics, Eval.created_at)
        .where(
            Eval.tenant_id == adapter.tenant_id,
            Eval.adapter_id == adapter.id,
            Eval.suite.like(f"{HELDOUT}-%"),
        )
        .order_by(Eval.created_at)
    )
    first: dict[tuple[uuid.UUID, str], tuple[dict[str, float], Any]] = {}
    for version_id, subject, metrics, created in session.execute(stmt):
        first.setdefault((version_id, subject), (metrics, created))
    numbers = VersionRepository(session, adapter.tenant_id).numbers(list({v for v, _ in first}))
    names: set[str] = set()
    rows = []
    for version_id, number in sorted(numbers.items(), key=lambda kv: -kv[1]):
        own = first.get((version_id, "version"))
        base = first.get((version_id, "base_model"))
        if own is None:
            continue
        names |= set(own[0]) | set(base[0] if base else ())
        rows.append(
            {
                "label": f"v{number}",
                "version": number,
                "aliases": [],
                "metrics": own[0],
                "base": base[0] if base else {},
                "scored_at": own[1],
            }
        )
    return Board(
        HELDOUT,
        "held-out",
        sorted(names),
        rows,
        note="each version on its own held-out set (not like for like across versions), "
        "with the base model on that same set",
    )


def version_numbers(session: Session, adapter: Adapter) -> list[int]:
    stmt = select(AdapterVersion.version).where(
        AdapterVersion.tenant_id == adapter.tenant_id, AdapterVersion.adapter_id == adapter.id
    )
    return sorted(session.execute(stmt).scalars().all())


def regressions(
    session: Session,
    store: ObjectStore,
    adapter: Adapter,
    suites: list[tuple[str, EvalSuite]],
    a: int,
    b: int,
) -> list[SuiteRegressions]:
    """Per suite, the rows `a` passed and `b` fails (from the newest score of each)."""
    repo = VersionRepository(session, adapter.tenant_id)
    va, vb = repo.get(adapter.id, a), repo.get(adapter.id, b)
    evals = EvalRepository(session, adapter.tenant_id)
    out = []
    for _key, suite in suites:
        found = SuiteRegressions(f"{suite.name} v{suite.version}", scored=False)
        out.append(found)
        scores = [
            evals.latest_on_suite(
                adapter_id=adapter.id, suite_id=suite.id, subject="version", version_id=v.id
            )
            if v is not None
            else None
            for v in (va, vb)
        ]
        left, right = (_rows(s) for s in scores)
        if left is None or right is None:
            absent = [f"v{n}" for n, rows in ((a, left), (b, right)) if rows is None]
            found.missing = f"{' and '.join(absent)} not scored row by row on this suite"
            continue
        found.scored = True
        found.compared = len(set(left) & set(right))
        bad = [
            i for i in sorted(set(left) & set(right)) if _passed(left[i]) and not _passed(right[i])
        ]
        found.cut = max(0, len(bad) - MAX_REGRESSIONS)
        bad = bad[:MAX_REGRESSIONS]
        source = _suite_rows(store, suite, set(bad))
        for i in bad:
            row = source.get(i)
            found.rows.append(
                Regression(
                    i=i,
                    row_id=_text(left[i].get("id")) or (_text(row.get("id")) if row else None),
                    prompt=_prompt(row) if row is not None else "(the suite's file is unavailable)",
                    check=_checks(row) if row is not None else "-",
                    a_output=_text(left[i].get("output")),
                    a_checks=_bools(left[i].get("checks")),
                    b_output=_text(right[i].get("output")),
                    b_checks=_bools(right[i].get("checks")),
                )
            )
    return out


def _rows(ev: Eval | None) -> dict[int, dict[str, Any]] | None:
    if ev is None or not isinstance(ev.details, dict):
        return None
    rows = ev.details.get("rows")
    if not isinstance(rows, list):
        return None
    return {r["i"]: r for r in rows if isinstance(r, dict) and isinstance(r.get("i"), int)}


def _passed(row: dict[str, Any]) -> bool:
    return row.get("passed") is True


def _suite_rows(
    store: ObjectStore, suite: EvalSuite, wanted: set[int]
) -> dict[int, dict[str, Any]]:
    """The suite's rows at `wanted` positions (non-empty lines, as the workers count them)."""
    if not wanted:
        return {}
    out: dict[int, dict[str, Any]] = {}
    last = max(wanted)
    i, tail = 0, b""
    try:
        for chunk in store.iter_chunks(suite.object_key):
            lines = (tail + chunk).split(b"\n")
            tail = lines.pop()
            for line in lines:
                if not line.strip():
                    continue
                if i in wanted:
                    out[i] = _parse(line)
                i += 1
                if i > last:
                    return out
        if tail.strip() and i in wanted:
            out[i] = _parse(tail)
    except StorageError:
        return out
    return out


def _parse(line: bytes) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _prompt(row: dict[str, Any]) -> str:
    messages = row.get("messages")
    if isinstance(messages, list):
        users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        if users:
            return _cut(str(users[-1].get("content", "")))
    if isinstance(row.get("prompt"), str):
        return _cut(row["prompt"])
    return "-"


def _checks(row: dict[str, Any]) -> str:
    parts = []
    for check in row.get("checks") or []:
        if isinstance(check, dict):
            rest = {k: v for k, v in check.items() if k != "type"}
            parts.append(f"{check.get('type')} {json.dumps(rest, ensure_ascii=False)}")
    return _cut("; ".join(parts)) or "-"


def _bools(value: Any) -> dict[str, bool]:
    return {str(k): v is True for k, v in value.items()} if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    return _cut(value) if isinstance(value, str) else None


def _cut(text: str) -> str:
    return text if len(text) <= TEXT_CHARS else text[:TEXT_CHARS] + "…"
