"""The reference VQA model: CNN image grid, LSTM question encoder, question-guided attention over
the grid, element-wise-product fusion, classifier over the most frequent answers.

    image [B, 3, 128, 128] -> encoder.features [B, C, 16, 16]   (the Grad-CAM layer)
      -> + 2 coordinate channels -> 1x1 conv -> v [B, D, 16, 16]
    question ids [B, L] -> embedding -> LSTM -> q [B, D]
    g = v * q (per cell) -> G attention glimpses over the cells, plus mean / max pooling of g
      -> MLP -> answer logits [B, A]

Everything after `encoder.features` takes its batch size from the tensors it gets, so the
explainer may replicate the grid once per answer it explains.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence

from mmcam.core.bundled import BUNDLED
from mmcam.data.files import MissingInput, read_json, write_json
from mmcam.data.images import preprocess
from mmcam.data.vocab import Vocabulary
from mmcam.zoo.captioner import ConvEncoder, add_coordinates, save_state_dict

__all__ = ["DEFAULT_VQA", "VQAConfig", "VQANet", "load_vqa_model", "preprocess", "save_vqa_model"]

DEFAULT_VQA = BUNDLED / "vqa"
EXPLAINED_LAYER = "encoder.features"


@dataclass
class VQAConfig:
    """Model size; saved as `config.json` beside the weights."""

    vocab_size: int
    num_answers: int
    encoder_widths: list[int] = field(default_factory=lambda: [32, 64, 64])
    dim: int = 128  # fused width
    embed_dim: int = 64
    hidden_dim: int = 128  # question LSTM
    glimpses: int = 2
    dropout: float = 0.1
    image_size: int = 128


class VQANet(nn.Module):
    """VQA model satisfying `mmcam.core.protocols.VQAModel`: `model(images, questions)` -> logits.

    Explained layer: `encoder.features` (`[B, C, 16, 16]`). Input: `preprocess(image)` and
    `model.tokenize(questions)`."""

    explained_layer = EXPLAINED_LAYER

    def __init__(self, config: VQAConfig, vocab: Vocabulary, answers: Sequence[str]) -> None:
        super().__init__()
        if len(vocab) != config.vocab_size or len(answers) != config.num_answers:
            raise ValueError(
                f"config says {config.vocab_size} words / {config.num_answers} answers; got "
                f"{len(vocab)} / {len(answers)}"
            )
        self.config, self.vocab, self.answers = config, vocab, list(answers)
        c = config
        self.encoder = ConvEncoder(c.encoder_widths)
        self.project = nn.Sequential(nn.Conv2d(self.encoder.channels + 2, c.dim, 1), nn.ReLU())
        self.embed = nn.Embedding(c.vocab_size, c.embed_dim, padding_idx=vocab.PAD_INDEX)
        self.lstm = nn.LSTM(c.embed_dim, c.hidden_dim, batch_first=True)
        self.question = nn.Sequential(nn.Linear(c.hidden_dim, c.dim), nn.Tanh())
        self.attend = nn.Conv2d(c.dim, c.glimpses, 1)
        fused = c.dim * (c.glimpses + 2)
        self.classify = nn.Sequential(
            nn.Dropout(c.dropout),
            nn.Linear(fused, 2 * c.dim),
            nn.ReLU(),
            nn.Dropout(c.dropout),
            nn.Linear(2 * c.dim, c.num_answers),
        )

    def tokenize(self, questions: Sequence[str]) -> Tensor:
        """Question texts -> padded ids `[B, L]` (unknown words -> `<unk>`)."""
        if isinstance(questions, str):
            raise TypeError("tokenize takes a list of questions, not one string")
        ids = [self.vocab.encode(q) or [self.vocab.UNK_INDEX] for q in questions]
        out = torch.full((len(ids), max(map(len, ids), default=1)), self.vocab.PAD_INDEX)
        for row, q in enumerate(ids):
            out[row, : len(q)] = torch.tensor(q)
        return out

    def unknown_words(self, question: str) -> list[str]:
        """Words of `question` the model has no embedding for."""
        return self.vocab.unknown_words(question)

    def encode_question(self, questions: Tensor) -> Tensor:
        """Padded ids `[N, L]` -> `[N, D]` (the LSTM's last state at each question's length)."""
        lengths = (questions != self.vocab.PAD_INDEX).sum(dim=1).clamp(min=1)
        packed = pack_padded_sequence(
            self.embed(questions), lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        _, (h, _) = self.lstm(packed)
        return self.question(h[-1])

    def answer_logits(self, grid: Tensor, questions: Tensor) -> Tensor:
        """Answer logits `[N, A]` from the explained layer's output `[N, C, h, w]` and question
        ids `[N, L]`; the batch size comes from these tensors."""
        if grid.shape[0] != questions.shape[0]:
            raise ValueError(f"{grid.shape[0]} image grids for {questions.shape[0]} questions")
        return self.fuse(self.cells(grid), questions)

    def question_logits(self, images: Tensor, image_index: Tensor, questions: Tensor) -> Tensor:
        """Answer logits `[N, A]` for images `[B, 3, S, S]`, each question's image row
        `image_index` `[N]` and question ids `[N, L]`: one encoding per image serves all of its
        questions (the training loop's batches)."""
        return self.fuse(self.cells(self.encoder(images))[image_index], questions)

    def cells(self, grid: Tensor) -> Tensor:
        """Explained layer's output `[N, C, h, w]` -> per-cell vectors v `[N, D, h, w]`."""
        return self.project(add_coordinates(grid))

    def fuse(self, v: Tensor, questions: Tensor) -> Tensor:
        """Answer logits `[N, A]` from cell vectors `[N, D, h, w]` and question ids `[N, L]`."""
        q = self.encode_question(questions)  # [N, D]
        g = v * q[:, :, None, None]  # [N, D, h, w]
        alpha = torch.softmax(self.attend(g).flatten(2), dim=2)  # [N, G, h*w]
        glimpses = torch.bmm(alpha, v.flatten(2).transpose(1, 2))  # [N, G, D]
        glimpses = glimpses * q[:, None]  # fuse each glimpse with the question
        pooled = [g.mean(dim=(2, 3)), g.amax(dim=(2, 3))]  # counting / existence evidence
        return self.classify(torch.cat([glimpses.flatten(1), *pooled], dim=1))

    def forward(self, images: Tensor, questions: Tensor) -> Tensor:
        """Answer logits `[B, A]` for images `[B, 3, S, S]` and question ids `[B, L]`."""
        return self.answer_logits(self.encoder(images), questions)

    @torch.no_grad()
    def answer(self, images: Tensor, questions: Sequence[str]) -> list[str]:
        """The best answer to each question (in eval mode callers' hands)."""
        logits = self(images, self.tokenize(questions).to(images.device))
        return [self.answers[i] for i in logits.argmax(dim=1).tolist()]


def save_vqa_model(model: VQANet, folder: str | Path) -> Path:
    """Write `config.json`, `vocab.json`, `answers.json`, `model.pt` into `folder` atomically."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "config.json", asdict(model.config), indent=2)
    model.vocab.save(folder / "vocab.json")
    write_json(folder / "answers.json", model.answers, indent=0)
    save_state_dict(model, folder / "model.pt")
    return folder


def load_vqa_model(path: str | Path = DEFAULT_VQA, device: str | torch.device = "cpu") -> VQANet:
    """The VQA model in `path` (config.json, vocab.json, answers.json, model.pt), in eval mode.
    Default: the bundled checkpoint trained on the shapes data."""
    folder = Path(path)
    for name in ("config.json", "vocab.json", "answers.json", "model.pt"):
        if not (folder / name).is_file():
            raise MissingInput(
                f"{folder / name} is missing; a VQA model folder holds config.json, vocab.json, "
                "answers.json and model.pt (scripts/train_vqa.py)"
            )
    config = VQAConfig(**read_json(folder / "config.json"))
    model = VQANet(
        config, Vocabulary.load(folder / "vocab.json"), read_json(folder / "answers.json")
    )
    state = torch.load(folder / "model.pt", map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.to(device).eval()
