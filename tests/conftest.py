"""Fixtures shared by several test files."""

from __future__ import annotations

import pytest
import torch
from tiny_models import TinyCNN
from torch import nn


@pytest.fixture
def tiny_classifier() -> tuple[nn.Module, torch.Tensor]:
    """A seeded TinyCNN in eval mode and three 16x16 images."""
    torch.manual_seed(0)
    return TinyCNN().eval(), torch.randn(3, 3, 16, 16)
