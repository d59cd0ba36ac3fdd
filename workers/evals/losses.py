"""Per-row mean token loss: `workers.training.loop.mean_loss`, one value per example.

The suite's `loss` check compares each row's own loss with its threshold, so the pooled mean
the training loop needs is not enough. The batches, padding and LM-head-at-targets trick are
the training loop's own (its `_collate` and `_split_head`), so a row scores here exactly as
`mean_loss` would score it alone, up to float rounding.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from workers.training.data import IGNORE, Example
from workers.training.loop import _collate, _split_head


def row_losses(
    model: nn.Module, examples: list[Example], *, batch_size: int, pad_id: int
) -> list[float]:
    """Mean next-token loss (nats per target token) of each example, in input order; NaN for
    an example without target tokens."""
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].input_ids))
    losses = [math.nan] * len(examples)
    if not examples:
        return losses
    device = next(model.parameters()).device
    split = _split_head(model)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                chunk = order[start : start + batch_size]
                batch = _collate([examples[i] for i in chunk], pad_id, device)
                targets = batch.labels[:, 1:]
                keep = targets != IGNORE
                if split is None:
                    logits = model(
                        input_ids=batch.input_ids,
                        attention_mask=batch.attention_mask,
                        use_cache=False,
                    ).logits[:, :-1][keep]
                else:
                    decoder, head = split
                    hidden = decoder(
                        input_ids=batch.input_ids,
                        attention_mask=batch.attention_mask,
                        use_cache=False,
                    ).last_hidden_state
                    logits = head(hidden[:, :-1][keep])
                nll = F.cross_entropy(logits.float(), targets[keep], reduction="none")
                sums = torch.zeros(len(chunk), dtype=torch.float64, device=nll.device)
                sums.index_add_(0, keep.nonzero()[:, 0], nll.double())
                counts = keep.sum(dim=1)
                for row, i in enumerate(chunk):
                    n = int(counts[row])
                    losses[i] = float(sums[row]) / n if n else math.nan
    finally:
        model.train(was_training)
    return losses
