"""Judging maps: box and pointing metrics (IoU, localisation accuracy, MaxBoxAcc, pointing
game, energy), COCO AP and CorLoc, faithfulness (deletion / insertion, ROAD), caption metrics
(pycocoevalcap, nltk BLEU) and VQA accuracy, the words that name categories, and map similarity
and randomised model copies for the sanity checks. Making boxes lives in `mmcam.boxes`; its former
names here (`mmcam.evaluation.boxes_from_map`, ...) still resolve, with a DeprecationWarning.
Imports core only (and `mmcam._moved` for those former names)."""

from mmcam._moved import keep_moved_names
from mmcam.evaluation.box_metrics import (
    DEFAULT_THRESHOLDS,
    POINTING_TOLERANCE,
    LocalizationAccuracy,
    MaxBoxAcc,
    PointingGame,
    box_iou,
    box_iou_matrix,
    energy_in_box,
    localization_accuracy,
    max_box_acc,
    pointing_game,
    scaled_pointing_tolerance,
)
from mmcam.evaluation.caption_metrics import (
    SPICE_UNAVAILABLE,
    CocoCaptionScorer,
    caption_bleu,
    coco_caption_scores,
)
from mmcam.evaluation.detection_metrics import box_detection_metrics, corloc
from mmcam.evaluation.faithfulness import (
    CausalCurve,
    blur_image,
    center_gaussian_map,
    deletion_auc,
    insertion_auc,
    map_support,
    random_map,
)
from mmcam.evaluation.road import ROAD_FRACTIONS, RoadCurve, linear_imputation, road_curve
from mmcam.evaluation.vqa_accuracy import VQAReport, normalize_answer, vqa_accuracy, vqa_evaluate
from mmcam.evaluation.word_categories import CategoryMention, WordCategories

keep_moved_names(__name__)  # box making moved to mmcam.boxes: its names here warn and resolve

__all__ = [
    "DEFAULT_THRESHOLDS",
    "POINTING_TOLERANCE",
    "ROAD_FRACTIONS",
    "SPICE_UNAVAILABLE",
    "CategoryMention",
    "CausalCurve",
    "CocoCaptionScorer",
    "LocalizationAccuracy",
    "MaxBoxAcc",
    "PointingGame",
    "RoadCurve",
    "VQAReport",
    "WordCategories",
    "blur_image",
    "box_detection_metrics",
    "box_iou",
    "box_iou_matrix",
    "caption_bleu",
    "center_gaussian_map",
    "coco_caption_scores",
    "corloc",
    "deletion_auc",
    "energy_in_box",
    "insertion_auc",
    "linear_imputation",
    "localization_accuracy",
    "map_support",
    "max_box_acc",
    "normalize_answer",
    "pointing_game",
    "random_map",
    "road_curve",
    "scaled_pointing_tolerance",
    "vqa_accuracy",
    "vqa_evaluate",
]
