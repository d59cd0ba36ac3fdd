"""OpenAI's hyperparameters (`n_epochs`, `batch_size`, `learning_rate_multiplier`), each `"auto"`
or a number, checked and turned into the values a job trains with.

"auto" is decided from the training file's row count, so a small file gets more passes and a
batch never exceeds the file: n_epochs = 3 from 100 rows up, else min(10, ceil(300 / rows));
batch_size = min(8, rows); learning_rate_multiplier = 1.0 (times the adapter's learning rate).
The job object shows what was chosen, as OpenAI's does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from registry.finetuning.errors import OpenAIError

AUTO = "auto"
KEYS = ("n_epochs", "batch_size", "learning_rate_multiplier")
_INT_RANGES = {"n_epochs": (1, 50), "batch_size": (1, 256)}
_LR_MAX = 10.0


def check(asked: Any, *, param: str) -> dict[str, Any]:
    """The asked hyperparameters with every key present ("auto" where not given), or a 400
    naming the offending field."""
    if asked is None:
        asked = {}
    if not isinstance(asked, dict):
        raise OpenAIError(400, f"{param} must be an object", param=param)
    unknown = sorted(set(asked) - set(KEYS))
    if unknown:
        raise OpenAIError(
            400,
            f"{param}.{unknown[0]} is not a supported hyperparameter; supported: {', '.join(KEYS)}",
            param=f"{param}.{unknown[0]}",
        )
    out: dict[str, Any] = {}
    for key in KEYS:
        value = asked.get(key, AUTO)
        out[key] = AUTO if value is None or value == AUTO else _number(key, value, param)
    return out


def _number(key: str, value: Any, param: str) -> int | float:
    where = f"{param}.{key}"
    if key in _INT_RANGES:
        low, high = _INT_RANGES[key]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise OpenAIError(
                400, f'{where} must be "auto" or an integer from {low} to {high}', param=where
            )
        return value
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or not 0 < value <= _LR_MAX:
        raise OpenAIError(
            400, f'{where} must be "auto" or a number above 0 and at most {_LR_MAX:g}', param=where
        )
    return float(value)


@dataclass(frozen=True)
class Chosen:
    n_epochs: int
    batch_size: int
    learning_rate_multiplier: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "n_epochs": self.n_epochs,
            "batch_size": self.batch_size,
            "learning_rate_multiplier": self.learning_rate_multiplier,
        }


def choose(asked: dict[str, Any], *, rows: int) -> Chosen:
    """Resolve "auto" for a training file of `rows` rows (`asked` as `check` returns it)."""
    rows = max(1, rows)
    auto_epochs = 3 if rows >= 100 else min(10, math.ceil(300 / rows))
    epochs = asked["n_epochs"]
    batch = asked["batch_size"]
    lr = asked["learning_rate_multiplier"]
    return Chosen(
        n_epochs=auto_epochs if epochs == AUTO else int(epochs),
        batch_size=min(8, rows) if batch == AUTO else int(batch),
        learning_rate_multiplier=1.0 if lr == AUTO else float(lr),
    )


def overrides(chosen: Chosen, *, base_learning_rate: float, seed: int) -> dict[str, Any]:
    """The training-config overrides a job is created with."""
    return {
        "epochs": chosen.n_epochs,
        "batch_size": chosen.batch_size,
        "learning_rate": base_learning_rate * chosen.learning_rate_multiplier,
        "seed": seed,
    }


def asked(
    method: dict[str, Any] | None, legacy: dict[str, Any] | None, integrations: list[Any] | None
) -> dict[str, Any]:
    """The supervised hyperparameters a create body asks for (`method`, else the legacy
    top-level `hyperparameters`); other methods and integrations are refused with OpenAI's
    codes."""
    if integrations:
        raise OpenAIError(
            400,
            "integrations are not supported by loraplex",
            code="unsupported",
            param="integrations",
        )
    if method is None:
        return check(legacy, param="hyperparameters")
    kind = method.get("type")
    if kind in ("dpo", "reinforcement"):
        raise OpenAIError(
            400,
            f"method.type '{kind}' is not supported by loraplex; use 'supervised'",
            code="unsupported_method",
            param="method.type",
        )
    if kind != "supervised":
        raise OpenAIError(400, "method.type must be 'supervised'", param="method.type")
    supervised = method.get("supervised") or {}
    if not isinstance(supervised, dict):
        raise OpenAIError(400, "method.supervised must be an object", param="method.supervised")
    return check(supervised.get("hyperparameters"), param="method.supervised.hyperparameters")
