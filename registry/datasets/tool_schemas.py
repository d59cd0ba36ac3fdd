"""JSON Schemas of tenants' tools: checked once, then used to validate call arguments.

Draft 2020-12 (what OpenAI documents and pydantic emits), changed so that a tenant's schema
can neither stall the registry nor reach the network:

* `pattern` runs on RE2 (linear time, never backtracks) instead of Python's `re`; a pattern RE2
  cannot run (backreferences, look-around) is refused when the tool is checked.
  `patternProperties`, `unevaluatedProperties` and `unevaluatedItems` are refused: jsonschema
  evaluates them with Python's `re` and with uncounted recursion (OpenAI's strict mode does not
  take them either; `additionalProperties` covers the common case).
* `$ref` / `$dynamicRef` must be local ("#..."); references resolve in the schema alone (a
  registry that retrieves nothing). `$schema` may appear only at the top (2020-12 or draft-07,
  both checked as 2020-12): below it, jsonschema would switch to an unbounded validator class.
* Every keyword evaluation (and each element an `enum`, `required` or `uniqueItems` walks)
  spends a step of a per-row budget, the metaschema check included; past it the row is refused.
* `format` is an annotation, not asserted (no format checker on arguments).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from typing import Any

import orjson
import re2
from jsonschema import Draft202012Validator, FormatChecker, ValidationError, validators
from jsonschema.exceptions import best_match
from jsonschema_specifications import REGISTRY as SPECIFICATIONS
from referencing import Registry
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

_DRAFTS = frozenset(
    {
        "https://json-schema.org/draft/2020-12/schema",
        "http://json-schema.org/draft-07/schema",
        "http://json-schema.org/draft-07/schema#",
    }
)
_REFUSED = {
    "patternProperties": "use properties, or additionalProperties with one schema",
    "unevaluatedProperties": "use additionalProperties",
    "unevaluatedItems": "use items",
}
# Compiled tool schemas kept per upload (a file usually repeats a few), by their canonical JSON:
# up to 1 MiB of it (the parsed schemas the validators hold are ~10x that).
_CACHE_BYTES = 1 << 20
_MAX_MESSAGE = 160
_TOO_COMPLEX = (
    "is too complex to check within the {:,} steps a row may use "
    "(LORAPLEX_DATASET_SCHEMA_STEPS); simplify it"
)
_TOO_DEEP = "nests too deeply to check; flatten it"


class _OutOfSteps(Exception):
    pass


class _Steps:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.left = limit

    def spend(self, n: int) -> None:
        self.left -= n
        if self.left < 0:
            raise _OutOfSteps


_steps: ContextVar[_Steps | None] = ContextVar("tool_schema_steps", default=None)


def _spend(n: int) -> None:
    steps = _steps.get()
    if steps is None:
        raise RuntimeError("tool schemas are checked only inside ToolSchemas.row()")
    steps.spend(n)


@lru_cache(maxsize=64)  # RE2 caps each at 1 MiB
def _re2(pattern: str) -> Any:
    options = re2.Options()
    options.max_mem = 1 << 20  # a huge automaton fails fast instead of compiling for seconds
    options.log_errors = False
    return re2.compile(pattern, options)


def _is_re2(instance: object) -> bool:
    if isinstance(instance, str):
        _re2(instance)  # re2.error says why
    return True


_REGEX_FORMAT = FormatChecker(formats=())
_REGEX_FORMAT.checks("regex", raises=re2.error)(_is_re2)

_Keyword = Callable[[Any, Any, Any, Any], Any]


def _pattern(validator: Any, pattern: str, instance: object, schema: object) -> Iterator[Any]:
    if isinstance(instance, str) and _re2(pattern).search(instance) is None:
        yield ValidationError(f"{show(instance)} does not match {pattern!r}")


def _uniq_key(value: object) -> object:
    """Hashable and equal exactly when JSON Schema calls two values equal (1 == 1.0)."""
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, dict):
        return ("o", frozenset((k, _uniq_key(v)) for k, v in value.items()))
    if isinstance(value, list):
        return ("a", tuple(_uniq_key(v) for v in value))
    return ("v", value)


def _unique_items(validator: Any, unique: bool, instance: object, schema: object) -> Iterator[Any]:
    # jsonschema's own check compares unsortable items pairwise: quadratic in the array
    if unique and isinstance(instance, list):
        seen: set[object] = set()
        for item in instance:
            key = _uniq_key(item)
            if key in seen:
                yield ValidationError(f"has non-unique elements ({show(item)} repeats)")
                return
            seen.add(key)


def _counted(keyword: str, fn: _Keyword) -> _Keyword:
    def run(validator: Any, value: Any, instance: Any, schema: Any) -> Any:
        n = 1 + (len(value) if isinstance(value, list | dict) else 0)
        if keyword == "uniqueItems" and isinstance(instance, list):
            n += len(instance)
        _spend(n)
        return fn(validator, value, instance, schema)

    return run


_KEYWORDS: dict[str, _Keyword] = {
    **Draft202012Validator.VALIDATORS,
    "pattern": _pattern,
    "uniqueItems": _unique_items,
}
_Validator: Any = validators.extend(
    Draft202012Validator, {k: _counted(k, fn) for k, fn in _KEYWORDS.items()}
)


def _meta_registry() -> Registry[Any]:
    # The 2020-12 metaschema without "$schema" keys, so checking it stays in _Validator.
    resources = []
    for uri in SPECIFICATIONS:
        if uri.startswith("https://json-schema.org/draft/2020-12/"):
            contents = {k: v for k, v in SPECIFICATIONS.contents(uri).items() if k != "$schema"}
            resources.append((uri, DRAFT202012.create_resource(contents)))
    return Registry().with_resources(resources).crawl()  # type: ignore[no-any-return]


_META_REGISTRY = _meta_registry()
_META = _META_REGISTRY.contents("https://json-schema.org/draft/2020-12/schema")
_META_CHECK = _Validator(
    _META,
    format_checker=_REGEX_FORMAT,
    _resolver=_META_REGISTRY.resolver_with_root(DRAFT202012.create_resource(_META)),
)


class ToolSchemas:
    """Checks tool schemas and call arguments within `max_steps` per row; caches compiled schemas.

    Use: `with schemas.row(): schemas.compile(...); schemas.check_arguments(...)`."""

    def __init__(self, *, max_steps: int) -> None:
        if max_steps < 1:
            raise ValueError("max_steps must be at least 1")
        self.max_steps = max_steps
        self._cache: OrderedDict[bytes, Any] = OrderedDict()  # canonical schema -> validator
        self._cache_bytes = 0

    @contextmanager
    def row(self) -> Iterator[None]:
        token = _steps.set(_Steps(self.max_steps))
        try:
            yield
        finally:
            _steps.reset(token)

    def compile(self, parameters: object) -> Any:
        """A validator for a tool's `parameters`, or the reason (a str) it cannot be used."""
        if not isinstance(parameters, dict):
            return f"must be a JSON Schema object, got {json_type(parameters)}"
        try:
            key = orjson.dumps(parameters, option=orjson.OPT_SORT_KEYS)
        except TypeError:  # orjson stops at 254 levels
            return _TOO_DEEP
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        result = self._compile(parameters)
        # a budget failure depends on what else the row spent: not cached
        if result != _TOO_COMPLEX.format(self.max_steps) and len(key) <= _CACHE_BYTES // 16:
            self._cache[key] = result
            self._cache_bytes += len(key)
            while self._cache_bytes > _CACHE_BYTES:
                old, _ = self._cache.popitem(last=False)
                self._cache_bytes -= len(old)
        return result

    def _compile(self, parameters: dict[str, Any]) -> Any:
        draft = parameters.get("$schema")
        if draft is not None and draft not in _DRAFTS:
            return (
                f'"$schema" {show(draft)} is not supported; '
                'use "https://json-schema.org/draft/2020-12/schema" or leave it out'
            )
        schema = {k: v for k, v in parameters.items() if k != "$schema"}
        reason = _refused_keyword(schema)
        if reason is not None:
            return reason
        try:
            error = best_match(_META_CHECK.iter_errors(schema))
        except _OutOfSteps:
            return _TOO_COMPLEX.format(self.max_steps)
        except RecursionError:
            return _TOO_DEEP
        except Exception as e:  # jsonschema on an odd schema: still the tenant's input, a 4xx
            return f"cannot be checked ({show(str(e))}); simplify it"
        if error is not None:
            return f"is not a valid JSON Schema: {_where(error, 'at')}{_message(error)}"
        root = DRAFT202012.create_resource(schema)
        return _Validator(schema, _resolver=Registry().resolver_with_root(root))

    def check_arguments(self, validator: Any, arguments: object) -> str | None:
        """None if `arguments` is valid for the compiled schema, else a short reason."""
        try:
            error = best_match(validator.iter_errors(arguments))
        except _OutOfSteps:
            return (
                f"checking the arguments takes more than the {self.max_steps:,} steps a row may "
                "use (LORAPLEX_DATASET_SCHEMA_STEPS); simplify the tool's parameters"
            )
        except RecursionError:
            return (
                "arguments cannot be checked: they, or the $refs of the tool's parameters, "
                "nest too deeply"
            )
        except Unresolvable as e:
            return f"the tool's parameters have a $ref that does not resolve ({show(str(e))})"
        except Exception as e:  # a schema the metaschema allows can still fail at run time
            # (multipleOf overflow, a `pattern` reached only through a $ref): a 4xx, not a 500
            return f"arguments cannot be checked against the tool's parameters ({show(str(e))})"
        if error is None:
            return None
        return f"arguments {_where(error, 'field')}do not match the tool's parameters: " + (
            _message(error)
        )


def _refused_keyword(schema: object) -> str | None:
    """Walks the schema (iteratively: nesting is bounded only by the line size)."""
    stack: list[tuple[object, bool]] = [(schema, True)]
    while stack:
        node, top = stack.pop()
        if isinstance(node, list):
            stack.extend((item, False) for item in node)
        elif isinstance(node, dict):
            for key, value in node.items():
                if key in _REFUSED:
                    return f'uses "{key}", which tool schemas do not support; {_REFUSED[key]}'
                if key == "$schema" and not top:
                    return '"$schema" may appear only at the top of parameters; remove it here'
                if key in ("$ref", "$dynamicRef") and not (
                    isinstance(value, str) and value.startswith("#")
                ):
                    return (
                        f'"{key}" {show(value)} is not a local reference; only "#..." '
                        "references into the same schema are resolved (put shared parts in $defs)"
                    )
                stack.append((value, False))
    return None


def _where(error: ValidationError, word: str) -> str:
    parts = [str(p) for p in error.absolute_path]
    return f'{word} "{".".join(parts)}" ' if parts else ""


def _message(error: ValidationError) -> str:
    text = error.message
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


def json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def show(value: object, limit: int = 40) -> str:
    """A value as JSON (strings as Python repr), cut to `limit` characters."""
    text = repr(value) if isinstance(value, str) else orjson.dumps(value).decode()
    return text if len(text) <= limit else text[: limit - 3] + "..."
