"""What a model must offer to be explained: the captioner and VQA protocols.

Any model with these members works with `CaptionExplainer` / `VQAExplainer`; nothing needs to
inherit from anything. Two rules make the batched, per-word explanations possible:

* Everything after the explained layer takes its batch size from the tensors it receives, never
  from the images (the explainer fans the explained layer's output out to several copies).
* `decode_logits` is teacher-forced and deterministic in eval mode.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from torch import Tensor

# What CaptionExplainer needs of a captioner; `generate` only when it must caption the images.
EXPLAINED_MEMBERS = ("encode", "decode_logits", "words", "bos_index", "eos_index", "pad_index")


@runtime_checkable
class CaptionModel(Protocol):
    """A captioner: image encoder, teacher-forced decoder, caption generator, vocabulary.

    Nothing needs to inherit from it: a model with these members is a `CaptionModel`
    (`CaptionExplainer` checks them).

    Attributes:
        bos_index: the begin-of-sentence token id.
        eos_index: the end-of-sentence token id.
        pad_index: the padding token id.
    """

    bos_index: int
    eos_index: int
    pad_index: int

    def encode(self, images: Tensor) -> Any:
        """Image features for the decoder; the explained layer runs in here.

        Args:
            images: the preprocessed images `[B, C, H, W]`.

        Returns:
            Whatever `decode_logits` takes as its features.
        """

    def decode_logits(self, features: Any, tokens: Tensor, lengths: Tensor) -> Tensor:
        """Teacher-forced next-token logits `[B, L, V]` for tokens `[B, L]`, rows in the
        caller's order (a decoder that sorts its batch by length must undo the sort).

        `tokens[b, 0]` is BOS; `logits[b, t]` scores `tokens[b, t + 1]` and may depend only on
        `tokens[b, :t + 1]` and row b's features, never on other rows. `lengths[b]` is the
        number of steps row b needs: steps `t >= lengths[b]` are never read, so a model may skip
        them (an LSTM over a packed sequence does), but it must still return all L steps.

        Args:
            features: what `encode` returned (the explainer may repeat its rows).
            tokens: token ids `[B, L]`, BOS first, padded.
            lengths: the steps each row needs `[B]`.

        Returns:
            The next-token logits `[B, L, V]`.
        """

    # Optional, not checked: `decode_last_logits(features, tokens, lengths) -> [B, V]`, the
    # logits of step `lengths[b] - 1` only (scoring `tokens[b, lengths[b]]`). Per-word maps need
    # one scored step per replica, so a model with a large vocabulary that offers it is
    # explained without computing the output layer at every step (`ShowAndTell` does).

    def generate(self, images: Tensor, max_length: int = 20, beam_size: int = 1) -> list[list[int]]:
        """Token ids of each image's caption, without BOS and EOS (needed only when the
        explainer has to caption the images itself).

        Args:
            images: the preprocessed images `[B, C, H, W]`.
            max_length: the longest caption, in tokens.
            beam_size: the beam width (1: greedy).

        Returns:
            One list of token ids per image.
        """

    def words(self, token_ids: Sequence[int]) -> list[str]:
        """The text of each token id.

        Args:
            token_ids: a caption's token ids.

        Returns:
            One word per id.
        """


@runtime_checkable
class VQAModel(Protocol):
    """A VQA model: answer logits for images and tokenised questions, and the answer list.

    Nothing needs to inherit from it: a model with these members is a `VQAModel`.

    Attributes:
        answers: the answer of each logit, in order.
    """

    answers: Sequence[str]

    def tokenize(self, questions: Sequence[str]) -> Tensor:
        """Question texts to the model's question input (for example padded ids `[B, L]`).

        Args:
            questions: the questions, as text.

        Returns:
            The model's question input, one row per question.
        """

    def unknown_words(self, question: str) -> list[str]:
        """Words of `question` the model has no embedding for.

        Args:
            question: one question, as text.

        Returns:
            Its unknown words (empty when it has none).
        """

    def __call__(self, images: Tensor, questions: Tensor) -> Tensor:
        """Answer logits `[B, A]`, rows in the caller's order: row b from image b and question
        b alone, never from other rows (a model that sorts its batch by question length must
        sort it back). The explained layer runs on the image side."""
