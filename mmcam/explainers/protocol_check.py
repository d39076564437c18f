"""The protocol check both explainers run: each row of a batch is scored as if it sat alone and
in its place.

The explainers run a model on batches it never sees in a plain call (a caption's words as replica
rows, a question's top answers as replicas, perturbed copies of several images) and read row b's
scores as image b's. A model that sorts its batch (by caption or question length, as a packed
LSTM wants) and does not restore the order, or whose rows depend on each other, would give one
image another's scores and maps without a word. So each explanation is checked: the scores it
explained `[B, T]` must equal those of one plain call, without gradients, of the same images in
another order and company (`reference_rows`: the batch reversed, then its last image once more).

Why that call: a model that reorders rows by something of their own (a length) returns them in
that order whatever order they came in, so the explained call and the reversed one cannot both
come back in the order given unless every row sorts alike, when no order changes at all; and a
row that depends on the others meets other neighbours in the reference call (another batch size
and mean). Not caught: rows that interact only through a statistic that duplicating every row
leaves alone (a batch mean) when there is one image (B = 1); and interactions that arise only
among perturbed copies, since occlusion and RISE are checked on their unperturbed call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class ProtocolRules:
    """What a broken protocol's error says: the protocol's name, what its scores are called (for
    "3 of 4 words differ"), the likely causes and the user guide's section that shows the fix."""

    protocol: str
    scores: str
    causes: str
    section: str


def reference_rows(batch: int, device: torch.device) -> Tensor:
    """The rows of the reference call `[B + 1]`: B-1, ..., 1, 0, then B-1 again."""
    reversed_rows = torch.arange(batch - 1, -1, -1, device=device)
    return torch.cat([reversed_rows, reversed_rows[:1]])


def check_rows(
    model: object,
    explained: Tensor,
    plain: Callable[[Tensor], Tensor],
    valid: Tensor | None,
    rules: ProtocolRules,
    name_score: Callable[[int, int], str],
) -> None:
    """Raise unless the explained scores `[B, T]` equal `plain(rows)` `[R, T]`, the scores of a
    plain call of images `rows` (`reference_rows`), within float tolerance: max(1e-4, 10 eps)
    * (1 + |score|) for the dtype `plain` returns, the one the model computed in. `valid` `[B, T]`
    marks the scores that count (None: all); `name_score(b, t)` names score t of image b."""
    rows = reference_rows(explained.shape[0], explained.device)
    with torch.no_grad():
        reference = plain(rows)
    eps = torch.finfo(reference.dtype).eps if reference.is_floating_point() else 0.0
    reference = reference.float()
    expected = explained.detach().float()[rows]  # [R, T]
    tolerance = max(1e-4, 10 * eps) * (1 + reference.abs())
    agree = ((expected - reference).abs() <= tolerance) | (expected.isnan() & reference.isnan())
    wrong = ~agree if valid is None else ~agree & valid[rows]
    if not wrong.any():
        return
    first, column = (int(i) for i in wrong.nonzero()[0])
    image = int(rows[first])
    differ = torch.zeros(explained.shape, device=wrong.device).index_add_(0, rows, wrong.float())
    counted = explained.numel() if valid is None else int(valid.sum())
    raise ValueError(
        f"{type(model).__name__} breaks the {rules.protocol} protocol: "
        f"{name_score(image, column)} is {float(expected[first, column]):.6g} in the explained "
        f"pass but {float(reference[first, column]):.6g} in a plain call of the same images in "
        f"another order ({int((differ > 0).sum())} of {counted} {rules.scores} differ). Likely "
        f"causes: {rules.causes}. See the user guide (docs/guide/wrap.md), '{rules.section}'; "
        "check=False skips this check"
    )
