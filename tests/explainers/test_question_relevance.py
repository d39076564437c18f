"""Question-token relevance of a hand-built single-stream VQA model whose answer depends on
one word of the question: relevance finds the word whose removal changes the answer."""

from __future__ import annotations

import torch
from torch import nn

from mmcam.explainers.attention_stack import AttentionLayout, VQAStackExplainer
from mmcam.explainers.hf.adapters import PatchGrid


class ToyEmbeddings(nn.Module):
    """Question tokens (one-hot: [CLS] 0, words, padding 7), an image class token and a 2x2 grid
    of patch tokens, in one sequence of width 8."""

    def forward(self, ids: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        text = nn.functional.one_hot(ids, 8).float()  # [B, L, 8]
        patches = nn.functional.avg_pool2d(images, 2).flatten(2).transpose(1, 2)  # [B, 4, 3]
        image = torch.cat([torch.zeros_like(patches[:, :1]), patches], dim=1)
        return torch.cat([text, nn.functional.pad(image, (0, 5))], dim=1)


class ToyAttention(nn.Module):
    """One head: [CLS] (token 0) looks for word 3, whose value carries the answer's evidence."""

    def __init__(self) -> None:
        super().__init__()
        self.query, self.key = torch.zeros(8, 8), torch.zeros(8, 8)
        self.query[0, 0] = 6.0  # [CLS] asks ...
        self.key[3, 0] = 1.0  # ... for word 3
        self.key += 0.1 * torch.randn(8, 8, generator=torch.Generator().manual_seed(0))
        self.value = torch.zeros(8, 8)
        self.value[3, 7] = 1.0  # word 3 carries dimension 7
        self.value[4, 7] = 0.2  # word 4 a little
        self.probs = nn.Identity()  # where the attention probabilities pass

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        scores = (hidden @ self.query) @ (hidden @ self.key).transpose(1, 2) + mask
        return hidden + self.probs(scores.softmax(-1)[:, None])[:, 0] @ (hidden @ self.value)


class ToyVQA(nn.Module):
    answers = ["yes", "no"]

    def __init__(self) -> None:
        super().__init__()
        self.embeddings, self.layer = ToyEmbeddings(), ToyAttention()
        self.head = nn.Linear(8, 2)
        with torch.no_grad():
            self.head.weight.zero_()
            self.head.bias.zero_()
            self.head.weight[0, 7] = 4.0  # "yes" reads dimension 7 of [CLS]

    def tokenize(self, questions):
        rows = [[0, *(int(word) for word in q.split())] for q in questions]
        longest = max(len(row) for row in rows)
        ids = torch.tensor([row + [7] * (longest - len(row)) for row in rows])
        return {"input_ids": ids, "attention_mask": (ids != 7).long()}

    def unknown_words(self, question):
        return []

    def forward(self, images, questions):
        ids, mask = questions["input_ids"], questions["attention_mask"]
        step = ids.shape[0] // images.shape[0]
        hidden = self.embeddings(ids[::step], images)  # replicated by the explainer's entry tap
        keep = torch.cat([mask[::step], torch.ones(mask[::step].shape[0], 5)], dim=1)
        additive = (1.0 - keep[:, None, :]) * -1e9
        rows = additive.repeat_interleave(hidden.shape[0] // additive.shape[0], dim=0)
        return self.head(self.layer(hidden, rows)[:, 0])


def test_question_relevance_finds_the_word_whose_removal_changes_the_answer():
    model = ToyVQA().eval()
    layout = AttentionLayout(entry="embeddings", text=("layer.probs",))
    images = torch.randn(1, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    question = ["1 2 3 4 5"]
    result = VQAStackExplainer(model, layout, PatchGrid(2, 2)).explain(
        images, question, top_k=1, method="relevance"
    )
    assert result.answers == [["yes"]]
    relevant = result.question_relevance[0, 0]  # [L]: [CLS] and the five words
    tokens = model.tokenize(question)
    with torch.no_grad():
        full = model(images, tokens)[0, 0]
        drops = []
        for position in range(1, 6):  # each word removed (masked out) in turn
            removed = {key: value.clone() for key, value in tokens.items()}
            removed["attention_mask"][0, position] = 0
            drops.append(float(full - model(images, removed)[0, 0]))
    assert int(relevant[1:].argmax()) == max(range(5), key=drops.__getitem__) == 2  # word 3
    assert relevant[3] > 10 * relevant[torch.arange(6) != 3].abs().max()
