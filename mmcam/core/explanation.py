"""The result of explaining: raw maps, maps at input resolution, scores, labels."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor


def normalize_maps(maps: Tensor) -> tuple[Tensor, Tensor]:
    """Min-max normalise each map of `[..., H, W]` to [0, 1], batched.

    A flat map (all zero, or constant) becomes all zeros rather than NaN and is flagged in the
    returned boolean `[...]` tensor `empty`.
    """
    flat = maps.flatten(-2)
    low = flat.amin(dim=-1, keepdim=True)
    span = flat.amax(dim=-1, keepdim=True) - low
    empty = span.squeeze(-1) <= 0
    scaled = torch.where(span > 0, (flat - low) / span.clamp(min=torch.finfo(maps.dtype).tiny), 0)
    return scaled.view_as(maps), empty


def upsample_maps(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinearly resize `[..., h, w]` maps to `size` (half-pixel centres, no corner alignment)."""
    lead = maps.shape[:-2]
    resized = F.interpolate(
        maps.reshape(-1, 1, *maps.shape[-2:]), size=size, mode="bilinear", align_corners=False
    )
    return resized.reshape(*lead, *size)


# A map is negligible when its largest value is at most this fraction of the map its terms would
# make if none cancelled: 1000 float32 epsilons (about the rounding of a 1000-term float32 sum),
# in every dtype. Evidence that small is no evidence at any precision: a float64 map a billion
# times smaller than its terms is cancellation, not a finding, and stretching it to [0, 1]
# would show it as one.
NEGLIGIBLE_RATIO = 1000 * torch.finfo(torch.float32).eps  # 1.2e-4
# A less precise dtype's own rounding can be larger: a half-precision backward pass leaves about
# half an epsilon of the terms in a sum that cancels exactly (measured: HiResCAM of a model that
# normalises each cell), so there the threshold is this many epsilons when that is larger.
ROUNDING_EPSILONS = 4


def negligible_ratio(*dtypes: torch.dtype) -> float:
    """The fraction of its uncancelled map below which a map computed from tensors of `dtypes`
    is rounding noise: NEGLIGIBLE_RATIO (float32, float64), or ROUNDING_EPSILONS epsilons of the
    least precise dtype when larger (float16: 3.9e-3, bfloat16: 3.1e-2)."""
    eps = max(torch.finfo(dtype).eps for dtype in dtypes)
    return max(NEGLIGIBLE_RATIO, ROUNDING_EPSILONS * eps)


# Why a map is flagged `empty` (see `Explanation.empty_reason`).
FLAT = "flat: the map is constant (zero after ReLU), so there is nothing to show"
NEGLIGIBLE = (
    "negligible: the map's largest value is below 1.2e-4 (1000 float32 epsilons, in any dtype; "
    "4 epsilons of a half-precision dtype) of the map its terms would make if none cancelled, "
    "so what is left is rounding noise, not evidence"
)


@dataclass
class Explanation:
    """Maps explaining one or more scalar scores per image.

    Every tensor's leading shape is that of `scores`: `[B]` for one target per image, `[B, T]`
    for several (the words of a caption, the top answers). `labels` names the targets (words,
    answers, class names) with the same nesting.

    `raw` has one shape per kind of method (the method registry's kinds; `method` is the id):

    - gradient (Grad-CAM and the CAM family): `[B, (T,) h, w]` at the explained layer's grid,
      after ReLU, unscaled;
    - rule (guided backprop, deconvnet, guided Grad-CAM): the signed attribution
      `[B, (T,) 3, H, W]` at the input's pixels (`maps` show max_c |raw|);
    - perturbation (occlusion, RISE): `[B, (T,) H, W]` at the input's pixels;
    - attention (attention methods): `[B, (T,) h, w]` on the patch grid.

    Attributes:
        raw: the unscaled maps, in the method kind's shape (above).
        maps: `[..., H, W]`, upsampled to the input (bilinear) and scaled to [0, 1].
        empty: `[...]` bool: the map was flat or negligible, so `maps` holds zeros
            (`empty_reason` says which).
        scores: `[...]`: the explained scores.
        method: the method's id in the registry.
        labels: the targets' names, nested as `scores`.
        negligible: `[...]` bool: empty because the map's terms cancelled out; None when the
            method does not check.
        target_independent: every target has the same map (attention rollout).
    """

    raw: Tensor  # the method kind's shape, see above
    maps: Tensor  # [..., H, W]: upsampled to the input and normalised to [0, 1]
    empty: Tensor  # [...] bool: the map was flat or negligible, so `maps` holds zeros
    scores: Tensor  # [...]: the explained scores
    method: str
    labels: list = field(default_factory=list)
    negligible: Tensor | None = None  # [...] bool: empty because its terms cancelled out
    target_independent: bool = False  # every target has the same map (attention rollout)

    def empty_reason(self, *index: int) -> str | None:
        """Why map `index` is empty (`FLAT` or `NEGLIGIBLE`), or None when it is not.

        Args:
            *index: the map's index in `scores` (one int per leading dimension).

        Returns:
            `FLAT`, `NEGLIGIBLE` or None.
        """
        if not bool(self.empty[index]):
            return None
        if self.negligible is not None and bool(self.negligible[index]):
            return NEGLIGIBLE
        return FLAT

    @classmethod
    def from_raw(
        cls,
        raw: Tensor,
        scores: Tensor,
        size: tuple[int, int] | None,
        method: str,
        labels: list | None = None,
        negligible: Tensor | None = None,
    ) -> Explanation:
        """Upsample `raw` to `size` (layer resolution when None) and normalise it; maps flagged
        `negligible` `[...]` are left all zero and flagged empty rather than stretched."""
        upsampled = upsample_maps(raw, size) if size is not None else raw
        maps, empty = normalize_maps(upsampled)
        if negligible is not None:
            maps = torch.where(negligible[..., None, None], 0.0, maps)
            empty = empty | negligible
        return cls(raw, maps, empty, scores.detach(), method, labels or [], negligible)

    def to_dict(self) -> dict:
        """A JSON-ready summary: method, labels, scores, empty flags and the map shapes."""
        return {
            "method": self.method,
            "labels": self.labels,
            "scores": self.scores.tolist(),
            "empty": self.empty.tolist(),
            "negligible": None if self.negligible is None else self.negligible.tolist(),
            "target_independent": self.target_independent,
            "raw_shape": list(self.raw.shape),
            "map_shape": list(self.maps.shape),
        }
