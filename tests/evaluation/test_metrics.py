"""Metrics on hand-computed cases."""

import math

import pytest
import torch
from nltk.translate.bleu_score import SmoothingFunction

from mmcam.core.box import Box
from mmcam.evaluation.box_metrics import (
    box_iou,
    box_iou_matrix,
    energy_in_box,
    localization_accuracy,
    max_box_acc,
    pointing_game,
    scaled_pointing_tolerance,
)
from mmcam.evaluation.caption_metrics import caption_bleu
from mmcam.evaluation.faithfulness import (
    blur_image,
    center_gaussian_map,
    deletion_auc,
    insertion_auc,
    random_map,
)
from mmcam.evaluation.vqa_accuracy import normalize_answer, vqa_accuracy, vqa_evaluate

# ----------------------------------------------------------------------------- boxes


def test_box_iou_exact_fractions():
    assert box_iou([0, 0, 10, 10], [5, 5, 10, 10]) == pytest.approx(25 / 175)  # 1/7
    assert box_iou(Box(0, 0, 10, 10), torch.tensor([0.0, 0, 20, 10])) == pytest.approx(0.5)
    assert box_iou([0, 0, 10, 10], [0, 0, 10, 10]) == 1.0
    assert box_iou([0, 0, 10, 10], [10, 0, 10, 10]) == 0.0  # touching edges share no pixel
    assert box_iou([3, 3, 0, 0], [3, 3, 0, 0]) == 0.0


def test_box_iou_matrix_shape_and_values():
    iou = box_iou_matrix([[0, 0, 10, 10], [5, 5, 10, 10]], torch.tensor([[0, 0, 10, 10.0]]))
    assert iou.shape == (2, 1)
    assert iou[:, 0].tolist() == pytest.approx([1.0, 1 / 7])


def test_boxes_with_negative_width_are_refused():
    with pytest.raises(ValueError, match="width and height"):
        box_iou([0, 0, -5, 10], [0, 0, 5, 5])
    with pytest.raises(ValueError, match=r"\[K, 4\]"):
        box_iou_matrix(torch.zeros(2, 3), [0, 0, 1, 1])


def test_localization_accuracy_counts_iou_at_least_half_with_any_gt():
    result = localization_accuracy(
        [[0, 0, 10, 10], Box(0, 0, 10, 10), None],
        [
            [[50, 50, 5, 5], [0, 0, 20, 10]],  # IoU 0.5 with the second: a hit
            [[5, 5, 10, 10]],  # IoU 1/7: a miss
            [[0, 0, 1, 1]],  # no prediction: a miss
        ],
    )
    assert result.accuracy == pytest.approx(1 / 3)
    assert result.hits == [True, False, False]
    assert result.ious == pytest.approx([0.5, 1 / 7, 0.0])
    assert result.iou_threshold == 0.5
    assert localization_accuracy([[0, 0, 10, 10]], [[[5, 5, 10, 10]]], 0.1).accuracy == 1.0
    with pytest.raises(ValueError, match="predictions"):
        localization_accuracy([None], [])


def test_max_box_acc_picks_the_threshold_that_fits_both_maps():
    # Map 1: core 1.0 (the object, rows/cols 5..9) in a 0.25 halo (0..14): needs tau >= 0.25.
    m1 = torch.zeros(20, 20)
    m1[0:15, 0:15] = 0.25
    m1[5:10, 5:10] = 1.0
    # Map 2: a 0.35 plateau (the object, 2..11) with one 1.0 peak: needs tau < 0.35.
    m2 = torch.zeros(20, 20)
    m2[2:12, 2:12] = 0.35
    m2[6, 6] = 1.0
    gts = [[[5, 5, 5, 5]], [[2, 2, 10, 10]]]
    result = max_box_acc(torch.stack([m1, m2]), gts, thresholds=[0.1, 0.2, 0.3, 0.4, 0.5])
    assert result.accuracies == [0.5, 0.5, 1.0, 0.5, 0.5]
    assert (result.accuracy, result.threshold) == (1.0, 0.3)
    assert result.thresholds == [0.1, 0.2, 0.3, 0.4, 0.5]
    # The default sweep is Choe et al.'s 0.00..0.99 in steps of 0.01.
    default = max_box_acc(torch.stack([m1, m2]), gts)
    assert default.thresholds == [i / 100 for i in range(100)]
    assert default.accuracy == 1.0 and default.threshold == 0.25


def test_max_box_acc_in_original_pixels():
    m = torch.zeros(10, 10)
    m[2:4, 2:4] = 1.0
    result = max_box_acc(m[None], [[[4, 4, 4, 4]]], [0.5], image_sizes=[(20, 20)])
    assert result.accuracy == 1.0


# ----------------------------------------------------------------------------- maps


def peak_map(row: int, col: int, size: int = 32) -> torch.Tensor:
    m = torch.zeros(size, size)
    m[row, col] = 1.0
    return m


def test_pointing_game_tolerance_0_vs_15():
    gt = [[0, 0, 10, 10]]  # columns and rows 0..9
    # Max at (x=20, y=10): centre (20.5, 10.5) is sqrt(10.5^2 + 0.5^2) ~ 10.5 px from the box.
    assert pointing_game(peak_map(10, 20), gt, tolerance=15).per_map == [True]
    assert pointing_game(peak_map(10, 20), gt, tolerance=0).per_map == [False]
    assert pointing_game(peak_map(5, 9), gt, tolerance=0).per_map == [True]  # last column
    assert pointing_game(peak_map(5, 10), gt, tolerance=0).per_map == [False]  # one past
    # Along an axis: column 24 (centre 24.5) is 14.5 px away, column 25 is 15.5 px away.
    assert pointing_game(peak_map(5, 24), gt, tolerance=15).per_map == [True]
    assert pointing_game(peak_map(5, 25), gt, tolerance=15).per_map == [False]


def test_pointing_game_tolerance_scales_with_the_image_by_default():
    gt = [[0, 0, 10, 10]]
    # 224 px: Zhang et al.'s 15 px; the same peaks as above hit and miss.
    assert pointing_game(peak_map(5, 24, 224), gt).per_map == [True]
    assert pointing_game(peak_map(5, 25, 224), gt).tolerances == [pytest.approx(15.0)]
    assert pointing_game(peak_map(5, 25, 224), gt).per_map == [False]
    # 128 px: 15/224 * 128 = 8.57 px. Column 18 (centre 18.5) is 8.5 px away, column 19 9.5.
    result = pointing_game(torch.stack([peak_map(5, 18, 128), peak_map(5, 19, 128)]), [gt] * 2)
    assert result.per_map == [True, False] and result.tolerance is None
    assert result.tolerances == [pytest.approx(15 / 224 * 128)] * 2
    # The shorter side of the original image counts, after resizing: 32 px map, 448 x 224 image.
    wide = pointing_game(peak_map(5, 5), gt, image_sizes=(224, 448))
    assert wide.tolerances == [pytest.approx(15.0)]
    assert scaled_pointing_tolerance(64, 300) == pytest.approx(15 / 224 * 64)


def test_pointing_game_batch_counts_hits_and_misses():
    maps = torch.stack([peak_map(5, 5), peak_map(30, 30), torch.zeros(32, 32)])
    result = pointing_game(maps, [[[0, 0, 10, 10]]] * 3, tolerance=0)
    assert (result.hits, result.misses, result.accuracy) == (1, 2, pytest.approx(1 / 3))
    assert result.points == [(5, 5), (30, 30), None]  # an empty map points nowhere


def test_pointing_game_resizes_to_original_image():
    m = torch.zeros(8, 8)
    m[1:3, 1:3] = 1.0  # 2x: rows/cols 3..4 reach the maximum; first is (3, 3)
    result = pointing_game(m, [[3, 3, 2, 2]], tolerance=0, image_sizes=(16, 16))
    assert result.points == [(3, 3)] and result.per_map == [True]


def test_energy_in_box_is_the_mass_fraction():
    m = torch.ones(4, 4)
    assert energy_in_box(m, [0, 0, 2, 2]) == pytest.approx(4 / 16)
    assert energy_in_box(m, [[0, 0, 2, 2], [1, 1, 2, 2]]) == pytest.approx(7 / 16)  # union
    m2 = torch.zeros(4, 4)
    m2[0, 0], m2[3, 3] = 3.0, 1.0
    assert energy_in_box(m2, [0, 0, 1, 1]) == pytest.approx(0.75)
    assert energy_in_box(torch.zeros(4, 4), [0, 0, 1, 1]) == 0.0
    with pytest.raises(ValueError, match=r"\[H, W\]"):
        energy_in_box(torch.ones(1, 4, 4), [0, 0, 1, 1])


def test_baseline_maps():
    a, b = random_map((6, 7), seed=3), random_map((6, 7), seed=3)
    assert torch.equal(a, b) and a.shape == (6, 7)
    assert 0 <= float(a.min()) and float(a.max()) < 1
    assert not torch.equal(a, random_map((6, 7), seed=4))
    g = center_gaussian_map((5, 5), sigma=0.25)
    assert float(g[2, 2]) == 1.0
    # Corner centre (0.5, 0.5) is 2 px from the centre, sigma = 1.25 px on each axis.
    assert float(g[0, 0]) == pytest.approx(math.exp(-0.5 * 2 * (2 / 1.25) ** 2), rel=1e-6)


# ------------------------------------------------------------------ deletion / insertion


def square_score(images: torch.Tensor) -> torch.Tensor:
    """Toy model: the mean of the 2x2 square at rows/cols 2..3."""
    return images[:, 0, 2:4, 2:4].mean(dim=(1, 2))


def test_deletion_auc_perfect_below_random_below_worst():
    image = torch.ones(1, 8, 8)
    perfect = torch.zeros(8, 8)
    perfect[2:4, 2:4] = 1.0
    worst = 1.0 - perfect
    # 16 steps of 4 pixels. Perfect: the square goes in step 1, scores [1, 0, ..., 0]:
    # AUC = 1/2 * 1/16. Worst: the square goes last, 1 until step 15: 15/16 + 1/32.
    best = deletion_auc(image, perfect, square_score, steps=16)
    bad = deletion_auc(image, worst, square_score, steps=16)
    rand = deletion_auc(image, random_map((8, 8), seed=0), square_score, steps=16)
    assert best.auc == pytest.approx(1 / 32)
    assert bad.auc == pytest.approx(31 / 32)
    assert 1 / 32 < rand.auc < 31 / 32
    assert best.scores.tolist() == [1.0] + [0.0] * 16
    assert best.fractions.tolist() == pytest.approx([k / 16 for k in range(17)])


def test_insertion_auc_reverses_the_order():
    image = torch.ones(1, 8, 8)
    perfect = torch.zeros(8, 8)
    perfect[2:4, 2:4] = 1.0
    best = insertion_auc(image, perfect, square_score, steps=16, baseline="zero")
    bad = insertion_auc(image, 1.0 - perfect, square_score, steps=16, baseline="zero")
    assert best.auc == pytest.approx(31 / 32)
    assert bad.auc == pytest.approx(1 / 32)


def test_causal_curves_are_batched_in_chunks():
    calls = []

    def counting_score(images: torch.Tensor) -> torch.Tensor:
        calls.append(images.shape[0])
        return square_score(images)

    image = torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(0))
    sal = random_map((8, 8), seed=1)
    chunked = deletion_auc(image, sal, counting_score, steps=16, batch_size=5)
    assert calls == [5, 5, 5, 2]
    whole = deletion_auc(image, sal, square_score, steps=16, batch_size=100)
    assert chunked.auc == pytest.approx(whole.auc)
    with pytest.raises(ValueError, match="one score per image"):
        deletion_auc(image, sal, lambda x: x.sum(), steps=4)
    with pytest.raises(ValueError, match="resize"):
        deletion_auc(image, torch.zeros(4, 4), square_score)


def test_blur_keeps_a_constant_image_and_smooths_an_edge():
    flat = torch.full((3, 12, 12), 0.7)
    assert torch.allclose(blur_image(flat), flat)
    step = torch.zeros(1, 1, 12, 12)
    step[..., 6:] = 1.0
    blurred = blur_image(step)
    assert 0 < float(blurred[0, 0, 0, 5]) < 0.5 < float(blurred[0, 0, 0, 6]) < 1


# ----------------------------------------------------------------------------- captions


def test_bleu_of_identical_sentences_is_one():
    tokens = "a red circle next to a blue square".split()
    scores = caption_bleu([tokens], [[tokens, "a circle".split()]])
    assert scores == {"bleu1": 1.0, "bleu2": 1.0, "bleu3": 1.0, "bleu4": 1.0}


def test_bleu_brevity_penalty_by_hand():
    # All n-grams of "the cat sat" are in the reference; BP = exp(1 - 6/3) = exp(-1).
    scores = caption_bleu([["the", "cat", "sat"]], [["the cat sat on the mat".split()]])
    assert scores["bleu1"] == pytest.approx(math.exp(-1))
    assert scores["bleu3"] == pytest.approx(math.exp(-1))
    assert scores["bleu4"] < 1e-50  # no 4-gram at all, no smoothing: nltk gives ~1e-78
    smoothed = caption_bleu(
        [["the", "cat", "sat"]],
        [["the cat sat on the mat".split()]],
        smoothing=SmoothingFunction().method1,
    )
    assert 0 < smoothed["bleu4"] < scores["bleu3"]


def test_bleu_refuses_strings():
    with pytest.raises(ValueError, match="token lists"):
        caption_bleu(["a cat"], [[["a", "cat"]]])  # type: ignore[list-item]


# ----------------------------------------------------------------------------- VQA


def humans(answer: str, n: int, other: str = "no") -> list[str]:
    return [answer] * n + [other] * (10 - n)


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (0, 0.0),
        (1, 0.3),  # 9 subsets hold 1 match: 9 * 1/3 / 10
        (2, 0.6),  # 2 subsets with 1 match (1/3), 8 with 2 (2/3): 6/10
        (3, 0.9),  # 3 subsets with 2 matches (2/3), 7 with 3 (1): 9/10
        (4, 1.0),
        (10, 1.0),
    ],
)
def test_vqa_accuracy_leave_one_out(n, expected):
    assert vqa_accuracy("yes", humans("yes", n)) == pytest.approx(expected)


def test_vqa_answer_normalisation_classic_cases():
    assert vqa_accuracy("two", humans("2", 4)) == 1.0
    assert vqa_accuracy("a dog", humans("dog", 4, "cat")) == 1.0
    assert vqa_accuracy("yes.", humans("yes", 4)) == 1.0
    assert vqa_accuracy("Yes", humans("yes", 4)) == 1.0
    assert vqa_accuracy("dont know", humans("don't know", 4)) == 1.0


def test_vqa_unanimous_humans_get_no_normalisation_as_in_the_official_tool():
    assert vqa_accuracy("yes.", ["yes"] * 10) == 0.0
    assert vqa_accuracy(" yes\n", ["yes"] * 10) == 1.0  # whitespace is always stripped
    assert vqa_accuracy("yes.", ["yes"] * 10, always_normalize=True) == 1.0


def test_normalize_answer_official_rules():
    assert normalize_answer("Two dogs.") == "2 dogs"
    assert normalize_answer("the 1,000") == "1000"  # digit,digit: punctuation deleted
    assert normalize_answer("3.5") == "3.5"  # a period before a digit stays
    assert normalize_answer("red-white") == "red white"  # no space next to it: a space
    assert normalize_answer("yes !") == "yes"  # next to a space: deleted
    assert normalize_answer("none") == "0"
    assert normalize_answer("isnt it") == "isn't it"


def test_vqa_evaluate_reports_overall_and_per_type():
    annotations = [
        {"question_id": 1, "answers": [{"answer": a} for a in humans("yes", 10)],
         "answer_type": "yes/no", "question_type": "is the"},
        {"question_id": 2, "answers": [{"answer": a} for a in humans("2", 2, "3")],
         "answer_type": "number", "question_type": "how many"},
    ]  # fmt: skip
    results = [{"question_id": 1, "answer": "yes"}, {"question_id": 2, "answer": "two"}]
    report = vqa_evaluate(results, annotations)
    assert report.per_question == {1: 1.0, 2: pytest.approx(0.6)}
    assert report.overall == pytest.approx(0.8)
    assert report.per_answer_type == {"yes/no": 1.0, "number": pytest.approx(0.6)}
    assert report.per_question_type["how many"] == pytest.approx(0.6)
    with pytest.raises(ValueError, match="unanswered"):
        vqa_evaluate({1: "yes"}, annotations)
