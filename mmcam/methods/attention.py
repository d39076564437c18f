"""Maps read from a transformer's attention probabilities and their gradients.

Gradient-weighted attention (Li et al. 2021, ALBEF, sec. 6; BLIP's `compute_gradcam`): for a
score Y and one attention layer's probabilities A `[H, Tq, Tk]` (heads, queries, keys), the map
of key k is M_k = 1/|Q| sum_{q in Q} mean_h ReLU(dY/dA_hqk) * A_hqk, with Q the query tokens
the score is read from.
"""

from __future__ import annotations

import torch
from torch import Tensor


def attention_gradcam(
    attention: Tensor, gradients: Tensor, queries: Tensor, grid: tuple[int, int]
) -> Tensor:
    """M = 1/|Q| sum_q mean_h ReLU(G) * A on the patch keys, as `[N, h, w]` maps.

    `attention`, `gradients`: `[N, H, Tq, Tk]`; `queries`: `[N, Tq]` bool, the text tokens Q of
    each row. The last h*w keys are the patches in row-major order; the keys before them (the
    class patch) are dropped.
    """
    height, width = grid
    if attention.shape[-1] < height * width:
        raise ValueError(
            f"{attention.shape[-1]} attention keys cannot hold a {height}x{width} patch grid"
        )
    weighted = (gradients.clamp(min=0) * attention).mean(dim=1)  # [N, Tq, Tk]
    weights = queries.to(weighted.dtype)
    summed = torch.einsum("nq,nqk->nk", weights, weighted)  # [N, Tk]
    mean = summed / weights.sum(dim=1, keepdim=True).clamp(min=1)
    return mean[:, -height * width :].reshape(-1, height, width)
