"""Validate an uploaded PEFT LoRA adapter against a registered base model, without torch.

vLLM serves garbage from an adapter built for another hidden size and answers HTTP 500 for a
rank above `--max-lora-rank` (the base model's `max_lora_rank`), so every tensor's name, shape
and dtype, `r` and every `rank_pattern` rank is checked at upload.

PEFT saves `base_model.model.<module path>.lora_A.weight` / `.lora_B.weight` with the base
model's module path (`model.layers.<i>.self_attn.q_proj`); `.lora_A.<adapter>.weight` is
accepted too. As in PEFT, a `target_modules` list matches a path equal to an entry or ending in
"." + entry; a string is a regex that must `re.fullmatch` the whole path (`.*\\.(q|v)_proj`),
and "all-linear" matches every linear module of the layers. A `rank_pattern` key gives a
module its rank if `(.*\\.)?(<key>)$` matches its path (the first such key wins). Those
regexes are matched with RE2, in linear time (`UserRegex`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeGuard

import orjson
import re2

from registry.adapters.safetensors import SafetensorsHeader
from registry.base_models.inspect import BaseModelInfo
from registry.lora_ranks import above_base_maximum

MAX_CONFIG_BYTES = 1 << 20
MAX_PROBLEMS = 20
MAX_REGEX_CHARS = 256
LORA_DTYPES = ("F32", "F16", "BF16")
_TENSOR = re.compile(
    r"base_model\.model\.(?P<path>.+)\.(?P<kind>lora_A|lora_B)(?:\.(?P<adapter>[^.]+))?\.weight"
)
_PEFT_NAME = "base_model.model.<module>.lora_A.weight or .lora_B.weight"
_LAYER = re.compile(r"model\.layers\.(?P<index>0|[1-9]\d*)\.(?P<suffix>.+)")


def _name_problem(name: str) -> str:
    if "lora_embedding_" in name:
        kind = "LoRA on an embedding"
    elif "lora_magnitude_vector" in name:
        kind = "a DoRA magnitude vector"
    elif "modules_to_save" in name or "lora_" not in name:  # PEFT saves those by module name
        kind = "a fully trained module (modules_to_save)"
    else:
        return f"tensor {name!r} is not named like a PEFT LoRA weight ({_PEFT_NAME})"
    return f"tensor {name!r} is {kind}: only LoRA on linear layers is supported"


@dataclass(frozen=True)
class LoraProblem:
    reason: str


def parse_adapter_config(data: bytes) -> dict[str, Any]:
    if len(data) > MAX_CONFIG_BYTES:
        raise ValueError(f"adapter_config.json is {len(data):,} bytes; the limit is 1 MiB")
    try:
        config = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise ValueError(f"adapter_config.json is not valid JSON: {e}") from None
    if not isinstance(config, dict):
        raise ValueError("adapter_config.json must be a JSON object")
    return config


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_positive(value: object) -> bool:
    return _is_int(value) and value >= 1


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _basename(name: str) -> str:
    return re.split(r"[/\\]", name.rstrip("/\\"))[-1]


@dataclass(frozen=True)
class UserRegex:
    """A regex from an adapter config, run by RE2: linear time in the text, never backtracks
    (Python's `re` holds the GIL while it backtracks; one upload could stall the registry).

    RE2 has no look-ahead, so leading `(?=A)` / `(?!A)` groups (`^(?!.*vision).*_proj`, common
    in PEFT configs) are kept as separate regexes that must (not) match at the start."""

    pattern: str
    regex: Any  # re2._Regexp (untyped)
    lookaheads: tuple[tuple[bool, Any], ...] = ()  # (negative, RE2 regex)

    def fullmatch(self, text: str) -> bool:
        return all(
            (regex.match(text) is None) == negative for negative, regex in self.lookaheads
        ) and (self.regex.fullmatch(text) is not None)


def _re2_options() -> Any:
    options = re2.Options()
    options.max_mem = 1 << 20  # a huge automaton fails in ms instead of compiling for seconds
    options.log_errors = False
    return options


_RE2_OPTIONS = _re2_options()
_UNSUPPORTED = (
    "backreferences, look-behind, look-ahead other than at the start, atomic groups, "
    "possessive repeats, conditionals and \\Z (use \\z) are not supported"
)


def _re2(pattern: str) -> Any:
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as e:
        reason = e.args[0].decode() if e.args and isinstance(e.args[0], bytes) else str(e)
        if "too large" in reason:
            raise ValueError("is too large a regex (repeat counts too high)") from None
        raise ValueError(f"cannot be matched in linear time ({reason}): {_UNSUPPORTED}") from None


def compile_user_regex(pattern: str, *, wrap: str = "{}") -> UserRegex:
    """Compile a regex from an adapter config, to be fullmatched; `wrap` embeds it (rank_pattern
    keys match as `(.*\\.)?(<key>)`). ValueError says why it cannot be used."""
    if len(pattern) > MAX_REGEX_CHARS:
        raise ValueError(f"is longer than {MAX_REGEX_CHARS} characters")
    try:
        re.compile(pattern)  # Python's syntax is the reference (PEFT compiles with re)
    except re.error as e:
        raise ValueError(f"is not a valid regex: {e}") from None
    lookaheads: list[tuple[bool, Any]] = []
    rest = pattern
    if wrap == "{}":
        rest = pattern.removeprefix("^") if pattern.startswith(("^(?=", "^(?!")) else pattern
        while rest.startswith(("(?=", "(?!")) and (end := _group_end(rest)) is not None:
            lookaheads.append((rest[2] == "!", _re2(rest[3:end])))
            rest = rest[end + 1 :]
    return UserRegex(pattern, _re2(wrap.format(rest)), tuple(lookaheads))


def _group_end(text: str) -> int | None:
    """Index of the `)` closing the group that opens text, skipping escapes and classes."""
    depth, i = 0, 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 1
        elif c == "[":  # a class; `]` first in it (after an optional `^`) is a literal
            i += 2 if text[i + 1 : i + 2] == "^" else 1
            i += text[i : i + 1] == "]"
            while i < len(text) and text[i] != "]":
                i += 2 if text[i] == "\\" else 1
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return None


class _Checker:
    def __init__(
        self, config: dict[str, Any], base: BaseModelInfo, max_rank: int, base_name: str
    ) -> None:
        self.config, self.base, self.max_rank, self.base_name = config, base, max_rank, base_name
        self.problems: list[str] = []
        self.r: int | None = None
        self.rank_rules: list[tuple[UserRegex, Any]] = []  # from rank_pattern
        self.targets: list[str] | UserRegex | None = None
        self.resolved: set[str] = set()  # module paths that exist in the base model

    def add_config(self, problem: str) -> None:
        self.problems.append(f"adapter_config.json: {problem}")

    def check_config(self, base_model_names: set[str]) -> None:
        config, add = self.config, self.add_config
        r = config.get("r")
        if not _is_int(r) or r < 1:
            add(f"r must be a positive integer, not {r!r}")
        elif r > self.max_rank:
            add(above_base_maximum("r", r, self.base_name, self.max_rank))
        else:
            self.r = r
        self.rank_rules = self._check_pattern("rank_pattern", _is_positive, "a positive integer")
        for key, value in self.rank_rules:
            if _is_int(value) and value > self.max_rank:
                what = f"rank_pattern[{key.pattern!r}]"
                add(above_base_maximum(what, value, self.base_name, self.max_rank))
        self._check_pattern("alpha_pattern", _is_number, "a number")
        if not _is_number(alpha := config.get("lora_alpha")):
            add(f"lora_alpha must be a number, not {alpha!r}")
        if config.get("use_dora"):
            add("use_dora is true; DoRA adapters are not supported")
        if (bias := config.get("bias", "none")) not in ("none", None):
            add(f"bias is {bias!r}; adapters that train biases are not supported, use 'none'")
        self._check_targets(config.get("target_modules"))
        self._check_base_model(config.get("base_model_name_or_path"), base_model_names)

    def _check_pattern(
        self, field: str, valid: Callable[[Any], bool], what: str
    ) -> list[tuple[UserRegex, Any]]:
        pattern = self.config.get(field)
        if not isinstance(pattern, dict | None):
            self.add_config(f"{field} must be an object")
        rules = []
        for key, value in (pattern or {}).items():
            if not valid(value):
                self.add_config(f"{field}[{key!r}] is {value!r}, not {what}")
            try:
                rules.append((compile_user_regex(key, wrap=r"(.*\.)?({})"), value))
            except ValueError as e:
                self.add_config(f"{field} key {key!r} {e}")
        return rules

    def _check_targets(self, targets: object) -> None:
        if targets == "all-linear":
            self.targets = compile_user_regex(r"model\.layers\.\d+\..+")
        elif isinstance(targets, str) and targets:
            try:
                self.targets = compile_user_regex(targets)
            except ValueError as e:
                self.add_config(f"target_modules {targets!r} {e}")
        elif (
            isinstance(targets, list) and targets and all(isinstance(t, str) and t for t in targets)
        ):
            self.targets = list(targets)
        else:
            self.add_config(
                "target_modules must be a non-empty list of module names or a regex string, "
                f"not {targets!r}"
            )

    def _check_base_model(self, name: object, known: set[str]) -> None:
        names = ", ".join(sorted(known))
        if not isinstance(name, str) or not name:
            self.add_config(
                f"base_model_name_or_path is missing; it must name the base model ({names})"
            )
        elif name not in known and _basename(name) not in {_basename(k) for k in known}:
            self.add_config(
                f"base_model_name_or_path is {name!r}, but this adapter is uploaded for base "
                f"model {names}"
            )

    def target_matches(self, path: str, target: str | None = None) -> bool:
        if isinstance(self.targets, UserRegex):
            return self.targets.fullmatch(path)
        wanted = [target] if target else (self.targets or [])
        return any(path == t or path.endswith("." + t) for t in wanted)

    def check_tensors(self, header: SafetensorsHeader) -> None:
        add = self.problems.append
        if not header.tensors:
            add("adapter_model.safetensors has no tensors")
        seen: dict[tuple[str, str], str] = {}
        for name, info in sorted(header.tensors.items()):
            if info.dtype not in LORA_DTYPES:
                add(f"tensor {name!r}: dtype {info.dtype} is not one of {', '.join(LORA_DTYPES)}")
            m = _TENSOR.fullmatch(name)
            if m is None:
                add(_name_problem(name))
                continue
            path, kind = m["path"], m["kind"]
            if (path, kind) in seen:
                add(f"tensors {seen[path, kind]!r} and {name!r} are the same LoRA weight")
                continue
            seen[path, kind] = name
            self._check_tensor(name, path, kind, info.shape)
        for path, kind in sorted(seen):
            other = "lora_B" if kind == "lora_A" else "lora_A"
            if (path, other) not in seen:
                add(f"module {path!r} has {kind} but no {other} tensor")
        # Regexes only run on paths that exist in the base model: short and canonical.
        paths = {path for path, _ in seen} if isinstance(self.targets, list) else self.resolved
        if isinstance(self.targets, list):
            for target in self.targets:
                if not any(self.target_matches(p, target) for p in paths):
                    add(f"target module {target!r} has no LoRA tensors in the adapter")
        elif isinstance(self.targets, UserRegex) and not any(map(self.target_matches, paths)):
            add(f"target_modules regex {self.targets.pattern!r} matches no tensor's module")

    def _check_tensor(self, name: str, path: str, kind: str, shape: tuple[int, ...]) -> None:
        add = self.problems.append
        layer = _LAYER.fullmatch(path)
        if layer is None:
            add(
                f"tensor {name!r}: module {path!r} is not in the base model's decoder layers "
                "(model.layers.<i>.…); only LoRA on linear layers is supported"
            )
            return
        index, suffix = int(layer["index"]), layer["suffix"]
        if index >= self.base.num_layers:
            layers = self.base.num_layers
            add(f"tensor {name!r}: layer {index} does not exist, the base model has {layers}")
            return
        if suffix not in self.base.module_shapes:
            known = ", ".join(sorted(self.base.module_shapes))
            add(f"tensor {name!r}: the base model's layers have no linear module {suffix!r} "
                f"(they have {known})")  # fmt: skip
            return
        self.resolved.add(path)
        if self.targets is not None and not self.target_matches(path):
            add(f"tensor {name!r}: module {path!r} is not in target_modules")
        rank = next((v for rule, v in self.rank_rules if rule.fullmatch(path)), None)
        rank = rank if _is_int(rank) else self.r
        out_f, in_f = self.base.module_shapes[suffix]
        expected = [rank, in_f] if kind == "lora_A" else [out_f, rank]
        if len(shape) != 2 or any(e not in (None, s) for e, s in zip(expected, shape, strict=True)):
            want = "[" + ", ".join("r" if e is None else str(e) for e in expected) + "]"
            add(
                f"tensor {name!r} has shape {list(shape)}, expected {want}: the base model's "
                f"{suffix} is [{out_f} out, {in_f} in] and the rank is {rank or 'unknown'}"
            )


def check_lora_adapter(
    config: dict[str, Any],
    header: SafetensorsHeader,
    base: BaseModelInfo,
    *,
    base_model_names: set[str],
    base_name: str,
    max_rank: int,
) -> list[LoraProblem]:
    """Every problem found (the first MAX_PROBLEMS, then a count); an empty list accepts it.
    `max_rank` is base model `base_name`'s `max_lora_rank` (named in the refusal)."""
    peft_type = config.get("peft_type")
    if not isinstance(peft_type, str) or peft_type.upper() != "LORA":
        return [
            LoraProblem(
                f"adapter_config.json: peft_type is {peft_type!r}; only LoRA adapters "
                '(peft_type "LORA") are accepted'
            )
        ]
    checker = _Checker(config, base, max_rank, base_name)
    checker.check_config(base_model_names)
    checker.check_tensors(header)
    problems = [LoraProblem(p) for p in checker.problems[:MAX_PROBLEMS]]
    if len(checker.problems) > MAX_PROBLEMS:
        problems.append(LoraProblem(f"and {len(checker.problems) - MAX_PROBLEMS} more problems"))
    return problems
