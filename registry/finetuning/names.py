"""`fine_tuned_model` names, OpenAI's pattern: `ft:<base>:<tenant>:<suffix>:<id>`, and a
checkpoint's `ft:<base>:<tenant>:<suffix>:<id>:ckpt-step-<N>`.

`<id>` is the first 8 hex digits of the job's id (unique per tenant: the name is stored with a
unique constraint, and a clash, about one in four billion, takes more digits). The suffix may be
empty (`ft:tiny:acme::1a2b3c4d`) and never holds `:`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SUFFIX_PATTERN = r"^[A-Za-z0-9._-]{0,64}$"
_CKPT = re.compile(r"^(?P<model>ft:.+):ckpt-step-(?P<step>[0-9]{1,9})$")


@dataclass(frozen=True)
class FtName:
    model: str  # the fine-tuned model's name
    step: int | None  # a checkpoint's step, None for the model itself


def fine_tuned_model(base: str, tenant: str, suffix: str, short_id: str) -> str:
    return f"ft:{base}:{tenant}:{suffix}:{short_id}"


def checkpoint_model(model: str, step: int) -> str:
    return f"{model}:ckpt-step-{step}"


def parse(name: str) -> FtName | None:
    """The fine-tuned model (and checkpoint step) `name` stands for; None if not an `ft:` name."""
    if not name.startswith("ft:"):
        return None
    m = _CKPT.match(name)
    if m:
        return FtName(m.group("model"), int(m.group("step")))
    return FtName(name, None)
