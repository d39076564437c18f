"""Boxes from maps: thresholded boxes around a map's connected regions (`from_maps`), boxes
refined from the image with the map as seeds (`refine`, map + image), a box's hold on its map
(`evidence`: the flags of a guess and the evidence score), and each method's box settings and the
default method read from `models/box_settings.json` (`settings`). Imports core, and evaluation
for the pointing and energy measures a box's evidence is scored by."""

from mmcam.boxes.evidence import BoxEvidence, box_evidence
from mmcam.boxes.from_maps import Box, boxes_from_map, boxes_from_maps, resize_map, smooth_maps
from mmcam.boxes.refine import RefineSettings, is_flat, refined_box, refined_boxes
from mmcam.boxes.settings import (
    BoxSettings,
    DefaultMethod,
    MapBoxes,
    box_settings,
    default_method,
    map_boxes,
)

__all__ = [
    "Box",
    "BoxEvidence",
    "BoxSettings",
    "DefaultMethod",
    "MapBoxes",
    "RefineSettings",
    "box_evidence",
    "box_settings",
    "boxes_from_map",
    "boxes_from_maps",
    "default_method",
    "is_flat",
    "map_boxes",
    "refined_box",
    "refined_boxes",
    "resize_map",
    "smooth_maps",
]
