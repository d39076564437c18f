"""Comparing our attributions with an oracle's (Captum) to 1e-5 of the oracle's scale."""

from __future__ import annotations

import torch


def close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    actual, expected = actual.detach(), expected.detach()
    scale = max(float(expected.abs().max()), 1e-12)
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5 * scale)
