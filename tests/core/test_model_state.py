"""`explaining()`: the model comes back exactly as it went in, and cuDNN is taken away only from
the recurrent modules."""

from __future__ import annotations

import pytest
import torch
from tiny_models import TinyCaptioner, TinyCNN
from torch import nn

from mmcam.core.model_state import explaining
from mmcam.core.targets import ClassLogit
from mmcam.explainers.captioning import CaptionExplainer
from mmcam.methods.cam import explain


class Wrapper(nn.Module):
    """A new module (training mode by default) around a captioner the user put in eval mode,
    with a dropout of its own and one frozen BatchNorm (fine-tuning with frozen statistics)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.inner = TinyCaptioner().eval()
        self.norm = nn.BatchNorm2d(3)
        self.norm.eval()
        self.norm.requires_grad_(False)
        self.drop = nn.Dropout(0.5)
        self.inner.embed.requires_grad_(False)
        self.bos_index, self.eos_index, self.pad_index = 1, 2, 0

    def encode(self, images):
        return self.inner.encode(self.drop(self.norm(images)))

    def decode_logits(self, features, tokens, lengths):
        return self.inner.decode_logits(features, tokens, lengths)

    def generate(self, images, max_length=20, beam_size=1):
        return self.inner.generate(self.norm(images), max_length)

    def words(self, token_ids):
        return [f"w{i}" for i in token_ids]


def state(model: nn.Module) -> tuple[list, list]:
    return (
        [(name, m.training) for name, m in model.named_modules()],
        [(name, p.requires_grad) for name, p in model.named_parameters()],
    )


def test_mixed_modes_and_frozen_batchnorm_come_back_exactly():
    model = Wrapper()
    images = torch.randn(2, 3, 8, 8)
    before = state(model)
    assert {t for _, t in before[0]} == {True, False}  # really mixed
    assert {f for _, f in before[1]} == {True, False}
    tokens, lengths = torch.tensor([[1, 4, 5, 2]]).repeat(2, 1), torch.tensor([3, 3])
    model.drop.eval()  # for the reference output only: dropout off, then back to training
    with torch.no_grad():
        reference = model.decode_logits(model.encode(images), tokens, lengths)
    model.drop.train()
    statistics = model.norm.running_mean.clone()

    CaptionExplainer(model, "inner.encoder.features").explain(images, [[4, 5], [6, 7]])

    assert state(model) == before
    assert all(p.grad is None for p in model.parameters())
    model.drop.eval()
    with torch.no_grad():
        after = model.decode_logits(model.encode(images), tokens, lengths)
    torch.testing.assert_close(after, reference, atol=0, rtol=0)
    torch.testing.assert_close(model.norm.running_mean, statistics, atol=0, rtol=0)


def test_state_comes_back_when_the_forward_raises():
    model = Wrapper()
    before = state(model)
    with pytest.raises(RuntimeError, match="boom"), explaining(model, torch.device("cpu")):
        assert not any(m.training for m in model.modules())
        assert not any(p.requires_grad for p in model.parameters())
        raise RuntimeError("boom")
    assert state(model) == before


class ClassifierInTraining(nn.Module):
    """A classifier mid-training: the wrapper and its input BatchNorm in training mode (a forward
    in that mode updates the running statistics), an `eval()` backbone, a frozen first conv.
    `fail=True` makes the forward raise after the explained layer ran."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.norm = nn.BatchNorm2d(3)
        self.cnn = TinyCNN().eval()
        self.cnn.body[0].requires_grad_(False)
        self.fail = False
        self.seen: list[tuple[bool, bool]] = []  # (any module training, any parameter trainable)
        self.cnn.features.register_forward_hook(self._record)

    def _record(self, module, inputs, output):
        training = any(m.training for m in self.modules())
        self.seen.append((training, any(p.requires_grad for p in self.parameters())))

    def forward(self, images):
        logits = self.cnn(self.norm(images))
        if self.fail:
            raise RuntimeError("boom")
        return logits


def test_one_call_explain_restores_the_model_state_also_when_the_forward_raises():
    model, images = ClassifierInTraining(), torch.randn(2, 3, 8, 8)
    before = state(model)
    assert {t for _, t in before[0]} == {True, False} and {f for _, f in before[1]} == {True, False}
    buffers = {name: value.clone() for name, value in model.state_dict().items()}

    explain(model, images, ClassLogit(0), "cnn.features")
    model.fail = True
    with pytest.raises(RuntimeError, match="boom"):
        explain(model, images, ClassLogit(0), "cnn.features")

    assert model.seen == [(False, False)] * 2  # explained in eval mode, parameters frozen
    assert state(model) == before
    assert all(torch.equal(value, buffers[name]) for name, value in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


class ConvThenLSTM(nn.Module):
    """Records whether cuDNN was on when each of its layers ran."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.lstm = nn.LSTM(4, 4, batch_first=True)
        self.head = nn.Linear(4, 2)
        self.seen: dict[str, list[bool]] = {"conv": [], "lstm": [], "head": []}
        for name in self.seen:
            getattr(self, name).register_forward_hook(self._record(name))

    def _record(self, name):
        def hook(module, inputs, output):
            self.seen[name].append(torch.backends.cudnn.enabled)

        return hook

    def forward(self, images):
        grid = self.conv(images)  # [B, 4, h, w]
        sequence, _ = self.lstm(grid.flatten(2).transpose(1, 2))
        return self.head(sequence[:, -1])


def test_cudnn_is_off_only_around_recurrent_modules_on_cuda():
    """The switch logic on the CPU (this machine has no GPU): with a CUDA device, the LSTM runs
    with cuDNN off and the convolution before and the layer after with cuDNN on; the flag is what
    it was afterwards, even when the recurrent forward raised."""
    model = ConvThenLSTM()
    assert torch.backends.cudnn.enabled
    with explaining(model, torch.device("cuda")), torch.no_grad():
        model(torch.randn(1, 3, 5, 5))
    assert model.seen == {"conv": [True], "lstm": [False], "head": [True]}
    assert torch.backends.cudnn.enabled
    with pytest.raises(RuntimeError), explaining(model, torch.device("cuda")):
        model.lstm(torch.randn(1, 3, 5))  # wrong feature size: raises inside the LSTM
    assert torch.backends.cudnn.enabled
    assert all(not m._forward_pre_hooks for m in model.modules())
    assert all(
        len(m._forward_hooks) == (m in (model.conv, model.lstm, model.head))
        for m in model.modules()
    )
