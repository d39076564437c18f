"""Caption metrics: the COCO caption evaluation (pycocoevalcap) and nltk's corpus BLEU.

The COCO figures are the ones captioning papers report (Chen et al. 2015, "Microsoft COCO
Captions: Data Collection and Evaluation Server"): BLEU-1..4, METEOR, ROUGE-L and CIDEr-D, on
captions tokenised by the Stanford PTB tokenizer (lower-cased, punctuation dropped). The
tokenizer and METEOR are Java programs whose jars ship inside the pycocoevalcap wheel, so they
run offline but need a Java runtime (`make test` installs Debian's openjdk-17-jre-headless when
`java` is missing). SPICE is never computed: its scorer downloads the Stanford CoreNLP models
on first use, and nothing here downloads at run time; it is reported as unavailable, with
`SPICE_UNAVAILABLE` as the reason, never as 0.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from nltk.translate.bleu_score import corpus_bleu

from mmcam.core.extras import require

__all__ = [
    "COCO_CAPTION_KEYS",
    "SPICE_UNAVAILABLE",
    "CocoCaptionScorer",
    "caption_bleu",
    "coco_caption_scores",
]

SPICE_UNAVAILABLE = (
    "pycocoevalcap's SPICE downloads the Stanford CoreNLP 3.6.0 models on first use, and "
    "mmcam downloads nothing at run time"
)
"""Why the caption metrics hold `"spice": None`."""

COCO_CAPTION_KEYS = ("bleu1", "bleu2", "bleu3", "bleu4", "meteor", "rouge_l", "cider")
"""The figures `CocoCaptionScorer` returns (besides `spice` and its reason)."""


def _require_java() -> None:
    if shutil.which("java") is None:
        raise RuntimeError(
            "the COCO caption metrics need Java (pycocoevalcap's PTB tokenizer and METEOR are "
            "Java programs) and no `java` is on PATH; install a Java runtime, e.g. Debian's "
            "`apt-get install openjdk-17-jre-headless` (`make test` does this when it is missing)"
        )


class CocoCaptionScorer:
    """The COCO caption evaluation of generated captions against references, reusable.

    METEOR runs as one Java process that loads its paraphrase table once (about 7 s); a scorer
    keeps it between calls, so validating after every training epoch pays that once. Use it as
    a context manager, or call `close`, to end the process.
    """

    def __init__(self) -> None:
        require("pycocoevalcap", "coco", "The COCO caption metrics")
        _require_java()
        self._meteor: Any = None

    def __enter__(self) -> CocoCaptionScorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """End the METEOR process (a later call starts a new one)."""
        if self._meteor is not None:
            process = self._meteor.meteor_p
            process.stdin.close()
            process.kill()
            process.wait()
            self._meteor = None

    def __call__(
        self, captions: Mapping[int, str], references: Mapping[int, Sequence[str]]
    ) -> dict[str, Any]:
        """BLEU-1..4, METEOR, ROUGE-L and CIDEr-D of `captions` (image id -> generated text)
        against `references` (image id -> reference texts), over the images of `captions`;
        each must have at least one reference. `spice` is None, `spice_unavailable` says why.

        BLEU is pooled over the corpus (clipped n-gram counts, brevity penalty against the
        closest reference length); METEOR is corpus-level (Banerjee & Lavie 2005, Meteor 1.5);
        ROUGE-L is the mean over images of the LCS F-measure (β = 1.2) against the best
        reference; CIDEr-D (Vedantam et al. 2015) is the mean over images of
        ``10/M Σ_j (1/4) Σ_n cos_clip(g_n(c), g_n(s_j)) · exp(-(l_c - l_s)² / 2σ²)``, σ = 6,
        with tf-idf n-gram vectors whose idf comes from the references of these images.
        """
        from pycocoevalcap.bleu.bleu import Bleu
        from pycocoevalcap.cider.cider import Cider
        from pycocoevalcap.meteor.meteor import Meteor
        from pycocoevalcap.rouge.rouge import Rouge
        from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

        if not captions:
            raise ValueError("no captions to score")
        missing = [image_id for image_id in captions if not references.get(image_id)]
        if missing:
            raise ValueError(f"images {missing[:10]} have no reference captions to score against")
        for image_id, text in captions.items():
            if not isinstance(text, str):
                raise ValueError(f"image {image_id}: a caption must be a string, not {text!r}")
        tokenizer = PTBTokenizer()
        hypotheses = tokenizer.tokenize({i: [{"caption": c}] for i, c in captions.items()})
        truth = tokenizer.tokenize({i: [{"caption": r} for r in references[i]] for i in captions})
        bleu, _ = Bleu(4).compute_score(truth, hypotheses, verbose=0)
        if self._meteor is None:
            self._meteor = Meteor()
        meteor, _ = self._meteor.compute_score(truth, hypotheses)
        rouge, _ = Rouge().compute_score(truth, hypotheses)
        cider, _ = Cider().compute_score(truth, hypotheses)
        scores = {f"bleu{n + 1}": float(value) for n, value in enumerate(bleu)}
        scores.update(meteor=float(meteor), rouge_l=float(rouge), cider=float(cider))
        return {**scores, "spice": None, "spice_unavailable": SPICE_UNAVAILABLE}


def coco_caption_scores(
    captions: Mapping[int, str], references: Mapping[int, Sequence[str]]
) -> dict[str, Any]:
    """`CocoCaptionScorer` once: BLEU-1..4, METEOR, ROUGE-L, CIDEr-D (and SPICE's absence)."""
    with CocoCaptionScorer() as scorer:
        return scorer(captions, references)


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
