"""The reference captioner: a small CNN encoder and an LSTM decoder with spatial soft attention
(Show, Attend and Tell; Xu et al. 2015, with scaled dot-product scores, cheaper than SAT's
MLP), trained from scratch on the shapes data.

    image [B, 3, 128, 128] -> encoder.features [B, C, 16, 16]   (the Grad-CAM layer)
      -> + 2 coordinate channels -> k x k conv -> memory [B, 256, D]  (one vector per cell)
      -> per step: attention over the 256 cells, LSTMCell(word, context) -> next-word logits

Everything after `encoder.features` takes its batch size from the tensors it gets, so the
explainer may replicate that layer's output once per word. `decode_logits` runs a step loop that
drops rows as they finish, so a row with `lengths[b] = t` costs t steps.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmcam.core.bundled import BUNDLED
from mmcam.data.files import MissingInput, read_json, write_json
from mmcam.data.images import preprocess
from mmcam.data.vocab import Vocabulary

__all__ = [
    "Captioner",
    "CaptionerConfig",
    "ConvEncoder",
    "DEFAULT_CAPTIONER",
    "load_captioner",
    "preprocess",
    "save_captioner",
]

DEFAULT_CAPTIONER = BUNDLED / "captioner"
EXPLAINED_LAYER = "encoder.features"


def _block(inputs: int, outputs: int, kernel: int, stride: int) -> nn.Sequential:
    """Conv (no padding when kernel == stride, a patchify stem; else "same" padding), BN, ReLU."""
    padding = 0 if kernel == stride else kernel // 2
    return nn.Sequential(
        nn.Conv2d(inputs, outputs, kernel, stride, padding=padding, bias=False),
        nn.BatchNorm2d(outputs),
        nn.ReLU(inplace=True),
    )


class ConvEncoder(nn.Module):
    """128x128 image -> `[B, widths[-1], 16, 16]` grid: a 4x4/4 patch stem, a stride-2 conv,
    then 3x3 convs at 16x16 (receptive field ~44 px: a whole shape). `features` is the last conv
    block (conv, BatchNorm, ReLU), the layer Grad-CAM explains."""

    def __init__(self, widths: Sequence[int] = (32, 64, 64)) -> None:
        super().__init__()
        if len(widths) < 3:
            raise ValueError(f"encoder widths need at least 3 entries, got {list(widths)}")
        self.stem = _block(3, widths[0], 4, 4)  # [B, w0, 32, 32]
        layers = [_block(widths[0], widths[1], 3, 2)]  # [B, w1, 16, 16]
        for a, b in zip(widths[1:-2], widths[2:-1], strict=True):
            layers.append(_block(a, b, 3, 1))
        self.body = nn.Sequential(*layers)
        self.features = _block(widths[-2], widths[-1], 3, 1)  # [B, C, 16, 16]
        self.channels = widths[-1]

    def forward(self, images: Tensor) -> Tensor:
        return self.features(self.body(self.stem(images)))


def add_coordinates(grid: Tensor) -> Tensor:
    """`[N, C, h, w]` -> `[N, C + 2, h, w]` with x and y in [-1, 1] appended, so what comes
    after the grid knows where each cell is ("left of", "on the right")."""
    n, _, h, w = grid.shape
    ys = torch.linspace(-1, 1, h, device=grid.device, dtype=grid.dtype)
    xs = torch.linspace(-1, 1, w, device=grid.device, dtype=grid.dtype)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    coords = torch.stack([xx, yy])[None].expand(n, 2, h, w)
    return torch.cat([grid, coords], dim=1)


@dataclass
class CaptionerConfig:
    """Model size; saved as `config.json` beside the weights."""

    vocab_size: int
    encoder_widths: list[int] = field(default_factory=lambda: [32, 64, 64])
    memory_dim: int = 128  # per-cell vector the decoder attends over
    embed_dim: int = 64
    hidden_dim: int = 256
    attention_dim: int = 128
    dropout: float = 0.1
    image_size: int = 128
    # The LSTM's first state from the mean of the grid (Show-Attend-Tell) or zeros; from zeros,
    # every word's evidence passes through the attention, so its map is where it looked.
    start_from_image: bool = True
    memory_kernel: int = 1  # each cell's memory from a k x k neighbourhood of the grid


class Captioner(nn.Module):
    """CNN + attention LSTM captioner satisfying `mmcam.core.protocols.CaptionModel`.

    Explained layer: `encoder.features` (`[B, C, 16, 16]`). Input: `preprocess(image)`."""

    explained_layer = EXPLAINED_LAYER

    def __init__(self, config: CaptionerConfig, vocab: Vocabulary) -> None:
        super().__init__()
        if len(vocab) != config.vocab_size:
            raise ValueError(f"config says {config.vocab_size} words, vocabulary has {len(vocab)}")
        self.config, self.vocab = config, vocab
        self.bos_index, self.eos_index, self.pad_index = (
            vocab.BOS_INDEX,
            vocab.EOS_INDEX,
            vocab.PAD_INDEX,
        )
        c = config
        self.encoder = ConvEncoder(c.encoder_widths)
        self.memory = nn.Conv2d(
            self.encoder.channels + 2, c.memory_dim, c.memory_kernel, padding=c.memory_kernel // 2
        )
        self.init_h = nn.Linear(c.memory_dim, c.hidden_dim)
        self.init_c = nn.Linear(c.memory_dim, c.hidden_dim)
        self.attend_memory = nn.Linear(c.memory_dim, c.attention_dim)
        self.attend_hidden = nn.Linear(c.hidden_dim, c.attention_dim)
        self.gate = nn.Linear(c.hidden_dim, c.memory_dim)  # SAT's beta: how much context to use
        self.embed = nn.Embedding(c.vocab_size, c.embed_dim, padding_idx=vocab.PAD_INDEX)
        self.cell = nn.LSTMCell(c.embed_dim + c.memory_dim, c.hidden_dim)
        self.dropout = nn.Dropout(c.dropout)
        self.out = nn.Linear(c.hidden_dim + c.memory_dim, c.vocab_size)

    # ------------------------------------------------------------------ encoder

    def encode(self, images: Tensor) -> Tensor:
        """Per-cell memory `[B, h*w, D]` (the explained layer `encoder.features` runs here)."""
        return self.memory_from_grid(self.encoder(images))

    def memory_from_grid(self, grid: Tensor) -> Tensor:
        """`[N, C, h, w]` feature grid -> `[N, h*w, D]`; batch size taken from `grid`."""
        cells = self.memory(add_coordinates(grid)).flatten(2).transpose(1, 2)  # [N, h*w, D]
        return torch.relu(cells)

    # ------------------------------------------------------------------ decoder

    def init_state(self, memory: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The first LSTM state (see `CaptionerConfig.start_from_image`) and the precomputed
        attention keys `[N, h*w, A]`."""
        keys = self.attend_memory(memory)
        if not self.config.start_from_image:
            zeros = memory.new_zeros(memory.shape[0], self.config.hidden_dim)
            return zeros, zeros, keys
        mean = memory.mean(dim=1)
        return torch.tanh(self.init_h(mean)), torch.tanh(self.init_c(mean)), keys

    def step(
        self, memory: Tensor, keys: Tensor, words: Tensor, h: Tensor, c: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """One decoding step: next-word logits `[N, V]`, new (h, c), attention `[N, h*w]`."""
        h, c, context, alpha = self.advance(memory, keys, words, h, c)
        return self.readout(h, context), h, c, alpha

    def advance(
        self, memory: Tensor, keys: Tensor, words: Tensor, h: Tensor, c: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """A step without its output layer: new (h, c), the read context `[N, D]`, attention."""
        query = self.attend_hidden(h)[:, :, None]  # [N, A, 1]
        scores = torch.bmm(keys, query).squeeze(2) * self.config.attention_dim**-0.5
        alpha = torch.softmax(scores, dim=1)  # [N, h*w]
        context = torch.bmm(alpha[:, None], memory).squeeze(1)  # [N, D]
        context = torch.sigmoid(self.gate(h)) * context
        h, c = self.cell(torch.cat([self.embed(words), context], dim=1), (h, c))
        return h, c, context, alpha

    def readout(self, h: Tensor, context: Tensor) -> Tensor:
        """Next-word logits `[N, V]` from a step's state and context."""
        return self.out(self.dropout(torch.cat([h, context], dim=1)))

    def decode_logits(self, features: Tensor, tokens: Tensor, lengths: Tensor) -> Tensor:
        """Teacher-forced logits `[N, L, V]`: `logits[n, t]` scores `tokens[n, t + 1]`.

        Only steps `t < lengths[n]` are computed (rows leave the loop as they finish); the rest
        are zeros. `features` is `encode`'s output (or a replica of it), `[N, h*w, D]`."""
        n, steps = tokens.shape
        order, decoded = self._teacher_forced_steps(features, tokens, lengths)
        rows = []
        for _, h, context in decoded:
            logits = self.readout(h, context)
            rows.append(F.pad(logits, (0, 0, 0, n - logits.shape[0])))
        out = features.new_zeros(n, steps, self.config.vocab_size)
        if rows:
            out_sorted = torch.stack(rows, dim=1)  # [N, T, V], rows in length order
            out = out.index_copy(0, order, F.pad(out_sorted, (0, 0, 0, steps - len(rows))))
        return out

    def decode_last_logits(self, features: Tensor, tokens: Tensor, lengths: Tensor) -> Tensor:
        """`[N, V]`: row n's logits at its last step, `lengths[n] - 1`; the output layer runs
        once per row (on the rows that finish at each step) instead of at every step."""
        order, decoded = self._teacher_forced_steps(features, tokens, lengths.clamp(min=1))
        last = [self.readout(h[going_on:], context[going_on:]) for going_on, h, context in decoded]
        out = torch.cat(last[::-1])  # the longest rows finish last and come first in `order`
        return torch.zeros_like(out).index_copy(0, order, out)

    def _teacher_forced_steps(
        self, features: Tensor, tokens: Tensor, lengths: Tensor
    ) -> tuple[Tensor, Iterator[tuple[int, Tensor, Tensor]]]:
        """The rows' order by decreasing length, and the steps: for each, how many rows go on
        after it and the (h, context) of the rows still active, in that order."""
        n, steps = tokens.shape
        if features.shape[0] != n:
            raise ValueError(f"{features.shape[0]} feature rows for {n} token rows")
        lengths = lengths.to(tokens.device).clamp(max=steps)
        order = torch.argsort(lengths, descending=True, stable=True)
        memory, tokens_sorted, sorted_lengths = features[order], tokens[order], lengths[order]

        def decoded() -> Iterator[tuple[int, Tensor, Tensor]]:
            h, c, keys = self.init_state(memory)
            for t in range(int(sorted_lengths.max()) if n else 0):
                active = int((sorted_lengths > t).sum())  # sorted: the first `active` go on
                h, c, context, _ = self.advance(
                    memory[:active], keys[:active], tokens_sorted[:active, t], h[:active],
                    c[:active],
                )  # fmt: skip
                yield int((sorted_lengths > t + 1).sum()), h, context

        return order, decoded()

    # ------------------------------------------------------------------ generation

    @torch.no_grad()
    def generate(self, images: Tensor, max_length: int = 20, beam_size: int = 1) -> list[list[int]]:
        """Each image's caption ids (without BOS/EOS): greedy when `beam_size` is 1, else beam
        search keeping the `beam_size` best partial captions by summed log-probability."""
        memory = self.encode(images)
        if beam_size <= 1:
            return self._greedy(memory, max_length)
        return [self._beam(memory[i : i + 1], max_length, beam_size) for i in range(len(memory))]

    def _greedy(self, memory: Tensor, max_length: int) -> list[list[int]]:
        n = memory.shape[0]
        h, c, keys = self.init_state(memory)
        words = torch.full((n,), self.bos_index, dtype=torch.long, device=memory.device)
        captions: list[list[int]] = [[] for _ in range(n)]
        done = torch.zeros(n, dtype=torch.bool)
        for _ in range(max_length):
            logits, h, c, _ = self.step(memory, keys, words, h, c)
            words = logits.argmax(dim=1)
            for i, word in enumerate(words.tolist()):
                if not done[i]:
                    if word == self.eos_index:
                        done[i] = True
                    else:
                        captions[i].append(word)
            if bool(done.all()):
                break
        return captions

    def _beam(self, memory: Tensor, max_length: int, beam_size: int) -> list[int]:
        """Beam search for one image (`memory` `[1, h*w, D]`)."""
        h, c, keys = self.init_state(memory)
        beams: list[tuple[float, list[int]]] = [(0.0, [])]
        states = (h, c)
        finished: list[tuple[float, list[int]]] = []
        for _ in range(max_length):
            k = len(beams)
            words = torch.tensor(
                [b[-1] if b else self.bos_index for _, b in beams], device=memory.device
            )
            logits, h, c, _ = self.step(
                memory.expand(k, -1, -1), keys.expand(k, -1, -1), words, *states
            )
            logp = (
                torch.log_softmax(logits, dim=1)
                + torch.tensor([s for s, _ in beams], device=memory.device)[:, None]
            )
            top = logp.flatten().topk(min(beam_size, logp.numel()))
            vocab = logp.shape[1]
            keep_rows, new_beams = [], []
            for score, flat in zip(top.values.tolist(), top.indices.tolist(), strict=True):
                row, word = divmod(flat, vocab)
                if word == self.eos_index:
                    finished.append((score, beams[row][1]))
                else:
                    keep_rows.append(row)
                    new_beams.append((score, beams[row][1] + [word]))
            if len(finished) >= beam_size or not new_beams:
                break
            if finished and max(s for s, _ in finished) >= new_beams[0][0]:
                break  # scores only fall: no live beam can beat the best finished one
            index = torch.tensor(keep_rows, device=memory.device)
            beams, states = new_beams, (h[index], c[index])
        candidates = finished or beams
        return max(candidates, key=lambda sb: sb[0])[1]

    def words(self, token_ids: Sequence[int]) -> list[str]:
        """The text of each token id."""
        return self.vocab.words(token_ids)

    def caption(self, images: Tensor, max_length: int = 20, beam_size: int = 1) -> list[str]:
        """Captions as text."""
        return [" ".join(self.words(c)) for c in self.generate(images, max_length, beam_size)]


# ----------------------------------------------------------------------------- checkpoints


def save_captioner(model: Captioner, folder: str | Path) -> Path:
    """Write `config.json`, `vocab.json` and `model.pt` (a state_dict) into `folder`, each
    atomically (temp file + rename)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "config.json", asdict(model.config), indent=2)
    model.vocab.save(folder / "vocab.json")
    save_state_dict(model, folder / "model.pt")
    return folder


def save_state_dict(model: nn.Module, path: Path) -> None:
    """`torch.save` of the state_dict through a temp file + rename."""
    temporary = path.with_name(f".{path.name}.tmp")
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, temporary)
    temporary.replace(path)


def load_captioner(
    path: str | Path = DEFAULT_CAPTIONER, device: str | torch.device = "cpu"
) -> Captioner:
    """The captioner in `path` (a folder with config.json, vocab.json, model.pt), in eval mode.
    Default: the bundled checkpoint trained on the shapes data."""
    folder = Path(path)
    for name in ("config.json", "vocab.json", "model.pt"):
        if not (folder / name).is_file():
            raise MissingInput(
                f"{folder / name} is missing; a captioner folder holds "
                "config.json, vocab.json and model.pt (scripts/train_captioner.py)"
            )
    config = CaptionerConfig(**read_json(folder / "config.json"))
    model = Captioner(config, Vocabulary.load(folder / "vocab.json"))
    state = torch.load(folder / "model.pt", map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.to(device).eval()
