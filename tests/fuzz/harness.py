"""Runs schemathesis over every operation of an in-process ASGI app, as one caller.

Each operation gets positive and negative cases, with generated path parameters (mostly
404s) and, where the path has parameters, with the names of real objects (so cases reach
the handlers' logic). A case fails on a 5xx, an answer its operation does not declare, a body
or header that does not match the declared schema, a wrong content type, negative data that
was accepted, auth that was ignored, or an answer slower than SLOW_SECONDS. Failures are
collected per operation (hypothesis shrinks each) and reported together.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.schemas import APIOperation, BaseSchema
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

SLOW_SECONDS = 3.0
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    ignored_auth,
]
_PARAM = re.compile(r"{([^}]+)}")


@dataclass
class FuzzRun:
    cases: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def summary(self) -> str:
        codes = ", ".join(f"{k}: {v}" for k, v in sorted(self.statuses.items()))
        return f"{self.cases} cases ({codes})"


def operations(schema: BaseSchema) -> Iterator[APIOperation]:
    for result in schema.get_all_operations():
        yield result.ok()


def fuzz(
    schema: BaseSchema,
    *,
    headers: dict[str, str],
    known: dict[str, str],
    max_examples: int,
    isolate: Callable[[], AbstractContextManager[Any]] = nullcontext,
    skip: Callable[[APIOperation], bool] = lambda op: False,
    body_values: dict[str, list[Any]] | None = None,
) -> FuzzRun:
    """Fuzz every operation; `known` maps path parameter names to real objects' values,
    `isolate` wraps each operation (e.g. a savepoint rolled back afterwards), `body_values`
    gives top-level JSON body fields real values to draw from in positive cases (e.g. a model
    that exists), so that cases reach past the lookup."""
    run = FuzzRun()
    for op in operations(schema):
        if skip(op):
            continue
        names = _PARAM.findall(op.path)
        fixed = {n: known[n] for n in names if n in known}
        variants: list[dict[str, str] | None] = [None] + ([fixed] if fixed else [])
        # Negative cases need something besides string path parameters to break.
        negatable = bool(op.body) or bool(op.query) or len(fixed) < len(names)
        modes = [GenerationMode.POSITIVE] + ([GenerationMode.NEGATIVE] if negatable else [])
        for mode in modes:
            for path_parameters in variants:
                with isolate():
                    _fuzz_one(
                        run, op, mode, path_parameters, headers, max_examples, body_values or {}
                    )
    return run


def _fuzz_one(
    run: FuzzRun,
    op: APIOperation,
    mode: GenerationMode,
    path_parameters: dict[str, str] | None,
    headers: dict[str, str],
    max_examples: int,
    body_values: dict[str, list[Any]],
) -> None:
    strategy = op.as_strategy(generation_mode=mode, path_parameters=path_parameters)
    if body_values and mode is GenerationMode.POSITIVE:
        strategy = _with_values(strategy, body_values)

    @settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,  # a fixed seed: the same cases on every run
        database=None,
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )
    @given(case=strategy)
    def check(case: Case) -> None:
        start = time.monotonic()
        response = case.call(headers=headers)
        elapsed = time.monotonic() - start
        run.cases += 1
        run.statuses[response.status_code] = run.statuses.get(response.status_code, 0) + 1
        case.validate_response(response, checks=CHECKS, headers=headers)
        if elapsed > SLOW_SECONDS:
            raise AssertionError(f"answered in {elapsed:.1f} s (over {SLOW_SECONDS} s)")

    where = "real objects" if path_parameters or body_values else "generated parameters"
    try:
        check()
    except Unsatisfiable:
        pass  # nothing in this operation can be made invalid
    except (Exception, BaseExceptionGroup) as exc:  # collect (shrunk), go on with the rest
        run.failures.append(f"{op.method.upper()} {op.path} [{mode.value}, {where}]: {exc}")


def _with_values(strategy: st.SearchStrategy[Case], values: dict[str, list[Any]]) -> Any:
    """Cases whose body keeps each listed field it has, or takes one of its real values."""
    picks = st.fixed_dictionaries({k: st.sampled_from([None, *v]) for k, v in values.items()})

    def apply(pair: tuple[Case, dict[str, Any]]) -> Case:
        case, chosen = pair
        if isinstance(case.body, dict):
            for key, value in chosen.items():
                if value is not None and key in case.body:
                    case.body[key] = value
        return case

    return st.tuples(strategy, picks).map(apply)
