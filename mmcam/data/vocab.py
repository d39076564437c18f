"""Words <-> ids: nltk tokenisation (no downloaded data needed) and a Vocabulary with special
tokens, a minimum count, and a JSON form saved beside each checkpoint."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from nltk.tokenize import wordpunct_tokenize


def tokenize(text: str) -> list[str]:
    """Lower-cased word and punctuation tokens (`nltk.wordpunct_tokenize`: needs no nltk data).

    "What colour is the circle?" -> ["what", "colour", "is", "the", "circle", "?"]"""
    return wordpunct_tokenize(text.lower())


class Vocabulary:
    """Token list with `<pad>`=0, `<bos>`=1, `<eos>`=2, `<unk>`=3 first, then words."""

    PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
    SPECIALS = (PAD, BOS, EOS, UNK)
    PAD_INDEX, BOS_INDEX, EOS_INDEX, UNK_INDEX = 0, 1, 2, 3

    def __init__(self, words: Sequence[str]) -> None:
        words = list(words)
        if tuple(words[:4]) != self.SPECIALS:
            words = list(self.SPECIALS) + [w for w in words if w not in self.SPECIALS]
        if len(set(words)) != len(words):
            raise ValueError("a vocabulary's words must be unique")
        self.itos = words
        self.stoi = {word: index for index, word in enumerate(words)}

    @classmethod
    def build(cls, texts: Iterable[str], min_count: int = 1) -> Vocabulary:
        """Words seen at least `min_count` times in `texts`, most frequent first (ties:
        alphabetical), so the same texts always give the same ids."""
        counts = Counter(token for text in texts for token in tokenize(text))
        kept = [w for w, n in counts.items() if n >= min_count and w not in cls.SPECIALS]
        kept.sort(key=lambda w: (-counts[w], w))
        return cls(list(cls.SPECIALS) + kept)

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, word: str) -> bool:
        return word in self.stoi

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.itos == other.itos

    def encode(self, text: str, *, bos: bool = False, eos: bool = False) -> list[int]:
        """Token ids of `text`; unknown words map to `<unk>`."""
        ids = [self.stoi.get(token, self.UNK_INDEX) for token in tokenize(text)]
        return [self.BOS_INDEX] * bos + ids + [self.EOS_INDEX] * eos

    def words(self, ids: Iterable[int]) -> list[str]:
        """The token of each id (ids out of range raise IndexError)."""
        return [self.itos[int(i)] for i in ids]

    def decode(self, ids: Iterable[int]) -> str:
        """Text of a caption's ids: stops at `<eos>`, skips `<bos>` / `<pad>`."""
        out = []
        for i in ids:
            i = int(i)
            if i == self.EOS_INDEX:
                break
            if i not in (self.BOS_INDEX, self.PAD_INDEX):
                out.append(self.itos[i])
        return " ".join(out)

    def unknown_words(self, text: str) -> list[str]:
        """Tokens of `text` that are not in the vocabulary (each once, in order)."""
        unknown: list[str] = []
        for token in tokenize(text):
            if token not in self.stoi and token not in unknown:
                unknown.append(token)
        return unknown

    def to_json(self) -> dict:
        return {"specials": list(self.SPECIALS), "words": self.itos}

    def save(self, path: str | Path) -> Path:
        """Write the vocabulary as JSON (atomically)."""
        from mmcam.data.files import write_json

        return write_json(path, self.to_json(), indent=0)

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        """Read a vocabulary written by `save`."""
        from mmcam.data.files import read_json

        data = read_json(path)
        if not isinstance(data, dict) or "words" not in data:
            raise ValueError(f"{path} is not a vocabulary file (expected a 'words' list)")
        return cls(data["words"])
