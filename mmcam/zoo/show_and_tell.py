"""Show and Tell (Vinyals et al. 2015) on a torchvision ResNet: the pooled CNN feature starts an
LSTM language model. A `CaptionModel`; its explained layer is the trunk's last block,
`encoder.layer4`.

Unlike the bundled attention captioner, the decoder never sees the feature grid, only its mean,
so everything after the explained layer is cheap and the CNN below it is not: the case where
explaining every word from one forward pass pays most.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torchvision
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from mmcam.data.vocab import Vocabulary

EXPLAINED_LAYER = "encoder.layer4"


class ShowAndTell(nn.Module):
    """A ResNet trunk (`resnet18` by default, untrained unless you load weights) and an LSTM."""

    def __init__(
        self,
        vocab: Vocabulary,
        backbone: str = "resnet18",
        hidden_dim: int = 512,
        embed_dim: int = 256,
    ) -> None:
        super().__init__()
        self.vocab = vocab
        self.bos_index, self.eos_index, self.pad_index = (
            vocab.BOS_INDEX,
            vocab.EOS_INDEX,
            vocab.PAD_INDEX,
        )
        resnet = getattr(torchvision.models, backbone)()
        self.encoder = nn.Sequential()
        for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"):
            self.encoder.add_module(name, getattr(resnet, name))
        self.init_h = nn.Linear(resnet.fc.in_features, hidden_dim)
        self.init_c = nn.Linear(resnet.fc.in_features, hidden_dim)
        self.embed = nn.Embedding(len(vocab), embed_dim, padding_idx=self.pad_index)
        self.lstm = nn.LSTM(embed_dim, hidden_dim, batch_first=True)
        self.out = nn.Linear(hidden_dim, len(vocab))

    def encode(self, images: Tensor) -> Tensor:
        """The mean of the trunk's last feature grid, `[B, C]`."""
        return self.encoder(images).mean(dim=(2, 3))

    def _state(self, features: Tensor) -> tuple[Tensor, Tensor]:
        return torch.tanh(self.init_h(features))[None], torch.tanh(self.init_c(features))[None]

    def decode_logits(self, features: Tensor, tokens: Tensor, lengths: Tensor) -> Tensor:
        """Teacher-forced logits `[N, L, V]`; the LSTM runs only `lengths[n]` steps of row n."""
        hidden, _ = self._decode(features, tokens, lengths)
        hidden, _ = pad_packed_sequence(hidden, batch_first=True, total_length=tokens.shape[1])
        return self.out(hidden)

    def decode_last_logits(self, features: Tensor, tokens: Tensor, lengths: Tensor) -> Tensor:
        """`[N, V]`: row n's logits at its last step, `lengths[n] - 1` (they score
        `tokens[n, lengths[n]]`). The output layer runs once per row instead of once per step:
        with a COCO-sized vocabulary it is most of the decoder's cost."""
        _, (last, _) = self._decode(features, tokens, lengths)
        return self.out(last[-1])  # the packed LSTM's final state is each row's last step

    def _decode(self, features: Tensor, tokens: Tensor, lengths: Tensor):
        steps = lengths.clamp(min=1, max=tokens.shape[1]).cpu()
        packed = pack_padded_sequence(
            self.embed(tokens), steps, batch_first=True, enforce_sorted=False
        )
        return self.lstm(packed, self._state(features))

    @torch.no_grad()
    def generate(self, images: Tensor, max_length: int = 20, beam_size: int = 1) -> list[list[int]]:
        """Greedy captions (token ids without BOS/EOS)."""
        if beam_size != 1:
            raise ValueError("ShowAndTell decodes greedily; use beam_size=1")
        state = self._state(self.encode(images))
        word = torch.full((images.shape[0], 1), self.bos_index, device=images.device)
        captions: list[list[int]] = [[] for _ in range(images.shape[0])]
        finished = torch.zeros(images.shape[0], dtype=torch.bool, device=images.device)
        for _ in range(max_length):
            hidden, state = self.lstm(self.embed(word), state)
            word = self.out(hidden[:, -1]).argmax(dim=1, keepdim=True)
            finished |= word[:, 0] == self.eos_index
            for row in (~finished).nonzero().flatten().tolist():
                captions[row].append(int(word[row]))
            if finished.all():
                break
        return captions

    def words(self, token_ids: Sequence[int]) -> list[str]:
        return self.vocab.words(token_ids)
