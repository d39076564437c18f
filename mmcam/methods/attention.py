"""Maps read from a transformer's attention probabilities and their gradients.

Every method takes an `AttentionStack` (each layer's probabilities A `[N, H, Tq, Tk]` and their
gradients G = dY/dA, from the input up, and the rows a target is read at) and returns the
relevance of every key of the stack's last layer `[N, Tk]` (the image tokens of an
encoder-decoder, every token of a single stream); the explainer keeps the patch part as the
patch grid and, for a single stream, the question's part as the question tokens' relevance. On a
square (self-attention) result the read rows' relevance to themselves is dropped (a token is
trivially its own evidence; Chefer et al.'s demos zero it alike).

- raw attention: mean_h A of the last layer at the target's rows.
- rollout (Abnar & Zuidema 2020): per layer Â = 0.5 mean_h A + 0.5 I, rows renormalised,
  R = Â_L ... Â_1; an encoder-decoder's text-to-image rollout is R_tt · mean_h A_ti · R_ii (the
  text stream's rollout, its last cross-attention, the image encoder's rollout). It reads no
  gradient, so it is the same for every target (`target_independent`).
- gradient-weighted attention (Li et al. 2021, ALBEF, sec. 6; BLIP's `compute_gradcam`): at the
  last layer, M_k = 1/|Q| sum_{q in Q} mean_h ReLU(G_hqk) A_hqk over the text tokens Q the
  target reads (`context`).
- relevance (Chefer, Gur & Wolf, ICCV 2021): per layer Ā = mean_h (G ⊙ A)+. Starting from
  R_ii = I, R_tt = I, R_ti = 0: image self-attention R_ii += Ā_ii R_ii; text self-attention
  R_tt += Ā_tt R_tt, R_ti += Ā_tt R_ti; text-to-image cross-attention (their eq. 10; eq. 11
  adds nothing since the image never attends to the text) R_ti += R̂_ttᵀ Ā_ti R̂_ii, with the
  residual normalisation R̂ = (R - I) rows normalised to sum 1, + I (a row with nothing left
  stays 0 instead of dividing by zero). Read R_ti (single stream: R_tt) at the target's rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

Layer = tuple[Tensor, Tensor]  # A and dY/dA, [N, H, Tq, Tk]

__all__ = [
    "AttentionStack",
    "attention_gradcam",
    "patches",
    "raw_attention",
    "relevance",
    "residual_normalized",
    "rollout",
]


@dataclass
class AttentionStack:
    """A transformer's attention, layer by layer from the input up, and where a target reads it.

    `text`: the query stream's self-attention `[N, H, T, T]` (a single stream: all its tokens);
    `cross`: its attention to the image tokens `[N, H, T, K]`, one per text layer (after that
    layer's self-attention), empty for a single stream; `image`: the image encoder's
    self-attention `[N, H, K, K]`, run before the text (the one-layer methods need only the
    layer they read: `text` may be empty beside one `cross` layer). `rows` `[N, T]` (bool): the
    rows the target is read at (word t: the position that predicts it; an answer: the pooled token);
    `context` `[N, T]` (bool): the text tokens the target reads (ALBEF's Q). `layer`: the text
    layer the one-layer methods read (raw attention, gradient-weighted attention).
    """

    text: Sequence[Layer]
    rows: Tensor
    context: Tensor
    cross: Sequence[Layer] = field(default_factory=list)
    image: Sequence[Layer] = field(default_factory=list)
    layer: int = -1

    def __post_init__(self) -> None:
        if self.cross and self.text and len(self.cross) != len(self.text):
            raise ValueError(
                f"{len(self.cross)} cross-attention layers for {len(self.text)} text layers: "
                "give one per text layer, or none for a single stream"
            )

    def last(self) -> Layer:
        """The layer the one-layer methods read: text-to-image attention when there is one."""
        return (self.cross or self.text)[self.layer]


def patches(keys: Tensor, grid: tuple[int, int]) -> Tensor:
    """The last h*w of `keys` `[N, Tk]` (the patches, row-major) as `[N, h, w]` maps."""
    height, width = grid
    if keys.shape[-1] < height * width:
        raise ValueError(
            f"{keys.shape[-1]} attention keys cannot hold a {height}x{width} patch grid"
        )
    return keys[:, -height * width :].reshape(-1, height, width)


def read(matrix: Tensor, rows: Tensor) -> Tensor:
    """The mean of `matrix` `[N, T, K]` over the `rows` `[N, T]` (bool) of each item: `[N, K]`;
    a square matrix's read rows lose their entry on the diagonal (their relevance to
    themselves)."""
    weights = rows.to(matrix.dtype)
    if matrix.shape[-1] == matrix.shape[-2]:
        matrix = matrix * (1 - torch.diag_embed(weights))
    summed = torch.einsum("nt,ntk->nk", weights, matrix)
    return summed / weights.sum(dim=1, keepdim=True).clamp(min=1)


def raw_attention(stack: AttentionStack) -> Tensor:
    """mean_h A of the last layer at the target's rows `[N, Tk]`."""
    attention, _ = stack.last()
    return read(attention.mean(dim=1), stack.rows)


def attention_gradcam(stack: AttentionStack) -> Tensor:
    """1/|Q| sum_{q in Q} mean_h ReLU(G) A of the last layer, Q the `context` rows: `[N, Tk]`."""
    attention, gradients = stack.last()
    return read((gradients.clamp(min=0) * attention).mean(dim=1), stack.context)


def eye_like(attention: Tensor) -> Tensor:
    """The identity `[N, T, T]` for attention `[N, H, T, T]`."""
    size = attention.shape[-1]
    eye = torch.eye(size, dtype=attention.dtype, device=attention.device)
    return eye.expand(attention.shape[0], size, size)


def rolled_out(layers: Sequence[Layer]) -> Tensor:
    """Â_L ... Â_1 with Â = 0.5 mean_h A + 0.5 I, rows renormalised: `[N, T, T]`."""
    result = None
    for attention, _ in layers:
        eye = eye_like(attention)
        mixed = 0.5 * attention.mean(dim=1) + 0.5 * eye
        mixed = mixed / mixed.sum(dim=-1, keepdim=True)
        result = mixed if result is None else mixed @ result
    if result is None:
        raise ValueError("rollout needs at least one attention layer")
    return result


def rollout(stack: AttentionStack) -> Tensor:
    """The attention rollout at the target's rows `[N, Tk]` (the same for every target)."""
    text = rolled_out(stack.text)
    if not stack.cross:
        return read(text, stack.rows)
    cross = stack.cross[-1][0].mean(dim=1)  # [N, T, K]
    if not stack.image:
        return read(text @ cross, stack.rows)
    return read(text @ cross @ rolled_out(stack.image), stack.rows)


def positive_weighted(layer: Layer) -> Tensor:
    """Ā = mean_h (G ⊙ A)+ `[N, Tq, Tk]`."""
    attention, gradients = layer
    return (gradients * attention).clamp(min=0).mean(dim=1)


def residual_normalized(matrix: Tensor) -> Tensor:
    """R̂ = (R - I) with rows normalised to sum 1, + I (Chefer et al. 2021, eq. 8-9); a row of
    R - I that sums to 0 stays 0."""
    eye = torch.eye(matrix.shape[-1], dtype=matrix.dtype, device=matrix.device)
    bar = matrix - eye
    sums = bar.sum(dim=-1, keepdim=True)
    return torch.where(sums != 0, bar / torch.where(sums != 0, sums, 1), 0) + eye


def relevance(stack: AttentionStack) -> Tensor:
    """Chefer et al.'s relevance at the target's rows `[N, Tk]` (see the module's docstring)."""
    first = stack.text[0][0]
    text = eye_like(first)  # R_tt [N, T, T]
    if not stack.cross:
        for layer in stack.text:
            text = text + positive_weighted(layer) @ text
        return read(text, stack.rows)
    keys = stack.cross[0][0].shape[-1]
    image = torch.eye(keys, dtype=first.dtype, device=first.device).expand(first.shape[0], -1, -1)
    for layer in stack.image:
        image = image + positive_weighted(layer) @ image  # R_ii
    image_hat = residual_normalized(image)
    text_image = first.new_zeros(first.shape[0], first.shape[-1], keys)  # R_ti
    for layer, cross in zip(stack.text, stack.cross, strict=True):
        weighted = positive_weighted(layer)
        text = text + weighted @ text
        text_image = text_image + weighted @ text_image
        text_hat = residual_normalized(text)
        text_image = text_image + text_hat.transpose(1, 2) @ positive_weighted(cross) @ image_hat
    return read(text_image, stack.rows)
