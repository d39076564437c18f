"""One vocabulary: only the method registry and the Task objects decide by a method's or a
task's id. Everywhere else a method or a task is looked up, never compared with its spelling
(`method == "occlusion"`, `task == "captions"`, `method in ("gradcam", ...)`, `in
PERTURBATION_METHODS`), dispatched by a table of functions keyed by the task ids, or picked from
a former hand-kept method list: each is a list that a newly registered method or task would
miss."""

from __future__ import annotations

import ast
from pathlib import Path

from mmcam.methods import registry
from mmcam.runs import tasks

ROOT = Path(__file__).resolve().parent.parent
SEARCHED = ("mmcam", "scripts", "demos")
DECIDERS = {Path("mmcam/methods/registry.py"), Path("mmcam/runs/tasks.py")}
FORMER_TASK_IDS = {"captioning", "VQA"}
# A ReLU backward rule ("guided", "deconvnet") is a method's `function`, and one is spelled like
# the method it serves: comparing the rule is not deciding by a method's id.
RULE = "rule"
FORMER_LISTS = ("mmcam.methods", "mmcam.app.inputs")  # where the deprecated lists still import


def spellings() -> set[str]:
    """Every id a method or a task has had: the registry's ids and aliases, the task ids."""
    known = set(tasks.TASKS) | FORMER_TASK_IDS
    for record in registry.methods():
        known |= {record.id, *record.aliases}
    return known


def strings(node: ast.AST) -> list[str]:
    """The string constants `node` is, or holds as a tuple, list or set display."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [s for element in node.elts for s in strings(element)]
    return []


def named_list(node: ast.AST) -> str | None:
    """`GRADIENT_METHODS` for a name or attribute spelled like a hand-kept method list."""
    name = node.id if isinstance(node, ast.Name) else getattr(node, "attr", None)
    return name if name and name.endswith("_METHODS") else None


def is_rule(node: ast.AST) -> bool:
    return (isinstance(node, ast.Name) and node.id == RULE) or getattr(node, "attr", None) == RULE


def decisions(source: str, known: set[str]) -> list[tuple[int, str]]:
    """(line, what) for each comparison with, or membership in, a method or task spelling, each
    dict display that maps several task ids to functions, and each import of a former method
    list."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            operands = (node.left, *node.comparators)
            if any(is_rule(operand) for operand in operands):
                continue
            for operand in operands:
                spelled = [s for s in strings(operand) if s in known]
                if spelled:
                    found.append((node.lineno, f"compares with {', '.join(spelled)}"))
                elif named_list(operand) and any(
                    isinstance(op, (ast.In, ast.NotIn)) for op in node.ops
                ):
                    found.append((node.lineno, f"tests membership in {named_list(operand)}"))
        elif isinstance(node, ast.Dict):
            keys = [s for key in node.keys if key is not None for s in strings(key)]
            functions = all(isinstance(value, ast.Name) for value in node.values)
            if len(set(keys) & set(tasks.TASKS)) >= 2 and functions:
                found.append((node.lineno, "dispatches on a dict keyed by task ids"))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(FORMER_LISTS):
            for alias in node.names:
                if alias.name.endswith("_METHODS"):
                    found.append((node.lineno, f"imports the former list {alias.name}"))
    return sorted(found)


def test_the_check_catches_each_kind_of_decision():
    known = spellings()
    source = (
        'if task == "captions": pass\n'
        'if method in ("gradcam", "hirescam"): pass\n'
        "if method not in PERTURBATION_METHODS: pass\n"
        "run = {'captions': explain_captions, 'vqa': explain_vqa}[task]\n"
        "from mmcam.methods.pixel_space import RULE_METHODS\n"
        'if record.kind == "perturbation": pass\n'  # a kind, not an id: allowed
        'if rule == "deconvnet": pass\n'  # a ReLU rule's name: allowed
        "figures = {'captions': captions.metrics, 'vqa': vqa.metrics}\n"  # data by task: allowed
    )
    assert [line for line, _ in decisions(source, known)] == [1, 2, 3, 4, 5]


def test_only_the_registry_and_the_tasks_decide_by_id():
    known = spellings()
    offences = [
        f"{path.relative_to(ROOT)}:{line} {what}"
        for folder in SEARCHED
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path.relative_to(ROOT) not in DECIDERS
        for line, what in decisions(path.read_text(), known)
    ]
    assert offences == []
