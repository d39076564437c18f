"""The explainer base: what every explainer (a model family) shares, so a new one is a subclass.

An explainer declares its `explainer_id` (the id the method registry lists in a method's
`explainers`), takes its methods from the registry (`method`: an unknown method, or one this
explainer does not run, is refused with the registry's error naming those it does; a former id
is accepted with a DeprecationWarning), runs the model inside the model-state guard (`guard`:
eval mode, frozen parameters, everything restored on exit), checks the model kept its protocol
(`verify`), and dispatches by the method's kind to `by_gradient`, `by_rule`, `by_perturbation`
or `by_attention`; a kind the subclass does not implement is refused. `offered()` lists the
method ids it runs, read from the registry when asked, so a method registered later is offered.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any, ClassVar

import torch
from torch import nn

from mmcam.core.model_state import explaining
from mmcam.methods import registry
from mmcam.methods.registry import Method

__all__ = ["Explainer"]


class Explainer:
    """The base of the caption, VQA, cross-attention and Hugging Face explainers."""

    explainer_id: ClassVar[str] = ""
    model: nn.Module
    check: bool = True

    def method(self, method_id: str, options: Mapping[str, Any] | None = None) -> Method:
        """The registry's record of `method_id` for this explainer (a clear error for a method
        it does not run); perturbation `options` given to another kind of method are refused."""
        record = registry.get(method_id, self.explainer_id)
        if options and record.kind != "perturbation":
            raise ValueError(
                f"perturbation options ({', '.join(options)}) are for "
                f"{' and '.join(registry.ids(kind='perturbation'))}, not for {method_id}"
            )
        return record

    @classmethod
    def runs(cls, method_id: str) -> bool:
        """Whether this explainer runs `method_id` (a former id resolves, with its warning)."""
        return cls.explainer_id in registry.get(method_id).explainers

    @classmethod
    def offered(cls) -> list[str]:
        """The ids of the methods this explainer runs, in the registry's order."""
        return registry.ids(explainer=cls.explainer_id)

    def guard(self, device: torch.device) -> AbstractContextManager[None]:
        """The model-state guard: eval mode and frozen parameters while explaining, the model's
        own state restored on every exit (`mmcam.core.model_state.explaining`)."""
        return explaining(self.model, device)

    def verify(self, *args: Any, **kwargs: Any) -> None:
        """The protocol check hook: raise when the explained scores show the model broke the
        protocol its batches rely on. Subclasses check with `check`; the base checks nothing."""

    def dispatch(self, record: Method, *args: Any, **kwargs: Any) -> Any:
        """Run `record` by its kind: `by_<kind>(record, *args, **kwargs)`."""
        return getattr(self, f"by_{record.kind}")(record, *args, **kwargs)

    def by_gradient(self, record: Method, *args: Any, **kwargs: Any) -> Any:
        return self._not_run(record)

    def by_rule(self, record: Method, *args: Any, **kwargs: Any) -> Any:
        return self._not_run(record)

    def by_perturbation(self, record: Method, *args: Any, **kwargs: Any) -> Any:
        return self._not_run(record)

    def by_attention(self, record: Method, *args: Any, **kwargs: Any) -> Any:
        return self._not_run(record)

    def _not_run(self, record: Method) -> Any:
        raise NotImplementedError(
            f"{type(self).__name__} runs no {record.kind} methods, so not {record.name} "
            f"({record.id}); it runs {', '.join(self.offered())}"
        )
