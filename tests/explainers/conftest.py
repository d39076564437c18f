"""Fixtures the explainer tests share: a tiny captioner and two small images."""

import pytest
import torch
from tiny_models import TinyCaptioner


@pytest.fixture(scope="module")
def captioner():
    torch.manual_seed(0)
    return TinyCaptioner().eval()


@pytest.fixture(scope="module")
def images():
    torch.manual_seed(1)
    return torch.randn(2, 3, 8, 8)
