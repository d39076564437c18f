"""Randomised copies of a model: the forward order of its layers, which layers each step
re-initialises, and a model handed in that comes back bit for bit as it went in."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mmcam.evaluation.randomization import draws_weights, parameter_layers, randomized_models


class BackwardsRegistered(nn.Module):
    """Modules registered in the opposite order to the one the forward pass calls them in."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(4, 2)
        self.norm = nn.BatchNorm1d(4)
        self.stem = nn.Linear(3, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.norm(self.stem(x))))


def _differs(a: nn.Module, b: nn.Module) -> set[str]:
    """The modules (by name) whose parameters differ between two copies."""
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    return {name.rsplit(".", 1)[0] for name in pa if not torch.equal(pa[name], pb[name])}


def test_layers_come_in_forward_order_not_registration_order() -> None:
    model = BackwardsRegistered()
    assert parameter_layers(model, lambda m: m(torch.rand(2, 3))) == ["stem", "norm", "head"]


def test_a_parameter_module_that_never_runs_is_left_out_and_named() -> None:
    model = BackwardsRegistered()
    model.unused = nn.Linear(2, 2)
    with pytest.warns(UserWarning, match=r"\['unused'\] own parameters but did not run"):
        layers = parameter_layers(model, lambda m: m(torch.rand(2, 3)))
    assert layers == ["stem", "norm", "head"]


def test_cascading_randomises_from_the_output_down_and_independent_one_at_a_time() -> None:
    torch.manual_seed(0)
    model = BackwardsRegistered()
    with torch.no_grad():
        model.norm.weight.uniform_(2, 3)  # so that a reset (to ones) is visible
    layers = ["stem", "norm", "head"]
    cascading = [(layer, _differs(model, copy)) for layer, copy in
                 randomized_models(model, layers, "cascading", seed=3)]  # fmt: skip
    assert cascading == [
        ("head", {"head"}),
        ("norm", {"head", "norm"}),
        ("stem", {"head", "norm", "stem"}),
    ]
    independent = [(layer, _differs(model, copy)) for layer, copy in
                   randomized_models(model, layers, "independent", seed=3)]  # fmt: skip
    assert independent == [("head", {"head"}), ("norm", {"norm"}), ("stem", {"stem"})]


def test_each_layer_is_reset_by_its_own_reset_parameters_under_the_seed() -> None:
    model = BackwardsRegistered()
    _, copy = next(randomized_models(model, ["stem", "norm", "head"], "cascading", seed=7))
    torch.manual_seed(7)
    expected = nn.Linear(4, 2)  # a fresh Linear's init is its reset_parameters()
    assert torch.equal(copy.head.weight, expected.weight)
    assert torch.equal(copy.head.bias, expected.bias)


def test_the_model_and_the_random_state_come_back_untouched() -> None:
    model = BackwardsRegistered().train()
    model.norm.eval()  # a mixed mode must survive too
    model(torch.rand(4, 3))  # BatchNorm running statistics that a reset would clear
    before = {k: v.clone() for k, v in model.state_dict().items()}
    modes = {name: m.training for name, m in model.named_modules()}
    rng = torch.get_rng_state()
    for order in ("cascading", "independent"):
        for _, copy in randomized_models(model, ["stem", "norm", "head"], order, seed=1):
            assert {n: m.training for n, m in copy.named_modules()} == modes
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert {name: m.training for name, m in model.named_modules()} == modes
    assert torch.equal(torch.get_rng_state(), rng)


def test_bad_layers_are_refused_with_what_to_do() -> None:
    model = BackwardsRegistered()
    with pytest.raises(ValueError, match="no layer 'tail'"):
        next(randomized_models(model, ["tail"], "cascading"))
    with pytest.raises(ValueError, match="unknown order 'sideways'"):
        next(randomized_models(model, ["head"], "sideways"))

    class Scaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = nn.Parameter(torch.ones(3))

    model.extra = Scaled()
    with pytest.raises(ValueError, match=r"without reset_parameters\(\) \(Scaled\)"):
        next(randomized_models(model, ["extra"], "independent"))


def test_only_layers_with_weight_matrices_draw_random_weights() -> None:
    model = BackwardsRegistered()
    assert draws_weights(model, "head") and draws_weights(model, "stem")
    assert not draws_weights(model, "norm")  # reset to ones and zeros: nothing random
    assert draws_weights(model, "")  # the whole model holds matrices
