"""The hand-kept method lists of earlier releases, now read from the method registry: each
still imports, with a DeprecationWarning naming the registry call that replaces it."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any


def deprecated_list(module: str, name: str, records: Iterable[Any], value: str | None) -> Any:
    """`module.name` as it was: a dict id -> the record's `value` attribute, or a tuple of ids
    (`value` None), of `records`; warns that it goes in a later release."""
    warnings.warn(
        f"{module}.{name} is deprecated and goes in a later release: read the method registry "
        "(mmcam.methods.registry.methods / ids, by kind and explainer) instead",
        DeprecationWarning,
        stacklevel=3,
    )
    records = list(records)
    if value is None:
        return tuple(record.id for record in records)
    return {record.id: getattr(record, value) for record in records}
