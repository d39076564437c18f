"""Tiny, seeded models that satisfy mmcam's protocols, for fast exact tests."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


class TinyCNN(nn.Module):
    """Conv -> ReLU -> conv -> ReLU -> (explained layer `features`) -> GAP -> linear."""

    def __init__(self, classes: int = 5, channels: int = 6) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.features = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, classes)

    def forward(self, images: Tensor) -> Tensor:
        return self.fc(self.pool(self.features(self.body(images))).flatten(1))


class TinyCaptioner(nn.Module):
    """CNN grid -> mean feature initialises an LSTM; attention-free, packed over `lengths`."""

    bos_index, eos_index, pad_index = 1, 2, 0

    def __init__(self, vocab_size: int = 12, hidden: int = 8) -> None:
        super().__init__()
        self.encoder = TinyCNN(classes=hidden)
        self.embed = nn.Embedding(vocab_size, hidden)
        self.lstm = nn.LSTM(hidden, hidden, batch_first=True)
        self.spatial = nn.Linear(6 * 4 * 4, hidden)  # keeps where things are
        self.out = nn.Linear(hidden, vocab_size)

    def encode(self, images: Tensor) -> Tensor:
        grid = self.encoder.features(self.encoder.body(images))  # [B, 6, 4, 4]
        return torch.tanh(self.spatial(grid.flatten(1)))  # [B, H]

    def decode_logits(self, features: Tensor, tokens: Tensor, lengths: Tensor) -> Tensor:
        state = (features[None].contiguous(), torch.zeros_like(features)[None])
        packed = pack_padded_sequence(
            self.embed(tokens), lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        hidden, _ = self.lstm(packed, state)
        hidden, _ = pad_packed_sequence(hidden, batch_first=True, total_length=tokens.shape[1])
        return self.out(hidden)

    def generate(self, images: Tensor, max_length: int = 20, beam_size: int = 1) -> list[list[int]]:
        features = self.encode(images)
        tokens = torch.full((images.shape[0], 1), self.bos_index)
        for _ in range(max_length):
            lengths = torch.full((images.shape[0],), tokens.shape[1])
            step = self.decode_logits(features, tokens, lengths)[:, -1]
            step[:, self.eos_index] = -1e9  # tiny untrained model: always max_length words
            step[:, self.pad_index] = -1e9
            step[:, self.bos_index] = -1e9
            tokens = torch.cat([tokens, step.argmax(1, keepdim=True)], dim=1)
        return tokens[:, 1:].tolist()

    def words(self, token_ids) -> list[str]:
        return [f"w{index}" for index in token_ids]


class TinyVQA(nn.Module):
    """CNN grid (explained layer `image.features`) fused with a question LSTM by product."""

    answers = ["yes", "no", "red", "blue", "two", "left"]

    def __init__(self, hidden: int = 6) -> None:
        super().__init__()
        self.image = TinyCNN(classes=hidden)
        self.embed = nn.Embedding(10, hidden)
        self.lstm = nn.LSTM(hidden, hidden, batch_first=True)
        self.spatial = nn.Linear(6 * 4 * 4, hidden)
        self.classify = nn.Linear(hidden, len(self.answers))

    def tokenize(self, questions) -> Tensor:
        ids = [[len(word) % 10 for word in question.split()] for question in questions]
        longest = max(len(row) for row in ids)
        return torch.tensor([row + [0] * (longest - len(row)) for row in ids])

    def unknown_words(self, question: str) -> list[str]:
        return []

    def forward(self, images: Tensor, questions: Tensor) -> Tensor:
        grid = self.image.features(self.image.body(images))
        picture = torch.tanh(self.spatial(grid.flatten(1)))
        _, (question, _) = self.lstm(self.embed(questions))
        return self.classify(picture * question[0])
