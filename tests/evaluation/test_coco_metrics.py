"""The field's own yardsticks: COCO caption metrics (pycocoevalcap) and COCO AP / CorLoc
(pycocotools), checked against values worked out by hand."""

from __future__ import annotations

import pytest

from mmcam.evaluation import caption_metrics
from mmcam.evaluation.box_metrics import box_iou
from mmcam.evaluation.caption_metrics import CocoCaptionScorer, coco_caption_scores
from mmcam.evaluation.detection_metrics import box_detection_metrics, corloc

# ----------------------------------------------------------------------------- captions

# Image 1: the PTB tokenizer lower-cases and drops the full stop, so the reference is
# "a red circle is big" and the caption differs in its last word. Image 2: a perfect caption.
CAPTIONS = {1: "a red circle is small", 2: "a blue square"}
REFERENCES = {1: ["A red circle is big."], 2: ["a blue square"]}


@pytest.fixture(scope="module")
def scores() -> dict:
    return coco_caption_scores(CAPTIONS, REFERENCES)


def test_coco_bleu4_is_the_pooled_clipped_precisions_by_hand(scores):
    # Matches / candidate n-grams, pooled over both images: 1-grams (4 + 3) / (5 + 3),
    # 2-grams (3 + 2) / (4 + 2), 3-grams (2 + 1) / (3 + 1), 4-grams (1 + 0) / (2 + 0);
    # 8 candidate words against 8 reference words: no brevity penalty.
    assert scores["bleu1"] == pytest.approx(7 / 8, rel=1e-6)
    expected = (7 / 8 * 5 / 6 * 3 / 4 * 1 / 2) ** (1 / 4)  # (105 / 384) ** 0.25 = 0.72313
    assert scores["bleu4"] == pytest.approx(expected, rel=1e-6)


def test_cider_d_is_the_clipped_tf_idf_cosine_by_hand(scores):
    # idf = log(2 images) - log(df): "a" is in both images' references, so its weight is 0;
    # every other n-gram (in one reference, or in none) weighs log 2. Equal weights make each
    # n-gram order's cosine (overlap / sqrt(|cand| |ref|)) among the weighted n-grams:
    # image 1: 1-grams {red circle is small} vs {red circle is big}: 3/4; 2-grams 3/4;
    #          3-grams 2/3; 4-grams 1/2; equal lengths, no Gaussian penalty:
    #          10 * (3/4 + 3/4 + 2/3 + 1/2) / 4 = 20/3
    # image 2: 1-3-grams identical (1, 1, 1), no 4-gram (0): 10 * 3/4 = 15/2
    assert scores["cider"] == pytest.approx((20 / 3 + 15 / 2) / 2)  # 85/12 = 7.0833


def test_rouge_l_is_the_lcs_f_measure_by_hand(scores):
    # Image 1: LCS "a red circle is", 4 of 5 words both ways: F = 0.8; image 2: 1.
    assert scores["rouge_l"] == pytest.approx(0.9)


def test_meteor_ranks_the_perfect_caption_above_the_wrong_one(scores):
    perfect = coco_caption_scores({2: "a blue square"}, {2: ["a blue square"]})["meteor"]
    wrong = coco_caption_scores({1: "a red circle is small"}, {1: ["a red circle is big"]})
    assert 0 < wrong["meteor"] < perfect <= 1
    assert 0 < scores["meteor"] < perfect


def test_spice_is_reported_unavailable_with_its_reason_never_zero(scores):
    assert scores["spice"] is None
    assert "downloads" in scores["spice_unavailable"]


def test_a_scorer_keeps_its_meteor_process_between_calls():
    with CocoCaptionScorer() as scorer:
        first = scorer(CAPTIONS, REFERENCES)
        process = scorer._meteor.meteor_p
        assert scorer(CAPTIONS, REFERENCES) == first and scorer._meteor.meteor_p is process
    assert process.poll() is not None  # ended on leaving the block


def test_captions_without_references_are_refused():
    with pytest.raises(ValueError, match=r"images \[2\] have no reference captions"):
        coco_caption_scores(CAPTIONS, {1: ["a red circle"]})


def test_missing_java_is_named_with_how_to_install_it(monkeypatch):
    monkeypatch.setattr(caption_metrics.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="openjdk-17-jre-headless"):
        coco_caption_scores(CAPTIONS, REFERENCES)


# ----------------------------------------------------------------------------- boxes

TRUTH = [
    {"image_id": 1, "category_id": 2, "bbox": [10, 10, 20, 20]},
    {"image_id": 2, "category_id": 2, "bbox": [30, 30, 10, 10]},
    {"image_id": 2, "category_id": 3, "bbox": [0, 0, 5, 5]},  # never named
]


def box(image: int, category: int, bbox: list[float], score: float = 0.9) -> dict:
    return {"image_id": image, "category_id": category, "bbox": bbox, "score": score}


def test_perfect_boxes_have_ap_1_and_corloc_1_and_unnamed_objects_do_not_count():
    found = box_detection_metrics(
        [box(1, 2, [10, 10, 20, 20]), box(2, 2, [30, 30, 10, 10], 0.5)], TRUTH, [(1, 2), (2, 2)]
    )
    assert (found["coco_ap"], found["coco_ap50"], found["coco_ap75"]) == pytest.approx((1, 1, 1))
    assert found["corloc"] == 1.0
    assert found["counts"] == {
        "named_pairs": 2, "pairs_with_objects": 2, "corloc_hits": 2, "boxes": 2, "objects": 2
    }  # fmt: skip


def test_a_shifted_box_scores_at_the_iou_thresholds_it_passes():
    # 4 px to the right: overlap 16 x 20 = 320, union 400 + 400 - 320 = 480: IoU 2/3, a hit
    # at COCO's thresholds 0.50, 0.55, 0.60, 0.65 (4 of 10) with precision 1: AP 0.4.
    shifted = [14, 10, 20, 20]
    assert box_iou(shifted, TRUTH[0]["bbox"]) == pytest.approx(2 / 3)
    found = box_detection_metrics([box(1, 2, shifted)], TRUTH, [(1, 2)])
    assert found["coco_ap"] == pytest.approx(0.4)
    assert (found["coco_ap50"], found["coco_ap75"]) == pytest.approx((1.0, 0.0))
    assert found["corloc"] == 1.0
    # 7 px: overlap 13 x 20 = 260, union 540: IoU 0.481 < 0.5, a miss everywhere.
    assert box_iou([17, 10, 20, 20], TRUTH[0]["bbox"]) == pytest.approx(260 / 540)
    missed = box_detection_metrics([box(1, 2, [17, 10, 20, 20])], TRUTH, [(1, 2)])
    assert (missed["coco_ap"], missed["coco_ap50"], missed["corloc"]) == (0.0, 0.0, 0.0)


def test_a_box_for_a_named_category_the_image_lacks_is_a_false_positive():
    # Image 2's text named category 2, which only image 1 holds: that box, ranked first
    # (0.95), is a false positive and halves the precision at full recall, at every IoU.
    detections = [box(1, 2, [10, 10, 20, 20], 0.9), box(2, 2, [0, 0, 5, 5], 0.95)]
    found = box_detection_metrics(detections, TRUTH[:1], [(1, 2), (2, 2)])
    assert found["coco_ap"] == pytest.approx(0.5)
    assert found["corloc"] == 1.0 and found["counts"]["pairs_with_objects"] == 1


def test_corloc_judges_each_pairs_top_scoring_box_only():
    right, wrong = box(1, 2, [10, 10, 20, 20], 0.4), box(1, 2, [40, 40, 5, 5], 0.8)
    assert corloc([right, wrong], TRUTH, [(1, 2)])["corloc"] == 0.0
    assert corloc([right], TRUTH, [(1, 2)])["corloc"] == 1.0
    assert corloc([], TRUTH, [(1, 2)]) == {"corloc": 0.0, "hits": 0, "pairs": 1}


def test_no_named_object_gives_no_figures_and_no_box_gives_ap_0():
    nothing = box_detection_metrics([box(1, 3, [0, 0, 5, 5])], TRUTH, [(1, 3)])
    assert (nothing["coco_ap"], nothing["corloc"]) == (None, None)
    silent = box_detection_metrics([], TRUTH, [(1, 2)])
    assert (silent["coco_ap"], silent["coco_ap50"], silent["corloc"]) == (0.0, 0.0, 0.0)

