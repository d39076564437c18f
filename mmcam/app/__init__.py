"""The demo's logic without the page (checking input, explaining, drawing, download files) and
`make run`'s sample figures. Imports everything below it."""

from mmcam.app.demo import Demo
from mmcam.app.inputs import (
    DEFAULT_SAMPLES,
    MAX_IMAGE_SIDE,
    WHOLE_CAPTION,
    Example,
    InputError,
    bundled_examples,
    check_question,
    read_image,
)
from mmcam.app.results import AnswerResult, CaptionResult, box_text

__all__ = [
    "DEFAULT_SAMPLES",
    "MAX_IMAGE_SIDE",
    "WHOLE_CAPTION",
    "AnswerResult",
    "CaptionResult",
    "Demo",
    "Example",
    "InputError",
    "box_text",
    "bundled_examples",
    "check_question",
    "read_image",
]


def __getattr__(name: str) -> object:
    """`METHODS`, read from the method registry (deprecated: use `Demo.methods`)."""
    if name == "METHODS":
        from mmcam.app import inputs

        return inputs.__getattr__(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
