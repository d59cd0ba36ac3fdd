"""Redaction of captured traffic: personal data and secrets replaced before anything is stored.

Built-in kinds (`BUILTIN`) plus a tenant's own RE2 patterns (`check_patterns` validates them
when they are set). `Redactor.redact` walks a JSON-like value (messages, tool-call `arguments`
strings, tool results) and returns a redacted copy with counts by kind, e.g.
`{"email": 2, "ORDER_ID": 1}`. Each match becomes `[REDACTED:<KIND>]`. Rules search the original
text in order, a tenant's patterns first (they know their own identifiers best); a match that
overlaps an earlier one, or a placeholder already in the text, is left to the earlier one.

What the built-ins catch, on purpose narrowly (a redacted prompt is worth less for training):
- email: `name@domain.tld`.
- phone: `+<country> ...` or `00<country> ...` with 8-15 digits, and US numbers written with
  separators (`(555) 123-4567`, `555-123-4567`, `+1 555.123.4567`). Bare digit runs, years and
  quantities are left alone.
- card: 13-19 digits (spaces or dashes allowed) starting 2-6 and passing the Luhn check.
- api_key: `sk-...`, `sk_live_...`, `AKIA...`, `AIza...`, `ghp_...`, `github_pat_...`,
  `xoxb-...`, `Bearer <token>`, and 32+ character high-entropy tokens after a key-ish name
  (`api_key=`, `"secret": "`, `token:`...).
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import re2

BUILTIN = ("email", "phone", "card", "api_key")
MAX_PATTERNS = 20
MAX_PATTERN_CHARS = 500
_REGEX_MAX_MEM = 1 << 20
_NAME = re2.compile(r"[A-Z][A-Z0-9_]{0,31}")
_PLACEHOLDER = re2.compile(r"\[REDACTED:[A-Za-z0-9_]+\]")


def _options() -> Any:
    options = re2.Options()
    options.max_mem = _REGEX_MAX_MEM
    options.log_errors = False
    return options


def placeholder(kind: str) -> str:
    return f"[REDACTED:{kind.upper()}]"


# A rule: (kind, regex, replace(match) -> the replacement, or None to keep the text)
_Replace = Callable[[Any], str | None]


@dataclass(frozen=True)
class _Rule:
    kind: str
    regex: Any  # re2._Regexp (untyped)
    replace: _Replace
    needs: str = ""  # a cheap pre-check: skip the rule unless one of these characters occurs


def _whole(kind: str) -> _Replace:
    text = placeholder(kind)
    return lambda m: text


def _digits(s: str) -> str:
    return "".join(c for c in s if c.isdigit())


def luhn_valid(number: str) -> bool:
    total = 0
    for i, c in enumerate(reversed(number)):
        d = ord(c) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card(m: Any) -> str | None:
    if m.start() > 0 and m.string[m.start() - 1] == "+":
        return None  # an international phone number that happens to pass the Luhn check
    digits = _digits(m.group(0))
    if 13 <= len(digits) <= 19 and luhn_valid(digits):
        return placeholder("card")
    return None


def _intl_phone(m: Any) -> str | None:
    text, start = m.string, m.start()
    if start > 0 and (text[start - 1].isalnum() or text[start - 1] in "+_"):
        return None  # "3+4412345678" is arithmetic, not a number to call
    if start > 1 and text[start - 1] in " .-" and text[start - 2].isdigit():
        return None  # the tail of a longer number ("3000 0010 0000 03")
    text = m.group(0)
    digits = _digits(text) if text.startswith("+") else _digits(text)[2:]
    return placeholder("phone") if 8 <= len(digits) <= 15 else None


def _entropy(s: str) -> float:
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in Counter(s).values())


def _keyed_token(m: Any) -> str | None:
    token = m.group(2)
    kinds = sum((any(c.isdigit() for c in token), any(c.isalpha() for c in token)))
    if kinds < 2 or _entropy(token) < 3.5:
        return None  # "password: xxxxxxxx..." or a long word: not a secret worth hiding
    return m.group(1) + placeholder("api_key")


def _prefixed(kind: str) -> _Replace:
    text = placeholder(kind)
    return lambda m: m.group(1) + text


def _compile(pattern: str) -> Any:
    return re2.compile(pattern, _options())


_BUILTIN_RULES: tuple[_Rule, ...] = (
    _Rule(
        "api_key",
        _compile(
            r"\b(?:sk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}|[sr]k_(?:live|test)_[A-Za-z0-9]{16,}"
            r"|(?:AKIA|ASIA)[0-9A-Z]{16}|AIza[0-9A-Za-z_-]{35}|gh[pousr]_[A-Za-z0-9]{36,}"
            r"|github_pat_[A-Za-z0-9_]{40,}|xox[bpars]-[A-Za-z0-9-]{10,})"
        ),
        _whole("api_key"),
    ),
    _Rule("api_key", _compile(r"(\b[Bb]earer\s+)[A-Za-z0-9._~+/-]{20,}=*"), _prefixed("api_key")),
    _Rule(
        "api_key",
        _compile(
            r"(?i)(\b(?:api[_-]?key|apikey|secret|token|access[_-]?key|private[_-]?key|password"
            r"|passwd|client[_-]?secret|auth)[\"']?\s*[:=]\s*[\"']?)([A-Za-z0-9_+/=.-]{32,})"
        ),
        _keyed_token,
        needs=":=",
    ),
    _Rule(
        "email",
        _compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"),
        _whole("email"),
        needs="@",
    ),
    _Rule("card", _compile(r"\b[2-6](?:[ -]?[0-9]){12,18}\b"), _card, needs="23456"),
    _Rule(
        "phone",
        _compile(r"(?:\+|\b00)[1-9][0-9]{0,2}(?:[ .-]?(?:\([0-9]{1,5}\)|[0-9]{1,5})){1,7}\b"),
        _intl_phone,
        needs="+0",
    ),
    _Rule(
        "phone",
        _compile(
            r"(?:\+1[ .-]?|\b1[ .-])?(?:\([0-9]{3}\)[ .-]?|\b[0-9]{3}[ .-])[0-9]{3}[ .-][0-9]{4}\b"
        ),
        _whole("phone"),
        needs="0123456789",
    ),
)


def check_patterns(patterns: object) -> list[dict[str, str]]:
    """A tenant's redaction patterns, validated: `[{"name": "ORDER_ID", "pattern": "..."}]`.
    Raises ValueError naming the bad entry."""
    if patterns is None:
        return []
    if not isinstance(patterns, list):
        raise ValueError(
            'redact_patterns must be a list like [{"name": "ORDER_ID", "pattern": "ORD-[0-9]{6}"}]'
        )
    if len(patterns) > MAX_PATTERNS:
        raise ValueError(
            f"redact_patterns has {len(patterns)} patterns, over the limit of {MAX_PATTERNS}"
        )
    seen: set[str] = set()
    checked: list[dict[str, str]] = []
    for i, entry in enumerate(patterns, 1):
        where = f"redact_patterns[{i}]"
        if not isinstance(entry, Mapping) or set(entry) != {"name", "pattern"}:
            raise ValueError(f'{where} must be an object with exactly "name" and "pattern"')
        name, pattern = entry["name"], entry["pattern"]
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ValueError(
                f"{where}: name {name!r} must be 1-32 characters of A-Z, 0-9 and _, "
                "starting with a letter (e.g. ORDER_ID)"
            )
        where = f"{where} ({name})"
        if name.lower() in BUILTIN:
            raise ValueError(f"{where}: {name} is a built-in kind, always redacted; pick another")
        if name in seen:
            raise ValueError(f"{where}: the name {name} is used twice")
        seen.add(name)
        if not isinstance(pattern, str) or not pattern:
            raise ValueError(f"{where}: pattern must be a non-empty string")
        if len(pattern) > MAX_PATTERN_CHARS:
            raise ValueError(
                f"{where}: pattern has {len(pattern)} characters, over {MAX_PATTERN_CHARS}"
            )
        try:
            regex = _compile(pattern)
        except re2.error as e:
            why = (
                e.args[0].decode(errors="replace") if e.args and isinstance(e.args[0], bytes) else e
            )
            raise ValueError(
                f"{where}: {pattern!r} is not a regex RE2 can run ({why}); RE2 has no "
                "look-around or backreferences"
            ) from None
        if regex.fullmatch("") is not None:
            raise ValueError(
                f"{where}: {pattern!r} matches empty text; it would redact nothing "
                "useful and everything around it"
            )
        checked.append({"name": name, "pattern": pattern})
    return checked


class Redactor:
    """Replaces built-in kinds and a tenant's patterns in every string of a JSON-like value."""

    def __init__(self, rules: tuple[_Rule, ...], *, enabled: bool) -> None:
        self._rules = rules
        self.enabled = enabled

    @classmethod
    def build(cls, patterns: list[dict[str, str]], *, enabled: bool = True) -> Redactor:
        """`patterns` as `check_patterns` returns them (stored rows were checked when set)."""
        tenant = tuple(
            _Rule(p["name"], _compile(p["pattern"]), _whole(p["name"])) for p in patterns or ()
        )
        return cls(tenant + _BUILTIN_RULES, enabled=enabled)

    def redact(self, value: Any) -> tuple[Any, dict[str, int]]:
        if not self.enabled:
            return value, {}
        counts: Counter[str] = Counter()
        return self._walk(value, counts), dict(counts)

    def _walk(self, value: Any, counts: Counter[str]) -> Any:
        if isinstance(value, str):
            return self._string(value, counts)
        if isinstance(value, Mapping):
            return {k: self._walk(v, counts) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._walk(v, counts) for v in value]
        return value

    def _string(self, text: str, counts: Counter[str]) -> str:
        found: Counter[str] = Counter()
        out = self.text(text, found)
        if out != text and text[:1] in "{[" and _is_json(text) and not _is_json(out):
            # a tenant pattern cut through JSON syntax (tool-call arguments): redact the values
            found.clear()
            out = orjson.dumps(self._walk(orjson.loads(text), found)).decode()
        counts.update(found)
        return out

    def text(self, text: str, counts: Counter[str]) -> str:
        """One string, redacted; adds what it replaced to `counts`. Every rule searches the
        original text; a match overlapping one found earlier (an earlier rule, or a placeholder
        already there) is skipped, so rules never see each other's replacements."""
        starts: list[int] = []  # sorted; spans never overlap
        spans: list[tuple[int, int, str, str]] = []  # (start, end, replacement, kind)
        if "[REDACTED:" in text:
            for m in _PLACEHOLDER.finditer(text):
                starts.append(m.start())
                spans.append((m.start(), m.end(), m.group(0), ""))
        for rule in self._rules:
            if rule.needs and not any(c in text for c in rule.needs):
                continue
            for m in rule.regex.finditer(text):
                begin, end = m.start(), m.end()
                i = bisect.bisect_right(starts, begin)
                if (i and spans[i - 1][1] > begin) or (i < len(spans) and spans[i][0] < end):
                    continue
                out = rule.replace(m)
                if out is None:
                    continue
                starts.insert(i, begin)
                spans.insert(i, (begin, end, out, rule.kind))
        if not any(kind for *_, kind in spans):
            return text
        parts: list[str] = []
        pos = 0
        for begin, end, out, kind in spans:
            parts += [text[pos:begin], out]
            pos = end
            if kind:
                counts[kind] += 1
        parts.append(text[pos:])
        return "".join(parts)


def _is_json(text: str) -> bool:
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    return True
