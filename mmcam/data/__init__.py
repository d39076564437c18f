"""Data formats: COCO captions / instances and VQA v2 readers, atomic writers, images, the
vocabulary, the training Datasets and the shapes generator. Imports nothing of mmcam."""

from mmcam.data.annotations import (
    CocoCaptions,
    CocoInstance,
    CocoInstances,
    VQAItem,
    read_coco_captions,
    read_coco_instances,
    read_vqa,
    split_paths,
)
from mmcam.data.files import read_json, write_atomically, write_json
from mmcam.data.images import load_image, preprocess
from mmcam.data.vocab import Vocabulary, tokenize

__all__ = [
    "CocoCaptions",
    "CocoInstance",
    "CocoInstances",
    "VQAItem",
    "Vocabulary",
    "load_image",
    "preprocess",
    "read_coco_captions",
    "read_coco_instances",
    "read_json",
    "read_vqa",
    "split_paths",
    "tokenize",
    "write_atomically",
    "write_json",
]
