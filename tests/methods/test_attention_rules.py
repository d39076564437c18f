"""The attention methods' rules (relevance, rollout, the residual normalisation, the
cross-attention rule) on one- and two-layer toys whose answer is known in closed form."""

from __future__ import annotations

import torch

from mmcam.methods import registry
from mmcam.methods.attention import AttentionStack, relevance, residual_normalized, rollout

METHODS = ("attention", "rollout", "attention_gradcam", "relevance")


def test_relevance_of_one_single_head_layer_is_the_positive_weighted_attention():
    attention = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3], [0.2, 0.2, 0.6]])[None, None]
    gradient = torch.tensor([[2.0, -1.0, 4.0], [1.0, 1.0, -3.0], [0.5, 2.0, 1.0]])[None, None]
    rows = torch.tensor([[True, False, False]])
    stack = AttentionStack([(attention, gradient)], rows, rows)
    # R = I + (G*A)+; row 0 without its own entry: [0, 0, 0.8]
    torch.testing.assert_close(relevance(stack), torch.tensor([[0.0, 0.0, 0.8]]))


def test_two_layer_relevance_and_rollout_equal_the_closed_form():
    a1 = torch.tensor([[0.6, 0.4], [0.2, 0.8]])
    a2 = torch.tensor([[0.5, 0.5], [0.0, 1.0]])
    g1 = torch.tensor([[1.0, 1.0], [-1.0, 2.0]])
    g2 = torch.tensor([[2.0, -2.0], [0.0, 1.0]])
    rows = torch.tensor([[True, False]])
    stack = AttentionStack([(a1[None, None], g1[None, None]), (a2[None, None], g2[None, None])],
                           rows, rows)  # fmt: skip
    # R1 = I + [[.6, .4], [0, 1.6]]; R2 = R1 + [[1, 0], [0, 1]] R1 = 2 R1: row 0 = [3.2, 0.8]
    torch.testing.assert_close(relevance(stack), torch.tensor([[0.0, 0.8]]))
    # Â1 = [[.8, .2], [.1, .9]], Â2 = [[.75, .25], [0, 1]]: Â2 Â1 row 0 = [.625, .375]
    torch.testing.assert_close(rollout(stack), torch.tensor([[0.0, 0.375]]))


def test_residual_normalisation_and_the_cross_attention_rule_by_hand():
    relevant = torch.tensor([[1.5, 0.0], [0.2, 1.6]])
    # R - I = [[.5, 0], [.2, .6]] -> rows [1, 0], [.25, .75], + I
    expected = torch.tensor([[2.0, 0.0], [0.25, 1.75]])
    torch.testing.assert_close(residual_normalized(relevant[None])[0], expected)
    torch.testing.assert_close(residual_normalized(torch.eye(2)[None])[0], torch.eye(2))  # no NaN
    # One text layer (2 tokens, self-attention weight 0) and its cross-attention to 3 keys:
    # R_tt = I, so R̂_tt = I, R̂_ii = I, and R_ti = Ā_ti.
    self_attention = (torch.eye(2)[None, None], torch.zeros(1, 1, 2, 2))
    cross_a = torch.tensor([[0.2, 0.3, 0.5], [0.6, 0.2, 0.2]])[None, None]
    cross_g = torch.tensor([[1.0, -1.0, 2.0], [1.0, 1.0, 1.0]])[None, None]
    rows = torch.tensor([[False, True]])
    stack = AttentionStack([self_attention], rows, rows, cross=[(cross_a, cross_g)])
    torch.testing.assert_close(relevance(stack), torch.tensor([[0.6, 0.2, 0.2]]))


def test_rollout_is_registered_as_target_independent():
    assert registry.get("rollout").target_independent
    assert not registry.get("relevance").target_independent
    for method in METHODS:
        assert registry.get(method).kind == "attention"
        assert "attention_captions" in registry.get(method).explainers
