"""Tokenisation and the Vocabulary: specials, min count, round trips, unknown words."""

from __future__ import annotations

import pytest

from mmcam.data.vocab import Vocabulary, tokenize


def test_tokenize_lowercases_and_splits_punctuation_without_nltk_data() -> None:
    assert tokenize("What colour is the Circle?") == ["what", "colour", "is", "the", "circle", "?"]
    assert tokenize("3 shapes : a red star") == ["3", "shapes", ":", "a", "red", "star"]


def test_build_keeps_words_seen_min_count_times_most_frequent_first() -> None:
    texts = ["a red circle", "a blue circle", "a red square", "one star"]
    vocab = Vocabulary.build(texts, min_count=2)
    assert vocab.itos == ["<pad>", "<bos>", "<eos>", "<unk>", "a", "circle", "red"]
    assert (vocab.PAD_INDEX, vocab.BOS_INDEX, vocab.EOS_INDEX, vocab.UNK_INDEX) == (0, 1, 2, 3)
    assert len(Vocabulary.build(texts, min_count=1)) == 4 + 7


def test_encode_decode_round_trip_and_unknown_words() -> None:
    vocab = Vocabulary.build(["a red circle to the left of a blue square"])
    ids = vocab.encode("A red circle", bos=True, eos=True)
    assert ids[0] == vocab.BOS_INDEX and ids[-1] == vocab.EOS_INDEX
    assert vocab.decode(ids + [vocab.PAD_INDEX]) == "a red circle"
    assert vocab.encode("a green circle")[1] == vocab.UNK_INDEX
    assert vocab.unknown_words("A green hexagon, a green circle") == ["green", "hexagon", ","]
    assert vocab.words(vocab.encode("blue square")) == ["blue", "square"]


def test_save_load_round_trip(tmp_path) -> None:
    vocab = Vocabulary.build(["is there a red star ?", "how many circles"])
    path = vocab.save(tmp_path / "vocab.json")
    loaded = Vocabulary.load(path)
    assert loaded == vocab and loaded.stoi == vocab.stoi
    (tmp_path / "bad.json").write_text('{"nothing": []}')
    with pytest.raises(ValueError, match="not a vocabulary"):
        Vocabulary.load(tmp_path / "bad.json")
