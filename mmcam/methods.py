"""CAM methods: how the channel weights of a feature grid are formed.

Each method maps the activations A `[N, K, h, w]` and the gradients G = dY/dA of the same
shape to channel weights `[N, K]`; the map is then ReLU(sum_k w_k A_k) for all of them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

ChannelWeights = Callable[[Tensor, Tensor], Tensor]


def gradcam_weights(activations: Tensor, gradients: Tensor) -> Tensor:
    """Grad-CAM (Selvaraju et al. 2017): w_k = mean_ij dY/dA_k,ij."""
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


def counterfactual_weights(activations: Tensor, gradients: Tensor) -> Tensor:
    """Counterfactual Grad-CAM (Selvaraju et al. 2017, sec. 5): Grad-CAM of -Y.

    Shows the regions whose removal would make the model more confident in the target.
    """
    return -gradcam_weights(activations, gradients)


GRADIENT_METHODS: dict[str, ChannelWeights] = {
    "gradcam": gradcam_weights,
    "gradcam++": gradcam_plus_plus_weights,
    "counterfactual": counterfactual_weights,
}


def cam_weights(linear: nn.Linear, classes: Tensor) -> Tensor:
    """CAM (Zhou et al. 2016): w_k = W[c, k] of the linear layer after global average pooling."""
    return linear.weight.detach()[classes]  # [N, K]


def weighted_map(activations: Tensor, weights: Tensor) -> Tensor:
    """ReLU(sum_k w_k A_k): `[N, K, h, w]` and `[N, K]` to `[N, h, w]`."""
    return torch.einsum("nk,nkhw->nhw", weights, activations).clamp(min=0)


def channel_weights(method: str, activations: Tensor, gradients: Tensor) -> Tensor:
    """The weights of gradient method `method` (a key of `GRADIENT_METHODS`)."""
    try:
        weigh = GRADIENT_METHODS[method]
    except KeyError:
        raise ValueError(
            f"unknown CAM method {method!r}; choose one of {', '.join(GRADIENT_METHODS)}"
        ) from None
    return weigh(activations, gradients)
