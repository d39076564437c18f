"""Caption metrics: corpus BLEU of generated captions against their references."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

from nltk.translate.bleu_score import corpus_bleu

__all__ = ["caption_bleu"]


# ----------------------------------------------------------------------------- captions


def caption_bleu(
    hypotheses: Sequence[Sequence[str]],
    references: Sequence[Sequence[Sequence[str]]],
    *,
    smoothing: Callable[..., Any] | None = None,
) -> dict[str, float]:
    """Corpus BLEU-1..4 (Papineni et al. 2002) via ``nltk.translate.bleu_score.corpus_bleu``.

    ``BLEU-n = BP · exp(Σ_{k≤n} (1/n) log p_k)``, p_k the clipped k-gram precision pooled over
    the corpus, BP the brevity penalty. ``hypotheses[i]`` is a token list; ``references[i]``
    a list of token lists. No smoothing by default (the standard corpus BLEU of captioning
    papers): an order with no match at all gives ~0 (nltk returns ~1e-78 and warns; the
    warning is silenced). Pass e.g.
    ``SmoothingFunction().method1`` for small corpora.
    """
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} reference sets")
    if not hypotheses:
        raise ValueError("no captions to score")
    for i, (hyp, refs) in enumerate(zip(hypotheses, references, strict=True)):
        if isinstance(hyp, str) or any(isinstance(r, str) for r in refs) or not refs:
            raise ValueError(
                f"caption {i}: give token lists (e.g. text.lower().split()), not strings, "
                "and at least one reference per hypothesis"
            )
    weights = {
        "bleu1": (1.0,),
        "bleu2": (0.5, 0.5),
        "bleu3": (1 / 3, 1 / 3, 1 / 3),
        "bleu4": (0.25, 0.25, 0.25, 0.25),
    }
    hyps = [list(h) for h in hypotheses]
    refs = [[list(r) for r in rs] for rs in references]
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for name, w in weights.items():
            out[name] = float(corpus_bleu(refs, hyps, weights=w, smoothing_function=smoothing))
    return out
