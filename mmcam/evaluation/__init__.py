"""Judging maps: boxes from maps (thresholded, or refined from the image: map + image), box and
pointing metrics, COCO AP and CorLoc, faithfulness (deletion / insertion, ROAD), caption metrics
(pycocoevalcap, nltk BLEU) and VQA accuracy, the words that name categories. Imports core only."""

from mmcam.evaluation.box_evidence import BoxEvidence, box_evidence
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
from mmcam.evaluation.box_settings import (
    BoxSettings,
    DefaultMethod,
    MapBoxes,
    box_settings,
    default_method,
    map_boxes,
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
from mmcam.evaluation.localize import Box, boxes_from_map, boxes_from_maps, resize_map, smooth_maps
from mmcam.evaluation.refine import RefineSettings, is_flat, refined_box, refined_boxes
from mmcam.evaluation.road import ROAD_FRACTIONS, RoadCurve, linear_imputation, road_curve
from mmcam.evaluation.vqa_accuracy import VQAReport, normalize_answer, vqa_accuracy, vqa_evaluate
from mmcam.evaluation.word_categories import CategoryMention, WordCategories

__all__ = [
    "DEFAULT_THRESHOLDS",
    "POINTING_TOLERANCE",
    "ROAD_FRACTIONS",
    "SPICE_UNAVAILABLE",
    "Box",
    "BoxEvidence",
    "BoxSettings",
    "CategoryMention",
    "CausalCurve",
    "CocoCaptionScorer",
    "DefaultMethod",
    "LocalizationAccuracy",
    "MapBoxes",
    "MaxBoxAcc",
    "PointingGame",
    "RefineSettings",
    "RoadCurve",
    "VQAReport",
    "WordCategories",
    "blur_image",
    "box_detection_metrics",
    "box_evidence",
    "box_iou",
    "box_iou_matrix",
    "box_settings",
    "boxes_from_map",
    "boxes_from_maps",
    "caption_bleu",
    "center_gaussian_map",
    "coco_caption_scores",
    "corloc",
    "default_method",
    "deletion_auc",
    "energy_in_box",
    "insertion_auc",
    "is_flat",
    "linear_imputation",
    "localization_accuracy",
    "map_boxes",
    "map_support",
    "max_box_acc",
    "normalize_answer",
    "pointing_game",
    "random_map",
    "refined_box",
    "refined_boxes",
    "resize_map",
    "road_curve",
    "scaled_pointing_tolerance",
    "smooth_maps",
    "vqa_accuracy",
    "vqa_evaluate",
]
