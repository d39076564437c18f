"""Comparing our attributions with an oracle's (Captum) to 1e-5 of the oracle's scale."""

from __future__ import annotations

import torch


def assert_matches(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """Fails unless `actual` equals `expected` to 1e-5 (relative, and absolute at the scale of
    `expected`)."""
    actual, expected = actual.detach(), expected.detach()
    scale = max(float(expected.abs().max()), 1e-12)
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5 * scale)


def assert_drops_match(actual: torch.Tensor, expected: torch.Tensor, scores: torch.Tensor) -> None:
    """Fails unless perturbation attributions (differences of the scores `scores`) agree to 1e-5
    at the scale of the scores compared: a drop of two log-probabilities near -2.5 carries their
    rounding (~1e-7) however small the drop is, so the attributions' own scale is no yardstick."""
    scale = max(float(scores.detach().abs().max()), 1e-12)
    torch.testing.assert_close(actual.detach(), expected.detach(), rtol=0, atol=1e-5 * scale)
