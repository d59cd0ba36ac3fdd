"""A paused training run's full state, and its bytes in the object store.

Everything the loop needs to continue exactly where it stopped: the LoRA weights, the
optimizer's moments, the current epoch's batch order and how far into it the run got, the data
generator (later epochs' orders) and the global CPU generator (LoRA dropout), the counters and
the early-stopping bookkeeping. Resumed with the same data, config and threads on CPU, a run
ends with bitwise the weights of one that never paused.

Stored with `torch.save` as plain containers of tensors and numbers, and read back with
`weights_only=True`: the bytes come from the object store, so loading them runs no code.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, fields
from typing import Any

import torch

FORMAT = 1


@dataclass
class TrainState:
    step: int
    tokens: int
    train_seconds: float
    epoch_order: list[list[int]]  # the current epoch's batches (example indices)
    position: int  # batches of `epoch_order` already trained on
    generator: torch.Tensor  # the data generator, after drawing `epoch_order`
    cpu_rng: torch.Tensor  # the global CPU generator (LoRA dropout)
    params: dict[str, torch.Tensor]  # trainable parameters by name
    optimizer: dict[str, Any]  # the optimizer's state_dict
    best: float | None
    best_step: int
    best_state: list[torch.Tensor] | None  # trainable parameters at the best eval
    bad_evals: int
    # what the run was started with (total steps, example counts, batch size, seed): a resume
    # under anything else would silently train something different, so it is refused
    fingerprint: dict[str, int]

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        torch.save({"format": FORMAT, **_shallow(self)}, buffer)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> TrainState:
        raw = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise ValueError("not a training state this worker can read")
        names = {f.name for f in fields(cls)}
        missing = names - raw.keys()
        if missing:
            raise ValueError(f"training state lacks {sorted(missing)}")
        return cls(**{name: raw[name] for name in names})


def _shallow(state: TrainState) -> dict[str, Any]:
    """The fields as they are (`dataclasses.asdict` would deep-copy every tensor)."""
    return {f.name: getattr(state, f.name) for f in fields(state)}
