"""Dataset runs, the engine only: resumable, shardable (torchrun) explanation of a whole COCO
captions or VQA v2 set, their output files and reports; a `Task` per task (`mmcam.runs.tasks`:
"captions", "vqa") says what differs between them. Imports everything below it, never the
studies built on it (`mmcam.studies`)."""

from mmcam.runs.captions import explain_captions
from mmcam.runs.inputs import (
    CaptionData,
    LoadedImage,
    VQAData,
    read_caption_data,
    read_split,
    read_vqa_data,
)
from mmcam.runs.models import ExplainedModel, load_run_captioner, load_run_vqa
from mmcam.runs.options import RunOptions
from mmcam.runs.outputs import read_map
from mmcam.runs.run import RunResult
from mmcam.runs.vqa import explain_vqa

__all__ = [
    "CaptionData",
    "ExplainedModel",
    "LoadedImage",
    "RunOptions",
    "RunResult",
    "VQAData",
    "explain_captions",
    "explain_vqa",
    "load_run_captioner",
    "load_run_vqa",
    "read_caption_data",
    "read_split",
    "read_map",
    "read_vqa_data",
]
