"""CAM methods: how a feature grid and its gradients become one map.

Each method maps the activations A `[N, K, h, w]` and the gradients G = dY/dA of the same
shape to a signed map `[N, h, w]`; the explanation is its ReLU. All but LayerCAM are linear in
G, so their signed map of a sum of scores is the sum of the scores' signed maps.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

SignedMap = Callable[[Tensor, Tensor], Tensor]


def gradcam_weights(activations: Tensor, gradients: Tensor) -> Tensor:
    """Grad-CAM (Selvaraju et al. 2017) channel weights: w_k = mean_ij dY/dA_k,ij."""
    return gradients.mean(dim=(-2, -1))


def gradcam_plus_plus_weights(activations: Tensor, gradients: Tensor) -> Tensor:
    """Grad-CAM++ (Chattopadhay et al. 2018), with Y = exp(S) so higher derivatives are powers of G.

    w_k = sum_ij alpha_k,ij ReLU(G_k,ij),
    alpha_k,ij = G^2 / (2 G^2 + sum_ab A_k,ab G^3)   (0 where G = 0).
    """
    g2 = gradients.pow(2)
    g3 = g2 * gradients
    activation_sums = activations.sum(dim=(-2, -1), keepdim=True)  # [N, K, 1, 1]
    alpha = g2 / (2 * g2 + activation_sums * g3 + 1e-6)
    alpha = torch.where(gradients != 0, alpha, torch.zeros_like(alpha))
    return (alpha * gradients.clamp(min=0)).sum(dim=(-2, -1))


def cam_weights(linear: nn.Linear, classes: Tensor) -> Tensor:
    """CAM (Zhou et al. 2016): w_k = W[c, k] of the linear layer after global average pooling."""
    return linear.weight.detach()[classes]  # [N, K]


def weighted_sum(activations: Tensor, weights: Tensor) -> Tensor:
    """sum_k w_k A_k: `[N, K, h, w]` and `[N, K]` to `[N, h, w]`."""
    return torch.einsum("nk,nkhw->nhw", weights, activations)


def weighted_map(activations: Tensor, weights: Tensor) -> Tensor:
    """ReLU(sum_k w_k A_k)."""
    return weighted_sum(activations, weights).clamp(min=0)


def gradcam(activations: Tensor, gradients: Tensor) -> Tensor:
    return weighted_sum(activations, gradcam_weights(activations, gradients))


def gradcam_plus_plus(activations: Tensor, gradients: Tensor) -> Tensor:
    return weighted_sum(activations, gradcam_plus_plus_weights(activations, gradients))


def counterfactual(activations: Tensor, gradients: Tensor) -> Tensor:
    """Counterfactual Grad-CAM (Selvaraju et al. 2017, sec. 5): Grad-CAM of -Y.

    Shows the regions whose removal would make the model more confident in the target.
    """
    return -gradcam(activations, gradients)


def hirescam(activations: Tensor, gradients: Tensor) -> Tensor:
    """HiResCAM (Draelos & Carin 2020): sum_k G_k * A_k, element-wise instead of averaged.

    Each cell keeps its own gradient, so a map follows what the score depends on at that cell.
    Grad-CAM applies a channel's grid-averaged gradient to the channel's activation everywhere:
    when the gradient sits on a few cells (attention over the grid) and the channel is active
    elsewhere too, its peak can land off the object the score depends on.
    """
    return (gradients * activations).sum(dim=1)


def layercam(activations: Tensor, gradients: Tensor) -> Tensor:
    """LayerCAM (Jiang et al., IEEE TIP 2021): sum_k ReLU(G_k) * A_k, a weight per cell.

    Only positive gradients count, cell by cell, so it stays sharp at early, high-resolution
    layers where Grad-CAM's averaged weights blur; the paper fuses several layers' maps (each
    normalised, element-wise maximum) for fine localisation. Not linear in G: the map of a sum of
    scores is not the sum of their maps.
    """
    return (gradients.clamp(min=0) * activations).sum(dim=1)


def signed_map(method: str) -> SignedMap:
    """The signed-map formula of gradient method `method`, read from the method registry."""
    from mmcam.methods import registry  # the registry imports the formulas

    record = registry.METHODS.get(method)
    if record is None or record.kind != "gradient":
        raise ValueError(
            f"unknown CAM method {method!r}; choose one of "
            f"{', '.join(registry.ids(kind='gradient'))}"
        )
    return record.function


def gradient_map(method: str, activations: Tensor, gradients: Tensor) -> Tensor:
    """ReLU of the signed map of gradient method `method` (a gradient method of the registry)."""
    return signed_map(method)(activations, gradients).clamp(min=0)


def __getattr__(name: str) -> object:
    """`GRADIENT_METHODS` (id -> formula), read from the registry, for a release."""
    if name == "GRADIENT_METHODS":
        from mmcam.methods import registry
        from mmcam.methods.deprecated import deprecated_list

        return deprecated_list(__name__, name, registry.methods(kind="gradient"), "function")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
