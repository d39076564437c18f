"""The tasks a dataset run explains, by id: "captions" (`CAPTIONS`: caption each image, map every
word) and "vqa" (`VQA`: answer each question, map the top answers). A `Task` (`mmcam.runs.run`)
holds what differs between them — inputs, model, chunk, results, detections, metrics and report
lines — so the engine, the scripts and the studies ask it instead of testing the task's name."""

from __future__ import annotations

from mmcam.runs.captions import CAPTIONS
from mmcam.runs.run import Task
from mmcam.runs.vqa import VQA

__all__ = ["TASKS", "Task", "chosen", "get", "ids"]

TASKS: dict[str, Task] = {task.id: task for task in (CAPTIONS, VQA)}


def ids() -> list[str]:
    """The task ids, in the table's order ("captions", "vqa")."""
    return list(TASKS)


def get(task_id: str) -> Task:
    """The task of `task_id`, or a clear error naming the tasks there are."""
    if task_id not in TASKS:
        raise ValueError(f"unknown task {task_id!r}; choose one of {', '.join(TASKS)}")
    return TASKS[task_id]


def chosen(choice: str) -> list[Task]:
    """The tasks a command line's `--task` names: one id, or "both" for every task."""
    return list(TASKS.values()) if choice == "both" else [get(choice)]
