"""Occlusion: equal to Captum on a classifier, exact on a hand-checkable model, and for caption,
word and VQA targets the drop of the right score whatever the batch size."""

from __future__ import annotations

import pytest
import torch
from captum.attr import Occlusion
from oracle import assert_matches
from tiny_models import TinyCaptioner, TinyVQA

from mmcam.core.targets import CaptionLogProb, CaptionWords, ClassLogit, ClassLogits, WordLogProb
from mmcam.methods import perturbation
from mmcam.methods.perturbation import MEASURED, chunk_bounds, occlusion
from mmcam.methods.rise import rise

CLASSES = [1, 3, 0]


@pytest.mark.parametrize(
    ("window", "stride", "fill", "per_eval"),
    [(4, 2, 0.0, 1), (4, 4, 0.5, 5), (5, 3, -1.0, 64), ((3, 6), (2, 5), 0.25, 7)],
)
def test_occlusion_equals_captum(tiny_classifier, window, stride, fill, per_eval):
    """Same window, stride, fill and forward batch; windows clipped at the border included."""
    model, images = tiny_classifier
    ours = occlusion(model, images, ClassLogit(CLASSES), window, stride, fill, 3 * per_eval)
    win = (window, window) if isinstance(window, int) else window
    step = (stride, stride) if isinstance(stride, int) else stride
    captum = Occlusion(model).attribute(
        images, (3, *win), (3, *step), fill, CLASSES, perturbations_per_eval=per_eval
    )
    assert_matches(ours.raw, captum)
    assert ours.raw.shape == (3, 3, 16, 16) and ours.maps.shape == (3, 16, 16)
    assert_matches(ours.scores, model(images)[torch.arange(3), CLASSES])


def test_a_per_channel_fill_equals_captum_with_that_baseline(tiny_classifier):
    model, images = tiny_classifier
    fill = torch.tensor([0.1, -0.2, 0.3]).view(1, 3, 1, 1)
    ours = occlusion(model, images, ClassLogit(CLASSES), 4, 3, fill, batch_size=8)
    captum = Occlusion(model).attribute(images, (3, 4, 4), (3, 3, 3), fill.expand_as(images),
                                        CLASSES, perturbations_per_eval=4)  # fmt: skip
    assert_matches(ours.raw, captum)


def test_occlusion_of_a_region_sum_is_exact():
    """y = sum of the top-left 2x2 pixels of channel 0; window 2, stride 2, fill 0: the drop is
    the window's own sum inside that block and 0 elsewhere."""
    images = torch.arange(1.0, 17.0).view(1, 1, 4, 4).expand(1, 3, 4, 4).clone()
    forward = lambda x: x[:, 0, :2, :2].sum(dim=(1, 2))[:, None]  # noqa: E731
    ours = occlusion(forward, images, ClassLogit(0), window=2, stride=2, batch_size=3)
    expected = torch.zeros(4, 4)
    expected[:2, :2] = 1 + 2 + 5 + 6
    assert torch.equal(ours.raw[0, 0], expected) and torch.equal(ours.raw[0, 2], expected)
    assert torch.equal(ours.maps[0], (expected > 0).float())
    assert ours.scores.tolist() == [14.0]


def test_a_negative_drop_is_kept_in_raw_and_left_out_of_the_map():
    images = torch.ones(1, 3, 4, 4)
    forward = lambda x: (x[:, :, :2].sum(dim=(1, 2, 3)) - x[:, :, 2:].sum(dim=(1, 2, 3)))[:, None]  # noqa: E731
    ours = occlusion(forward, images, ClassLogit(0), window=(2, 4), stride=(2, 4))
    assert ours.raw[0, 0, :, 0].tolist() == [24.0, 24.0, -24.0, -24.0]
    assert ours.maps[0, :, 0].tolist() == [1.0, 1.0, 0.0, 0.0]


@pytest.fixture
def captioner() -> tuple[TinyCaptioner, torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    tokens = torch.tensor([[1, 5, 6, 7, 2], [1, 4, 3, 2, 0]])
    return TinyCaptioner().eval(), torch.randn(2, 3, 8, 8), tokens, torch.tensor([4, 3])


def by_hand(score, images: torch.Tensor, top: int, left: int, size: int, fill: float) -> float:
    """The drop of `score` (of one image) when the window at (top, left) is set to `fill`."""
    hidden = images.clone()
    hidden[:, :, top : top + size, left : left + size] = fill
    return float(score(images) - score(hidden))


@pytest.mark.parametrize("batch_size", [1, 5, 100])
def test_caption_and_word_drops_are_the_log_probability_drops(captioner, batch_size):
    model, images, tokens, lengths = captioner

    def caption_forward(x, t, n):
        return model.decode_logits(model.encode(x), t, n)

    for target in (CaptionLogProb(tokens, lengths), WordLogProb(tokens, lengths, [2, 0])):
        ours = occlusion(caption_forward, images, target, 4, 4, 0.0, batch_size,
                         forward_args=(tokens, lengths))  # fmt: skip
        for r in range(2):
            row = slice(r, r + 1)
            if isinstance(target, WordLogProb):
                one = WordLogProb(tokens[row], lengths[row], [2, 0][r])
            else:
                one = CaptionLogProb(tokens[row], lengths[row])
            score = lambda x, one=one, row=row: one(caption_forward(x, tokens[row], lengths[row]))  # noqa: E731
            with torch.no_grad():
                for top, left in [(0, 0), (0, 4), (4, 4)]:
                    expected = by_hand(score, images[row], top, left, 4, 0.0)
                    assert float(ours.raw[r, 0, top, left]) == pytest.approx(expected, abs=1e-5)
                assert_matches(ours.scores[row], score(images[row]))
        assert (ours.scores < 0).all()


def test_vqa_drop_is_the_answers_score_drop_and_independent_of_batch_size():
    torch.manual_seed(0)
    model = TinyVQA().eval()
    images = torch.randn(2, 3, 8, 8)
    questions = model.tokenize(["what colour is it", "is it left"])
    answers = ClassLogit([2, 0])
    one = occlusion(model, images, answers, 2, 2, 0.0, 1, forward_args=(questions,))
    many = occlusion(model, images, answers, 2, 2, 0.0, 64, forward_args=(questions,))
    assert_matches(one.raw, many.raw)
    score = lambda x: model(x, questions[1:])[:, 0]  # noqa: E731
    with torch.no_grad():
        expected = by_hand(score, images[1:], 6, 2, 2, 0.0)
    assert float(many.raw[1, 0, 6, 2]) == pytest.approx(expected, abs=1e-5)


def test_a_forward_holding_per_image_inputs_gets_a_message_saying_what_to_do(captioner):
    model, images, tokens, lengths = captioner
    closure = lambda x: model.decode_logits(model.encode(x), tokens, lengths)  # noqa: E731
    with pytest.raises(RuntimeError, match="pass them as forward_args"):
        occlusion(closure, images, CaptionLogProb(tokens, lengths), window=4)
    # one copy per call of a single image needs nothing
    first = lambda x: model.decode_logits(model.encode(x), tokens[:1], lengths[:1])  # noqa: E731
    single = occlusion(first, images[:1], CaptionLogProb(tokens[:1], lengths[:1]), 4, batch_size=1)
    assert single.raw.shape == (1, 3, 8, 8)


def test_bad_settings_raise(tiny_classifier):
    model, images = tiny_classifier
    with pytest.raises(ValueError, match="larger than the image"):
        occlusion(model, images, ClassLogit(CLASSES), window=17)
    with pytest.raises(ValueError, match="never occluded"):
        occlusion(model, images, ClassLogit(CLASSES), window=2, stride=3)
    with pytest.raises(ValueError, match="2 target classes for a batch of 3"):
        occlusion(model, images, ClassLogit([1, 2]), window=4)


def test_parameters_get_no_gradient_and_mode_is_kept(tiny_classifier):
    model, images = tiny_classifier
    model.train()
    occlusion(model, images, ClassLogit(CLASSES), window=8)
    assert model.training and all(p.grad is None for p in model.parameters())


def test_several_scores_per_image_from_one_sweep_equal_captum_once_per_target(tiny_classifier):
    """A target with k scores per image `[n, k]`: each score's map equals Captum run for it."""
    model, images = tiny_classifier
    classes = torch.tensor([[1, 3, 0], [4, 2, 1], [0, 1, 2]])  # [B, k]
    ours = occlusion(model, images, ClassLogits(classes), 4, 3, 0.5, batch_size=10)
    assert ours.raw.shape == (3, 3, 3, 16, 16) and ours.maps.shape == (3, 3, 16, 16)
    for rank in range(3):
        captum = Occlusion(model).attribute(
            images, (3, 4, 4), (3, 3, 3), 0.5, classes[:, rank].tolist(), perturbations_per_eval=4
        )
        assert_matches(ours.raw[:, rank], captum)
        alone = occlusion(model, images, ClassLogit(classes[:, rank]), 4, 3, 0.5)
        assert_matches(ours.maps[:, rank], alone.maps)
    assert_matches(ours.scores, model(images).gather(1, classes))


def test_a_measured_chunk_size_gives_the_same_maps_as_a_fixed_one_to_float_tolerance(
    tiny_classifier,
):
    """Timing-based sizing is an explicit option; its maps equal a fixed size's to 1e-5."""
    model, images = tiny_classifier
    measured = occlusion(model, images, ClassLogit(CLASSES), 4, 2, 0.0, batch_size=MEASURED)
    fixed = occlusion(model, images, ClassLogit(CLASSES), 4, 2, 0.0, batch_size=5)
    assert_matches(measured.raw, fixed.raw)


def fake_clock(monkeypatch, seconds_per_call):
    """perf_counter advancing by `seconds_per_call()` at every read: a machine as slow or as
    busy as we like, in a test that itself never waits."""
    clock = [0.0]

    def tick():
        clock[0] += seconds_per_call()
        return clock[0]

    monkeypatch.setattr(perturbation.time, "perf_counter", tick)


@pytest.mark.parametrize("method", ["occlusion", "rise"])
def test_the_default_chunking_gives_bit_identical_maps_on_slow_and_fast_machines(
    monkeypatch, captioner, method
):
    """Every word's map of a caption sweep under a fast clock, a slow one and one that slows
    down as it goes (a machine getting busy): the same forward batches, the same bits."""
    model, images, tokens, lengths = captioner
    target = CaptionWords(tokens, lengths, tokens.shape[1] - 1)

    def sweep():
        batches = []

        def forward(x, t, n):
            batches.append(x.shape[0])
            return model.decode_logits(model.encode(x), t, n)

        common = dict(model=model, forward_args=(tokens, lengths))
        if method == "occlusion":
            return occlusion(forward, images, target, 2, 1, **common), batches
        return rise(forward, images, target, n_masks=120, cell=4, **common), batches

    runs = []
    for seconds in (lambda: 1e-6, lambda: 5.0, iter(range(1, 10**6)).__next__):
        fake_clock(monkeypatch, seconds)
        runs.append(sweep())
    (first, batches), *others = runs
    for other, other_batches in others:
        assert other_batches == batches
        assert torch.equal(other.raw, first.raw) and torch.equal(other.maps, first.maps)


def test_the_default_chunk_rows_follow_the_input_size_alone():
    rows = perturbation.default_chunk_rows
    assert rows(4) == perturbation.CHUNK_ROWS
    assert rows(perturbation.MAX_CHUNK_BYTES // 10) == 10  # big copies: the memory cap rules
    assert rows(perturbation.MAX_CHUNK_BYTES * 2) == 1
    sizes = [stop - start for start, stop in chunk_bounds(70, None, 4, torch.device("cpu"))]
    assert sizes == [32, 32, 6]
    with pytest.raises(ValueError, match="'measured' \\(timed\\), got 'fastest'"):
        list(chunk_bounds(70, "fastest", 4, torch.device("cpu")))


def run_sweep(monkeypatch, total, cost, row_bytes=4, batch_size=MEASURED):
    """Chunk sizes `chunk_bounds` hands out when a chunk of n rows takes cost(n) * n seconds."""
    clock = [0.0]
    monkeypatch.setattr(perturbation.time, "perf_counter", lambda: clock[0])
    sizes = []
    for start, stop in chunk_bounds(total, batch_size, row_bytes, torch.device("cpu")):
        sizes.append(stop - start)
        clock[0] += cost(stop - start) * (stop - start)
    assert sum(sizes) == total
    return sizes


def test_the_measured_chunk_size_doubles_while_rows_get_cheaper_then_keeps_the_best(monkeypatch):
    cheapest_at_32 = lambda n: abs(n - 32) + 10.0  # noqa: E731 (seconds per row)
    sizes = run_sweep(monkeypatch, 400, cheapest_at_32)
    assert sizes[:5] == [8, 16, 32, 64, 32] and set(sizes[5:-1]) == {32}
    # a flat cost stops at the second size; a falling one grows to the memory cap
    assert run_sweep(monkeypatch, 100, lambda n: 1.0)[:4] == [8, 16, 8, 8]
    capped = run_sweep(
        monkeypatch, 2000, lambda n: 1.0 / n, row_bytes=perturbation.MAX_CHUNK_BYTES // 100
    )
    assert max(capped) == 64 and capped[:4] == [8, 16, 32, 64]
    assert run_sweep(monkeypatch, 10, lambda n: 1.0, batch_size=4) == [4, 4, 2]
