"""Comparing our attributions with an oracle's (Captum) to 1e-5 of the oracle's scale."""

from __future__ import annotations

import torch


def assert_matches(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """Fails unless `actual` equals `expected` to 1e-5 (relative, and absolute at the scale of
    `expected`)."""
    actual, expected = actual.detach(), expected.detach()
    scale = max(float(expected.abs().max()), 1e-12)
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5 * scale)
